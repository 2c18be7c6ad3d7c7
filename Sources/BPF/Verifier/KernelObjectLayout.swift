/// The BTF layout of a kernel object a tracing program reads through a typed pointer, and
/// the kernel's rule for plain loads from it (`btf_struct_walk` in kernel/bpf/btf.c): the
/// members are searched in declaration order, and the first one the access overlaps decides.
/// A number member may be read in part (or beyond its end, up to the end of an array of
/// numbers, or anywhere inside a union with several members); a bitfield only with its whole
/// bytes; a pointer member only whole, and then it loads as a pointer (to a struct: a typed
/// kernel pointer; to anything else: a number on Linux 6.12, read-only untrusted memory on
/// 6.18, so never a number here); an embedded struct or union is searched the same way;
/// padding, and bytes past the object, cannot be read.
///
/// The layout is plain data, built by the code generator from BTF, so that the pre-check and
/// the code generator (which reads with `bpf_probe_read_kernel` what a plain load cannot)
/// decide with the same rule.
public struct KernelObjectLayout: Sendable, Hashable {
  /// A struct or union: `structures[0]` is the object itself, the others are embedded in it.
  public struct Structure: Sendable, Hashable {
    public var name: String
    public var size: Int
    public var isUnion: Bool
    public var members: [Member]
    public init(name: String, size: Int, isUnion: Bool, members: [Member]) {
      self.name = name
      self.size = size
      self.isUnion = isUnion
      self.members = members
    }
  }

  public struct Member: Sendable, Hashable {
    public var name: String
    public var bitOffset: Int
    /// Bits of a bitfield; 0 for other members.
    public var bitfieldSize: Int
    /// Bytes of the member (of the whole array, for arrays); 0 for members without a size.
    public var size: Int
    public var kind: Kind
    public init(name: String, bitOffset: Int, bitfieldSize: Int = 0, size: Int, kind: Kind) {
      self.name = name
      self.bitOffset = bitOffset
      self.bitfieldSize = bitfieldSize
      self.size = size
      self.kind = kind
    }
  }

  public indirect enum Kind: Sendable, Hashable {
    /// An integer, enum or other value the kernel reads as a number.
    case number
    /// A pointer; `toStruct` when it points to a struct or union (then it loads as a pointer).
    case pointer(toStruct: Bool)
    /// An embedded struct or union: its index in `structures`.
    case structure(Int)
    /// An array (multi-dimensional ones flattened) of `count` elements of `element`.
    case array(element: Kind, count: Int)
  }

  /// What a plain load of some bytes of the object gives.
  public enum Access: Sendable, Hashable {
    case number
    /// A whole pointer member: the kernel may type the result as a pointer, not a number.
    case pointer
    /// The kernel refuses the load; the reason in its own terms.
    case refused(String)
  }

  public var structures: [Structure]

  public init(structures: [Structure]) {
    self.structures = structures
  }

  public var name: String { structures.first?.name ?? "an object" }

  /// Whether a plain load of `size` bytes at `offset` is allowed and yields a number.
  public func allows(offset: Int, size: Int) -> Bool { access(offset: offset, size: size) == .number }

  /// What a plain load of `size` bytes at `offset` gives, by the kernel's rule.
  public func access(offset: Int, size: Int) -> Access {
    guard !structures.isEmpty else { return .refused("the layout of the object is not known") }
    guard offset >= 0, size > 0 else { return .refused("the access is at a negative offset") }
    var structure = 0
    var offset = offset
    // Walking a union with several members relaxes the end-of-member rule, as in the kernel.
    var untrusted = false
    // Each round descends one level; a layout is finite, and every level either returns or
    // moves to a structure strictly inside the current one.
    for _ in 0..<64 {
      let current = structures[structure]
      if current.isUnion && current.members.count != 1 { untrusted = true }
      guard offset + size <= current.size else {
        return .refused("access beyond \(current.name) at offset \(offset) size \(size)")
      }
      var descended = false
      for member in current.members {
        let memberOffset = member.bitOffset / 8
        if offset + size <= memberOffset { break }
        if member.bitfieldSize > 0 {
          let endBit = member.bitOffset + member.bitfieldSize
          if offset <= memberOffset, (endBit + 7) / 8 <= offset + size { return .number }
          continue
        }
        // An offset in padding before this member.
        if offset < memberOffset { break }
        let trueEnd = memberOffset + member.size
        if offset >= trueEnd { continue }
        var kind = member.kind
        var start = memberOffset
        var elementSize = member.size
        if case .array(let element, let count) = kind {
          if member.size == 0 || count == 0 { continue }
          elementSize = member.size / count
          start += (offset - memberOffset) / elementSize * elementSize
          kind = element
        }
        switch kind {
        case .structure(let index):
          structure = index
          offset -= start
          descended = true
        case .pointer:
          guard elementSize == size, offset == start else {
            return .refused(
              "cannot access pointer member \(member.name) at offset \(start) of \(current.name) with \(size) bytes at offset \(offset)")
          }
          return .pointer
        case .number, .array:
          if offset + size > trueEnd && !untrusted {
            return .refused("access beyond the end of member \(member.name) of \(current.name) at offset \(offset) size \(size)")
          }
          return .number
        }
        break
      }
      if !descended { return .refused("\(current.name) has no member at offset \(offset)") }
    }
    return .refused("the object nests too deeply")
  }
}
