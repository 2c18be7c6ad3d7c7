public import SwtraceSyntax

/// A `printf` format, split into literal text and conversions. Checked against the argument
/// types at compile time; the values are formatted in swtrace when the event arrives.
public struct FormatString: Hashable, Sendable {
  public enum Piece: Hashable, Sendable {
    case text(String)
    /// The conversion for the argument at `argument` (0-based, after the format).
    case conversion(Conversion, argument: Int)
  }

  /// `%[flags][width][.precision][length]kind`; length modifiers (`l`, `ll`, `h`, `z`...) are
  /// accepted and ignored, since every value knows its own width.
  public struct Conversion: Hashable, Sendable {
    public enum Kind: Character, Hashable, Sendable, CaseIterable {
      case signed = "d"
      case integer = "i"
      case unsigned = "u"
      case hex = "x"
      case upperHex = "X"
      case octal = "o"
      case string = "s"
      case character = "c"
      case pointer = "p"
      /// bpftrace's `%r`: a buffer (`buf()`), printable bytes as themselves, others as `\xNN`.
      case buffer = "r"
    }
    public var kind: Kind
    public var leftJustify = false
    public var zeroPad = false
    public var plusSign = false
    public var spaceSign = false
    public var alternate = false
    public var width: Int?
    public var precision: Int?
    /// Where the conversion is written in the spec, for diagnostics.
    public var range: SourceRange
    /// The conversion as written, such as `%-10s`.
    public var spelling: String
  }

  public var pieces: [Piece]

  public var conversions: [Conversion] {
    pieces.compactMap { if case .conversion(let c, _) = $0 { c } else { nil } }
  }

  /// The text of a format without conversions (`%%` already reduced to `%`).
  public var plainText: String? {
    var text = ""
    for piece in pieces {
      guard case .text(let part) = piece else { return nil }
      text += part
    }
    return text
  }

  /// Splits `format`, the decoded value of the string literal at `literal` whose source text
  /// is `spelling` (quotes and escapes included). Problems are reported at the conversion.
  static func parse(_ format: String, literal: SourceRange, spelling: String) -> (FormatString?, [Diagnostic]) {
    let bytes = Array(format.utf8)
    let offsets = sourceOffsets(spelling: spelling, start: literal.start, decodedCount: bytes.count)
    var pieces: [Piece] = []
    var diagnostics: [Diagnostic] = []
    var text: [UInt8] = []
    var index = 0
    var argument = 0
    func flushText() {
      if !text.isEmpty { pieces.append(.text(String(decoding: text, as: UTF8.self))) }
      text = []
    }
    while index < bytes.count {
      guard bytes[index] == UInt8(ascii: "%") else {
        text.append(bytes[index])
        index += 1
        continue
      }
      let start = index
      index += 1
      if index < bytes.count, bytes[index] == UInt8(ascii: "%") {
        text.append(UInt8(ascii: "%"))
        index += 1
        continue
      }
      var conversion = Conversion(kind: .signed, range: .at(0), spelling: "")
      while index < bytes.count {
        switch bytes[index] {
        case UInt8(ascii: "-"): conversion.leftJustify = true
        case UInt8(ascii: "0"): conversion.zeroPad = true
        case UInt8(ascii: "+"): conversion.plusSign = true
        case UInt8(ascii: " "): conversion.spaceSign = true
        case UInt8(ascii: "#"): conversion.alternate = true
        default: break
        }
        guard "-0+ #".utf8.contains(bytes[index]) else { break }
        index += 1
      }
      func number() -> Int? {
        var value: Int?
        while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
          value = min(4096, (value ?? 0) * 10 + Int(bytes[index] - UInt8(ascii: "0")))
          index += 1
        }
        return value
      }
      var starSeen = false
      if index < bytes.count, bytes[index] == UInt8(ascii: "*") {
        starSeen = true
        index += 1
      }
      conversion.width = number()
      if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
        index += 1
        if index < bytes.count, bytes[index] == UInt8(ascii: "*") {
          starSeen = true
          index += 1
        }
        conversion.precision = number() ?? 0
      }
      while index < bytes.count, "hlLjzt".utf8.contains(bytes[index]) { index += 1 }
      let end = min(index + 1, bytes.count)
      let range = SourceRange(offsets[start], offsets[end])
      let spelled = String(decoding: bytes[start..<end], as: UTF8.self)
      if starSeen {
        diagnostics.append(
          Diagnostic(
            "printf-star-width", "'\(spelled)': a width or precision given as '*' is not supported", at: range,
            notes: [.init(.help, "write the number into the format, such as %-10s")]))
        index = end
        continue
      }
      guard index < bytes.count else {
        diagnostics.append(
          Diagnostic(
            "printf-unknown-conversion", "the format ends inside a conversion ('\(spelled)')", at: range,
            notes: [.init(.help, "write %% for a literal %")]))
        break
      }
      guard let kind = Conversion.Kind(rawValue: Character(UnicodeScalar(bytes[index]))) else {
        diagnostics.append(
          Diagnostic(
            "printf-unknown-conversion", "'\(spelled)' is not a conversion printf knows", at: range,
            notes: [.init(.help, "the conversions are %d %i %u %x %X %o %s %c %p %r, and %% for a literal %")]))
        index = end
        continue
      }
      index = end
      conversion.kind = kind
      conversion.range = range
      conversion.spelling = spelled
      flushText()
      pieces.append(.conversion(conversion, argument: argument))
      argument += 1
    }
    flushText()
    return (diagnostics.isEmpty ? FormatString(pieces: pieces) : nil, diagnostics)
  }

  /// The source offset of each decoded byte of a string literal, plus one for its end: an
  /// escape (`\n`, `\x41`) is several source bytes for one decoded byte.
  static func sourceOffsets(spelling: String, start: Int, decodedCount: Int) -> [Int] {
    let raw = Array(spelling.utf8)
    var offsets: [Int] = []
    var position = raw.first == UInt8(ascii: "\"") ? 1 : 0
    while offsets.count < decodedCount, position < raw.count {
      offsets.append(start + position)
      if raw[position] == UInt8(ascii: "\\"), position + 1 < raw.count {
        position += raw[position + 1] == UInt8(ascii: "x") ? 4 : 2
      } else {
        position += 1
      }
    }
    while offsets.count < decodedCount { offsets.append(start + min(position, raw.count)) }
    offsets.append(start + min(position, raw.count))
    return offsets
  }
}

extension FormatString.Conversion {
  /// Whether a value of `type` can be printed by this conversion, and if not, what it needs.
  func accepts(_ type: ValueType) -> String? {
    switch kind {
    case .string:
      return type == .void ? "a value" : nil
    case .signed, .integer, .unsigned, .hex, .upperHex, .octal:
      switch type {
      case .integer, .bool, .enumeration, .flags, .pointer, .kernelSymbol, .ipv4: return nil
      default: return "a number"
      }
    case .character:
      switch type {
      case .integer, .bool: return nil
      default: return "an integer (a character code)"
      }
    case .pointer:
      switch type {
      case .pointer, .kernelSymbol, .integer: return nil
      default: return "a pointer or an address"
      }
    case .buffer:
      switch type {
      case .buffer, .string, .byteArray: return nil
      default: return "a buffer (buf(...))"
      }
    }
  }
}
