/// Text from outside swtrace's control made safe to print: a process name (`comm`), a device
/// name, any string the kernel hands over, spec text echoed in a diagnostic. Any process can
/// name itself with escape sequences that retitle, recolour or rewrite a terminal, and
/// kernel strings need not be UTF-8; printed raw, either reaches the terminal or corrupts a
/// pipe's text. Control characters (C0, DEL and C1) and bytes that are not UTF-8 become
/// `\xNN`, one escape per byte, as printf's `%c` prints a byte that is not printable ASCII;
/// everything else, other scripts included, prints as it is.
public enum TerminalText {
  /// `text` with its control characters escaped, except those in `kept` (a source line keeps
  /// its tabs, a message its line breaks).
  public static func escaped(_ text: String, keeping kept: Set<Unicode.Scalar> = []) -> String {
    func escapes(_ scalar: Unicode.Scalar) -> Bool { isControl(scalar) && !kept.contains(scalar) }
    guard text.unicodeScalars.contains(where: escapes) else { return text }
    var out = ""
    for scalar in text.unicodeScalars {
      if escapes(scalar) {
        for byte in String(scalar).utf8 { out += hex(byte) }
      } else {
        out.unicodeScalars.append(scalar)
      }
    }
    return out
  }

  /// `bytes` as text: valid UTF-8 decoded, any other byte as `\xNN`; control characters
  /// escaped too when `escapingControls` (for JSON, which escapes them its own way, not).
  public static func decoding(_ bytes: some Collection<UInt8>, escapingControls: Bool = true) -> String {
    var out = ""
    var remaining = Array(bytes)[...]
    while let first = remaining.first {
      let length = sequenceLength(remaining)
      guard length > 0 else {
        out += hex(first)
        remaining = remaining.dropFirst()
        continue
      }
      let sequence = remaining.prefix(length)
      let scalar = String(decoding: sequence, as: UTF8.self).unicodeScalars.first!
      if escapingControls, isControl(scalar) {
        for byte in sequence { out += hex(byte) }
      } else {
        out.unicodeScalars.append(scalar)
      }
      remaining = remaining.dropFirst(length)
    }
    return out
  }

  /// The length of the well-formed UTF-8 sequence `bytes` starts with, or 0 (RFC 3629: no
  /// overlong forms, no surrogates, nothing above U+10FFFF).
  static func sequenceLength(_ bytes: ArraySlice<UInt8>) -> Int {
    let start = bytes.startIndex
    let first = bytes[start]
    func continuation(_ offset: Int, _ range: ClosedRange<UInt8> = 0x80...0xbf) -> Bool {
      start + offset < bytes.endIndex && range.contains(bytes[start + offset])
    }
    switch first {
    case 0x00...0x7f: return 1
    case 0xc2...0xdf: return continuation(1) ? 2 : 0
    case 0xe0: return continuation(1, 0xa0...0xbf) && continuation(2) ? 3 : 0
    case 0xe1...0xec, 0xee...0xef: return continuation(1) && continuation(2) ? 3 : 0
    case 0xed: return continuation(1, 0x80...0x9f) && continuation(2) ? 3 : 0
    case 0xf0: return continuation(1, 0x90...0xbf) && continuation(2) && continuation(3) ? 4 : 0
    case 0xf1...0xf3: return continuation(1) && continuation(2) && continuation(3) ? 4 : 0
    case 0xf4: return continuation(1, 0x80...0x8f) && continuation(2) && continuation(3) ? 4 : 0
    default: return 0
    }
  }

  /// C0 controls, DEL and C1 controls: what a terminal may act on.
  public static func isControl(_ scalar: Unicode.Scalar) -> Bool {
    scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value)
  }

  static func hex(_ byte: UInt8) -> String {
    let digits = String(byte, radix: 16)
    return "\\x" + (digits.count == 1 ? "0" + digits : digits)
  }
}
