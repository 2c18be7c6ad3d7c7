import BPF
public import SwtraceSyntax

/// Spec ranges as the tags the instructions generated from them carry: BPF knows nothing of
/// specs, so code generation packs a range into the opaque tag and unpacks it when a listing
/// or a pre-check rejection points back at the spec. Specs are far below 4 GiB, so each
/// offset fits in 32 bits.
extension SourceRange {
  var tag: SourceTag {
    SourceTag(rawValue: UInt64(UInt32(clamping: start)) << 32 | UInt64(UInt32(clamping: end)))
  }

  init(_ tag: SourceTag) {
    self.init(Int(tag.rawValue >> 32), Int(tag.rawValue & 0xffff_ffff))
  }
}

extension Program {
  /// The spec range instruction `index` was generated from, if it has one.
  public func sourceRange(ofInstruction index: Int) -> SourceRange? {
    guard index < sourceTags.count, let tag = sourceTags[index] else { return nil }
    return SourceRange(tag)
  }
}
