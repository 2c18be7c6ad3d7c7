public import CodeGen
public import Sema

/// Formats the values of a `printf` event as C's printf would, with swtrace's own reading of
/// each value: `%s` prints any value the way `print` does (addresses, enum and flag names),
/// the number conversions print the value's bits at its own width.
public enum PrintfRenderer {
  public static func render(
    _ format: FormatString, fields: [EventField], probeNames: [String], stacks: KernelStackTable? = nil,
    bytes: (EventField) -> [UInt8]
  ) -> String {
    func presenceByte(_ field: EventField) -> EventField? {
      guard let presence = field.presenceOffset else { return nil }
      var byte = field
      byte.offset = presence
      byte.size = 1
      byte.presenceOffset = nil
      return byte
    }
    return render(format) { conversion, argument in
        guard argument < fields.count else { return "" }
        let field = fields[argument]
        if let presence = presenceByte(field), bytes(presence) == [0] {
          // An absent field prints as `-` whatever the conversion, padded to its width.
          return pad("-", conversion)
        }
        return render(conversion, type: field.type, size: field.size, raw: bytes(field), probeNames: probeNames, stacks: stacks)
    }
  }

  /// The format's text with each conversion replaced by what `conversion` makes of it.
  static func render(_ format: FormatString, conversion: (FormatString.Conversion, Int) -> String) -> String {
    var out = ""
    for piece in format.pieces {
      switch piece {
      case .text(let text): out += text
      case .conversion(let spec, let argument): out += conversion(spec, argument)
      }
    }
    return out
  }

  /// A format whose values are constants, each its type and its bytes in memory order (a
  /// BEGIN, END or interval clause's printf, formatted in swtrace).
  public static func render(_ format: FormatString, constants: [(type: ValueType, bytes: [UInt8])]) -> String {
    render(format) { conversion, argument in
      guard argument < constants.count else { return "" }
      let value = constants[argument]
      return render(conversion, type: value.type, size: value.bytes.count, raw: value.bytes, probeNames: [])
    }
  }

  static func render(
    _ conversion: FormatString.Conversion, type: ValueType, size: Int, raw: [UInt8], probeNames: [String],
    stacks: KernelStackTable? = nil
  ) -> String {
    // Its own width and its type's signedness: an enum prints as the enum's type says.
    let stored = StoredNumber(raw, width: size, as: type)
    let bits = stored.bits
    let signedValue = stored.signedValue
    switch conversion.kind {
    case .signed, .integer:
      // An unsigned value keeps its unsigned meaning under %d (C would reinterpret its bits).
      if stored.isSigned {
        return number(String(signedValue.magnitude), negative: signedValue < 0, prefix: "", conversion)
      }
      return number(String(bits), negative: false, prefix: "", conversion)
    case .unsigned:
      return number(String(bits), negative: false, prefix: "", conversion)
    case .hex, .upperHex:
      var digits = String(bits, radix: 16)
      if conversion.kind == .upperHex { digits = digits.uppercased() }
      let prefix = conversion.alternate && bits != 0 ? (conversion.kind == .hex ? "0x" : "0X") : ""
      return number(digits, negative: false, prefix: prefix, conversion)
    case .octal:
      return number(String(bits, radix: 8), negative: false, prefix: "", conversion)
    case .pointer:
      // glibc's %p: "(nil)" for a null pointer, otherwise %#x of the address (its flags and
      // precision apply as they do there).
      guard bits != 0 else { return pad("(nil)", conversion) }
      var asHex = conversion
      asHex.kind = .hex
      asHex.alternate = true
      return number(String(bits, radix: 16), negative: false, prefix: "0x", asHex, signsApply: true)
    case .character:
      return pad(Self.character(UInt8(truncatingIfNeeded: bits)), conversion)
    case .buffer:
      // A string's bytes up to its NUL, a buffer's or byte array's all of them.
      var bytes = raw
      if case .string = type { bytes = Array(raw.prefix { $0 != 0 }) }
      var text = BufferText.escaped(bytes)
      if let precision = conversion.precision { text = String(text.prefix(precision)) }
      return pad(text, conversion)
    case .string:
      var text = ValueDecoder.decode(type: type, size: size, probeNames: probeNames, bytes: raw, stacks: stacks).text
      if let precision = conversion.precision { text = String(text.prefix(precision)) }
      return pad(text, conversion)
    }
  }

  /// `%c`: printable ASCII as itself; any other byte as a `\xNN` escape, so that a value from
  /// the kernel never sends control sequences to the terminal or invalid UTF-8 to a pipe.
  static func character(_ byte: UInt8) -> String {
    if (0x20...0x7e).contains(byte) { return String(UnicodeScalar(byte)) }
    let hex = String(byte, radix: 16)
    return "\\x" + (hex.count == 1 ? "0" + hex : hex)
  }

  /// A number as C formats it (C11 7.21.6.1): the precision is the minimum number of digits
  /// (a zero value with precision 0 prints no digits); `#` with `%o` adds a leading 0 only
  /// when the digits do not already start with one; the sign (`-`, or `+`/space for signed
  /// conversions) and the `0x` prefix come before any zero padding, and the `0` flag pads to
  /// the width only when neither a precision nor `-` is given.
  static func number(
    _ digits: String, negative: Bool, prefix: String, _ conversion: FormatString.Conversion,
    signsApply: Bool = false
  ) -> String {
    var body = digits
    if let precision = conversion.precision {
      if precision == 0 && digits == "0" { body = "" }
      if body.count < precision { body = String(repeating: "0", count: precision - body.count) + body }
    }
    if conversion.kind == .octal, conversion.alternate, body.first != "0" { body = "0" + body }
    var sign = ""
    if negative {
      sign = "-"
    } else if signsApply || conversion.kind == .signed || conversion.kind == .integer {
      if conversion.plusSign { sign = "+" } else if conversion.spaceSign { sign = " " }
    }
    let lead = sign + prefix
    if conversion.zeroPad, !conversion.leftJustify, conversion.precision == nil, let width = conversion.width,
      lead.count + body.count < width
    {
      body = String(repeating: "0", count: width - lead.count - body.count) + body
    }
    return pad(lead + body, conversion)
  }

  static func pad(_ text: String, _ conversion: FormatString.Conversion) -> String {
    guard let width = conversion.width, text.count < width else { return text }
    let fill = String(repeating: " ", count: width - text.count)
    return conversion.leftJustify ? text + fill : fill + text
  }
}
