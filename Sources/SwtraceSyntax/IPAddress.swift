/// Parsing and printing of the address literals the language accepts.
///
/// Kept separate from the lexer so the formatter and the output of traced addresses share one
/// definition of the text form.
public enum IPAddressText {
  /// `10.0.0.10` -> 0x0a00000a (host order); nil unless exactly four decimal parts of 0...255.
  public static func parseIPv4(_ text: Substring) -> UInt32? {
    let parts = text.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 4 else { return nil }
    var value: UInt32 = 0
    for part in parts {
      guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
        let octet = UInt32(part), octet <= 255
      else { return nil }
      value = value << 8 | octet
    }
    return value
  }

  /// `fd00::1`, `2001:db8:0:0:0:0:0:1`, `::ffff:10.0.0.1` -> 16 bytes in network order.
  public static func parseIPv6(_ text: Substring) -> [UInt8]? {
    // At most one `::`, which stands for the run of zero groups needed to make eight.
    let halves = text.split(separator: "::", maxSplits: 2, omittingEmptySubsequences: false)
    guard halves.count <= 2 else { return nil }
    guard let head = groups(halves[0], allowIPv4Tail: halves.count == 1) else { return nil }
    if halves.count == 1 {
      return head.count == 8 ? bytes(head) : nil
    }
    guard let tail = groups(halves[1], allowIPv4Tail: true), head.count + tail.count <= 7 else {
      return nil
    }
    return bytes(head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail)
  }

  /// Dotted form in host order.
  public static func formatIPv4(_ value: UInt32) -> String {
    var text: [UInt8] = []
    appendIPv4(value, to: &text)
    return String(decoding: text, as: UTF8.self)
  }

  /// Appends the dotted form of `value` (host order) as ASCII: the event path writes it into
  /// its output buffer without making a String.
  public static func appendIPv4(_ value: UInt32, to text: inout [UInt8]) {
    for shift: UInt32 in [24, 16, 8, 0] {
      let octet = UInt8(truncatingIfNeeded: value >> shift)
      if octet >= 100 { text.append(0x30 + octet / 100) }
      if octet >= 10 { text.append(0x30 + octet / 10 % 10) }
      text.append(0x30 + octet % 10)
      if shift != 0 { text.append(UInt8(ascii: ".")) }
    }
  }

  /// The RFC 5952 form: lowercase, no leading zeros, the longest run of two or more zero
  /// groups (the first one on a tie) written as `::`. `?` for anything but 16 bytes, which
  /// no address is.
  public static func formatIPv6(_ bytes: [UInt8]) -> String {
    guard bytes.count == 16 else { return "?" }
    let words = (0..<8).map { UInt16(bytes[2 * $0]) << 8 | UInt16(bytes[2 * $0 + 1]) }
    var bestStart = -1
    var bestLength = 1
    var index = 0
    while index < 8 {
      guard words[index] == 0 else {
        index += 1
        continue
      }
      var end = index
      while end < 8, words[end] == 0 { end += 1 }
      if end - index > bestLength {
        bestStart = index
        bestLength = end - index
      }
      index = end
    }
    let hex = words.map { String($0, radix: 16) }
    guard bestStart >= 0 else { return hex.joined(separator: ":") }
    let head = hex[..<bestStart].joined(separator: ":")
    let tail = hex[(bestStart + bestLength)...].joined(separator: ":")
    return head + "::" + tail
  }

  private static func groups(_ text: Substring, allowIPv4Tail: Bool) -> [UInt16]? {
    if text.isEmpty { return [] }
    let parts = text.split(separator: ":", omittingEmptySubsequences: false)
    var result: [UInt16] = []
    for (index, part) in parts.enumerated() {
      if index == parts.count - 1, allowIPv4Tail, part.contains(".") {
        guard let v4 = parseIPv4(part) else { return nil }
        result.append(UInt16(v4 >> 16))
        result.append(UInt16(v4 & 0xffff))
        continue
      }
      guard !part.isEmpty, part.count <= 4, part.allSatisfy(\.isHexDigit),
        let word = UInt16(part, radix: 16)
      else { return nil }
      result.append(word)
    }
    return result
  }

  private static func bytes(_ words: [UInt16]) -> [UInt8] {
    words.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
  }
}
