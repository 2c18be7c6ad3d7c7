public import CodeGen
public import Sema

/// Formats the values of a `printf` event as C's printf would, with swtrace's own reading of
/// each value: `%s` prints any value the way `print` does (addresses, enum and flag names),
/// the number conversions print the value's bits at its own width.
public enum PrintfRenderer {
  public static func render(
    _ format: FormatString, fields: [EventField], probeNames: [String], bytes: (EventField) -> [UInt8]
  ) -> String {
    var out = ""
    for piece in format.pieces {
      switch piece {
      case .text(let text):
        out += text
      case .conversion(let conversion, let argument):
        guard argument < fields.count else { continue }
        let field = fields[argument]
        let raw = bytes(field)
        out += render(conversion, type: field.type, size: field.size, raw: raw, probeNames: probeNames)
      }
    }
    return out
  }

  static func render(
    _ conversion: FormatString.Conversion, type: ValueType, size: Int, raw: [UInt8], probeNames: [String]
  ) -> String {
    // Its own width and its type's signedness: an enum prints as the enum's type says.
    let stored = StoredNumber(raw, width: size, as: type)
    let bits = stored.bits
    let signedValue = stored.signedValue
    switch conversion.kind {
    case .signed, .integer:
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
      let digits = String(bits, radix: 8)
      return number(digits, negative: false, prefix: conversion.alternate && bits != 0 ? "0" : "", conversion)
    case .pointer:
      return pad("0x" + String(bits, radix: 16), conversion)
    case .character:
      return pad(String(Character(UnicodeScalar(UInt8(truncatingIfNeeded: bits)))), conversion)
    case .string:
      var text = ValueDecoder.decode(type: type, size: size, probeNames: probeNames, bytes: raw).text
      if let precision = conversion.precision { text = String(text.prefix(precision)) }
      return pad(text, conversion)
    }
  }

  /// Sign, precision (minimum digits), then zero or space padding to the width.
  static func number(_ digits: String, negative: Bool, prefix: String, _ conversion: FormatString.Conversion) -> String {
    var body = digits
    if let precision = conversion.precision {
      if precision == 0 && digits == "0" { body = "" }
      if body.count < precision { body = String(repeating: "0", count: precision - body.count) + body }
    }
    var sign = ""
    if negative {
      sign = "-"
    } else if conversion.kind == .signed || conversion.kind == .integer {
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
