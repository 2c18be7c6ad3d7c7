/// Punctuation and operator tokens.
///
/// `>` is always a single-character token: whether `>` `>` is a shift, `>` `=` a comparison,
/// or each `>` the end of a `< ... >` block is the parser's decision, made from adjacency.
enum Punct: String, Sendable, CaseIterable {
  case lParen = "("
  case rParen = ")"
  case lBracket = "["
  case rBracket = "]"
  case lBrace = "{"
  case rBrace = "}"
  case less = "<"
  case greater = ">"
  case comma = ","
  case semicolon = ";"
  case dot = "."
  case arrow = "->"
  case assign = "="
  case equal = "=="
  case notEqual = "!="
  case lessEqual = "<="
  case shiftLeft = "<<"
  case plus = "+"
  case minus = "-"
  case star = "*"
  case slash = "/"
  case percent = "%"
  case amp = "&"
  case ampAmp = "&&"
  case pipe = "|"
  case pipePipe = "||"
  case caret = "^"
  case bang = "!"
  case tilde = "~"
  case colon = ":"
  case question = "?"
  case plusPlus = "++"
  case minusMinus = "--"
  case plusAssign = "+="
  case minusAssign = "-="
  case starAssign = "*="
  case slashAssign = "/="
  case percentAssign = "%="
  case ampAssign = "&="
  case pipeAssign = "|="
  case caretAssign = "^="
  case shiftLeftAssign = "<<="
  case range = ".."

  /// The operator of a compound assignment (`+=` is `+`); `>>=` is spelled by three tokens
  /// and found by the parser.
  var compoundOperator: BinaryOperator? {
    switch self {
    case .plusAssign: .add
    case .minusAssign: .subtract
    case .starAssign: .multiply
    case .slashAssign: .divide
    case .percentAssign: .modulo
    case .ampAssign: .bitAnd
    case .pipeAssign: .bitOr
    case .caretAssign: .bitXor
    case .shiftLeftAssign: .shiftLeft
    default: nil
    }
  }
}

struct Token: Sendable {
  enum Kind: Hashable, Sendable {
    case identifier(String)
    /// `$name`; the name is empty after an `expected-variable-name` error.
    case variable(String)
    /// `$1`, `$2`, ...: a positional parameter.
    case positional(Int)
    /// `$#`
    case positionalCount
    /// `@name` or a bare `@` (empty name).
    case map(String)
    /// Integer, string, IPv4, IPv6 or CIDR literal, already converted.
    case literal(Expr.Kind)
    case punct(Punct)
    /// A character that starts no token; its diagnostic is attached.
    case invalid
    case eof
  }

  var kind: Kind
  var range: SourceRange
  /// Whether a newline (or a comment spanning one) separates this token from the previous one;
  /// statements end at such a newline.
  var newlineBefore: Bool
  /// Lexical errors inside the token, reported when the parser consumes it (so a token peeked
  /// several times is reported once).
  var diagnostics: [Diagnostic] = []

  func `is`(_ punct: Punct) -> Bool { kind == .punct(punct) }

  func isIdentifier(_ name: String) -> Bool { kind == .identifier(name) }

  var identifierName: String? {
    if case .identifier(let name) = kind { return name }
    return nil
  }
}

/// Byte classes shared by the lexer and the probe scanner.
enum ASCII {
  static func isIdentifierStart(_ byte: UInt8) -> Bool {
    (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
      || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) || byte == UInt8(ascii: "_")
  }
  static func isDigit(_ byte: UInt8) -> Bool {
    byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
  }
  static func isIdentifierContinue(_ byte: UInt8) -> Bool {
    isIdentifierStart(byte) || isDigit(byte)
  }
  static func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
  }
  static func isHexDigit(_ byte: UInt8) -> Bool { hexValue(byte) != nil }
}

/// Turns bytes into tokens on demand, one at a time from any offset.
///
/// The lexer is stateless so the parser can re-lex from a position in another mode (probe
/// words are scanned raw by the parser) without invalidating anything.
struct Lexer: Sendable {
  let bytes: [UInt8]


  /// The token starting at the first non-trivia byte at or after `offset`.
  func token(at offset: Int) -> Token {
    var diagnostics: [Diagnostic] = []
    let (start, newline) = skipTrivia(from: offset, diagnostics: &diagnostics)
    guard start < bytes.count else {
      return Token(
        kind: .eof, range: .at(bytes.count), newlineBefore: newline, diagnostics: diagnostics)
    }
    let (kind, end) = lexToken(at: start, diagnostics: &diagnostics)
    return Token(
      kind: kind, range: SourceRange(start, end), newlineBefore: newline, diagnostics: diagnostics)
  }

  /// Skips whitespace, comments and (at offset 0) a byte-order mark and a `#!` line.
  func skipTrivia(from offset: Int, diagnostics: inout [Diagnostic]) -> (Int, newline: Bool) {
    var index = offset
    var newline = false
    if index == 0 {
      if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
      if bytes[index...].starts(with: Array("#!".utf8)) {
        while index < bytes.count, bytes[index] != UInt8(ascii: "\n") { index += 1 }
      }
    }
    while index < bytes.count {
      switch bytes[index] {
      case UInt8(ascii: "\n"):
        newline = true
        index += 1
      case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"), 0x0B, 0x0C:
        index += 1
      case UInt8(ascii: "/") where byte(index + 1) == UInt8(ascii: "/"):
        while index < bytes.count, bytes[index] != UInt8(ascii: "\n") { index += 1 }
      case UInt8(ascii: "/") where byte(index + 1) == UInt8(ascii: "*"):
        let start = index
        index += 2
        var closed = false
        while index < bytes.count {
          if bytes[index] == UInt8(ascii: "*"), byte(index + 1) == UInt8(ascii: "/") {
            index += 2
            closed = true
            break
          }
          if bytes[index] == UInt8(ascii: "\n") { newline = true }
          index += 1
        }
        if !closed {
          diagnostics.append(
            Diagnostic(
              .unterminatedComment, "unterminated '/*' comment", at: SourceRange(start, start + 2)))
        }
      default:
        return (index, newline)
      }
    }
    return (index, newline)
  }

  /// The end of the leading trivia (the header comment block) of the file.
  func leadingTriviaEnd() -> Int {
    var ignored: [Diagnostic] = []
    return skipTrivia(from: 0, diagnostics: &ignored).0
  }

  private func byte(_ index: Int) -> UInt8? { index < bytes.count ? bytes[index] : nil }

  private func text(_ start: Int, _ end: Int) -> String {
    String(decoding: bytes[start..<min(end, bytes.count)], as: UTF8.self)
  }

  private func lexToken(at start: Int, diagnostics: inout [Diagnostic]) -> (Token.Kind, Int) {
    let first = bytes[start]
    switch first {
    case UInt8(ascii: "\""):
      return lexString(at: start, diagnostics: &diagnostics)
    case UInt8(ascii: "$") where byte(start + 1) == UInt8(ascii: "#"):
      return (.positionalCount, start + 2)
    case UInt8(ascii: "$") where byte(start + 1).map(ASCII.isDigit) == true:
      var end = start + 1
      var number = 0
      while let next = byte(end), ASCII.isDigit(next) {
        number = min(number * 10 + Int(next - UInt8(ascii: "0")), 1_000_000)
        end += 1
      }
      if let next = byte(end), ASCII.isIdentifierStart(next) {
        while let next = byte(end), ASCII.isIdentifierContinue(next) { end += 1 }
        diagnostics.append(
          Diagnostic(
            .expectedVariableName, "a variable name cannot start with a digit: '\(text(start, end))'",
            at: SourceRange(start, end)
          ).with(.init(.help, "$1, $2, ... are the positional parameters; a variable is $ and a name, such as $count")))
        return (.variable(""), end)
      }
      return (.positional(number), end)
    case UInt8(ascii: "$"):
      var end = start + 1
      while let next = byte(end), ASCII.isIdentifierContinue(next) { end += 1 }
      if end == start + 1 || !ASCII.isIdentifierStart(bytes[start + 1]) {
        diagnostics.append(
          Diagnostic(
            .expectedVariableName, "expected a variable name after '$'", at: SourceRange(start, end)
          ))
        return (.variable(""), end)
      }
      return (.variable(text(start + 1, end)), end)
    case UInt8(ascii: "@"):
      var end = start + 1
      if let next = byte(end), ASCII.isIdentifierStart(next) {
        while let next = byte(end), ASCII.isIdentifierContinue(next) { end += 1 }
      }
      return (.map(text(start + 1, end)), end)
    default:
      break
    }
    // An IPv6 address may start with a digit, a letter a-f or `:`; it is tried first and falls
    // back to a number, identifier or `:` when the text is not address-shaped.
    if ASCII.isHexDigit(first) || first == UInt8(ascii: ":"),
      let result = lexIPv6(at: start, diagnostics: &diagnostics)
    {
      return result
    }
    if ASCII.isDigit(first) { return lexNumber(at: start, diagnostics: &diagnostics) }
    if ASCII.isIdentifierStart(first) {
      var end = start + 1
      while let next = byte(end), ASCII.isIdentifierContinue(next) { end += 1 }
      return (.identifier(text(start, end)), end)
    }
    if first == UInt8(ascii: "<"), byte(start + 1) == UInt8(ascii: "<"), byte(start + 2) == UInt8(ascii: "=") {
      return (.punct(.shiftLeftAssign), start + 3)
    }
    if let second = byte(start + 1),
      let punct = Punct(rawValue: String(decoding: [first, second], as: UTF8.self))
    {
      return (.punct(punct), start + 2)
    }
    if first < 0x80, let punct = Punct(rawValue: String(UnicodeScalar(first))) {
      return (.punct(punct), start + 1)
    }
    // Take the whole UTF-8 sequence so the message shows the character, not a byte.
    var end = start + 1
    if first >= 0xC0 {
      while let next = byte(end), next & 0xC0 == 0x80 { end += 1 }
    }
    let character = text(start, end)
    diagnostics.append(
      Diagnostic(
        .unexpectedCharacter, "unexpected character '\(character)'", at: SourceRange(start, end)))
    return (.invalid, end)
  }

  private func lexString(at start: Int, diagnostics: inout [Diagnostic]) -> (Token.Kind, Int) {
    var index = start + 1
    var value: [UInt8] = []
    while true {
      guard let current = byte(index), current != UInt8(ascii: "\n") else {
        diagnostics.append(
          Diagnostic(
            .unterminatedString, "unterminated string literal", at: SourceRange(start, index)))
        return (.literal(.string(String(decoding: value, as: UTF8.self))), index)
      }
      if current == UInt8(ascii: "\"") {
        index += 1
        break
      }
      guard current == UInt8(ascii: "\\") else {
        value.append(current)
        index += 1
        continue
      }
      let escapeStart = index
      guard let escaped = byte(index + 1), escaped != UInt8(ascii: "\n") else {
        index += 1
        continue  // reported as unterminated on the next turn
      }
      index += 2
      switch escaped {
      case UInt8(ascii: "n"): value.append(0x0A)
      case UInt8(ascii: "t"): value.append(0x09)
      case UInt8(ascii: "r"): value.append(0x0D)
      case UInt8(ascii: "0"): value.append(0)
      case UInt8(ascii: "\\"): value.append(UInt8(ascii: "\\"))
      case UInt8(ascii: "\""): value.append(UInt8(ascii: "\""))
      case UInt8(ascii: "x"):
        if let high = byte(index).flatMap(ASCII.hexValue),
          let low = byte(index + 1).flatMap(ASCII.hexValue)
        {
          value.append(high << 4 | low)
          index += 2
        } else {
          diagnostics.append(
            Diagnostic(
              .invalidEscape, "expected two hexadecimal digits after '\\x'",
              at: SourceRange(escapeStart, index)))
        }
      default:
        // Take a whole UTF-8 character after the backslash for the message.
        var end = index
        if escaped >= 0xC0 { while let next = byte(end), next & 0xC0 == 0x80 { end += 1 } }
        index = end
        diagnostics.append(
          Diagnostic(
            .invalidEscape, "unknown escape sequence '\(text(escapeStart, end))' in string literal",
            at: SourceRange(escapeStart, end)
          ).with(.init(.help, "the escapes are \\n \\t \\r \\0 \\\\ \\\" and \\xNN")))
      }
    }
    // Strings are Swift `String`s, so a `\xNN` producing invalid UTF-8 cannot be kept as written.
    let string = String(decoding: value, as: UTF8.self)
    guard Array(string.utf8) == value else {
      diagnostics.append(
        Diagnostic(
          .invalidUTF8String,
          "string literal is not valid UTF-8 after its '\\x' escapes are applied",
          at: SourceRange(start, index)))
      return (.literal(.string(string)), index)
    }
    return (.literal(.string(string)), index)
  }

  private func lexNumber(at start: Int, diagnostics: inout [Diagnostic]) -> (Token.Kind, Int) {
    let radix: UInt64
    var index = start
    let radixName: String
    if bytes[start] == UInt8(ascii: "0"), let marker = byte(start + 1),
      marker | 0x20 == UInt8(ascii: "x") || marker | 0x20 == UInt8(ascii: "b")
    {
      radix = marker | 0x20 == UInt8(ascii: "x") ? 16 : 2
      radixName = radix == 16 ? "hexadecimal" : "binary"
      index += 2
    } else {
      radix = 10
      radixName = "decimal"
      // `10.0.0.1`: a decimal number followed by `.digit` is an IPv4 address.
      var probe = start
      while let next = byte(probe), ASCII.isDigit(next) { probe += 1 }
      if byte(probe) == UInt8(ascii: "."), let after = byte(probe + 1), ASCII.isDigit(after) {
        return lexIPv4(at: start, diagnostics: &diagnostics)
      }
      if let scientific = lexScientific(at: start, diagnostics: &diagnostics) { return scientific }
    }
    var value: UInt64 = 0
    var overflow = false
    var digits = 0
    var invalid: (Int, UInt8)?
    while let next = byte(index), ASCII.isIdentifierContinue(next) {
      index += 1
      if next == UInt8(ascii: "_") { continue }
      guard let digit = ASCII.hexValue(next).map(UInt64.init), digit < radix else {
        if invalid == nil { invalid = (index - 1, next) }
        continue
      }
      digits += 1
      let (scaled, o1) = value.multipliedReportingOverflow(by: radix)
      let (sum, o2) = scaled.addingReportingOverflow(digit)
      overflow = overflow || o1 || o2
      value = sum
    }
    let range = SourceRange(start, index)
    if let (offset, character) = invalid {
      diagnostics.append(
        Diagnostic(
          .invalidIntegerLiteral,
          "invalid digit '\(String(UnicodeScalar(character)))' in \(radixName) literal '\(text(start, index))'",
          at: SourceRange(offset, offset + 1)))
      return (.literal(.integer(0)), index)
    }
    if digits == 0 {
      diagnostics.append(
        Diagnostic(
          .invalidIntegerLiteral, "expected \(radixName) digits after '\(text(start, start + 2))'",
          at: range))
      return (.literal(.integer(0)), index)
    }
    if overflow {
      diagnostics.append(
        Diagnostic(
          .integerOverflow, "integer literal '\(text(start, index))' does not fit in 64 bits",
          at: range
        ).with(.init(.note, "the largest value is 18446744073709551615 (0xffffffffffffffff)")))
      return (.literal(.integer(UInt64.max)), index)
    }
    return (.literal(.integer(value)), index)
  }

  /// `1e6`, `5E3`, `1_500e3`: an integer in scientific notation, as bpftrace writes them; nil
  /// when the word at `start` is not digits, `e` and digits.
  private func lexScientific(at start: Int, diagnostics: inout [Diagnostic]) -> (Token.Kind, Int)? {
    var end = start
    while let next = byte(end), ASCII.isIdentifierContinue(next) { end += 1 }
    let word = Array(bytes[start..<end])
    guard let marker = word.firstIndex(where: { $0 | 0x20 == UInt8(ascii: "e") }), marker > 0,
      word[..<marker].allSatisfy({ ASCII.isDigit($0) || $0 == UInt8(ascii: "_") }),
      marker + 1 < word.count, word[(marker + 1)...].allSatisfy(ASCII.isDigit)
    else { return nil }
    var mantissa: UInt64 = 0
    var overflow = false
    for digit in word[..<marker] where digit != UInt8(ascii: "_") {
      let (scaled, o1) = mantissa.multipliedReportingOverflow(by: 10)
      let (sum, o2) = scaled.addingReportingOverflow(UInt64(digit - UInt8(ascii: "0")))
      overflow = overflow || o1 || o2
      mantissa = sum
    }
    var exponent = 0
    for digit in word[(marker + 1)...] { exponent = min(exponent * 10 + Int(digit - UInt8(ascii: "0")), 100) }
    var value = mantissa
    for _ in 0..<exponent where value != 0 {
      let (scaled, o) = value.multipliedReportingOverflow(by: 10)
      overflow = overflow || o
      value = scaled
    }
    if overflow {
      diagnostics.append(
        Diagnostic(
          .integerOverflow, "integer literal '\(text(start, end))' does not fit in 64 bits",
          at: SourceRange(start, end)
        ).with(.init(.note, "the largest value is 18446744073709551615 (0xffffffffffffffff)")))
      return (.literal(.integer(UInt64.max)), end)
    }
    return (.literal(.integer(value)), end)
  }

  private func lexIPv4(at start: Int, diagnostics: inout [Diagnostic]) -> (Token.Kind, Int) {
    var index = start
    while let next = byte(index), ASCII.isIdentifierContinue(next) || next == UInt8(ascii: ".") {
      index += 1
    }
    let literal = text(start, index)
    guard let value = IPAddressText.parseIPv4(Substring(literal)) else {
      let parts = literal.split(separator: ".", omittingEmptySubsequences: false)
      let reason =
        parts.count == 4 && parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) })
        ? "each part must be at most 255" : "expected four numbers separated by '.'"
      diagnostics.append(
        Diagnostic(
          .invalidIPv4Address, "invalid IPv4 address '\(literal)': \(reason)",
          at: SourceRange(start, index)))
      return lexPrefix(
        address: .ipv4(0), start: start, end: index, maximum: 32, diagnostics: &diagnostics)
    }
    return lexPrefix(
      address: .ipv4(value), start: start, end: index, maximum: 32, diagnostics: &diagnostics)
  }

  /// An IPv6 address when the text at `start` is address-shaped (contains `::`, or seven `:`);
  /// otherwise nil and the caller lexes a number, identifier or `:`.
  private func lexIPv6(at start: Int, diagnostics: inout [Diagnostic]) -> (Token.Kind, Int)? {
    var index = start
    var colons = 0
    var hasDoubleColon = false
    while let next = byte(index), ASCII.isHexDigit(next) || next == UInt8(ascii: ":") {
      if next == UInt8(ascii: ":") {
        colons += 1
        if index > start, bytes[index - 1] == UInt8(ascii: ":") { hasDoubleColon = true }
      }
      index += 1
    }
    guard colons > 0, hasDoubleColon || colons == 7 else { return nil }
    // An embedded IPv4 tail (`::ffff:10.0.0.1`) and any stray identifier characters belong to
    // the same token, so the error covers the whole word.
    while let next = byte(index), ASCII.isIdentifierContinue(next) || next == UInt8(ascii: ".") {
      index += 1
    }
    let literal = text(start, index)
    guard let address = IPAddressText.parseIPv6(Substring(literal)) else {
      diagnostics.append(
        Diagnostic(
          .invalidIPv6Address, "invalid IPv6 address '\(literal)'", at: SourceRange(start, index)))
      return lexPrefix(
        address: .ipv6(Array(repeating: 0, count: 16)), start: start, end: index, maximum: 128,
        diagnostics: &diagnostics)
    }
    return lexPrefix(
      address: .ipv6(address), start: start, end: index, maximum: 128, diagnostics: &diagnostics)
  }

  /// `/N` directly after an address (no space) makes it a CIDR prefix; this is why `/` right
  /// after an address is never division.
  private func lexPrefix(
    address: Expr.Kind, start: Int, end: Int, maximum: Int, diagnostics: inout [Diagnostic]
  ) -> (Token.Kind, Int) {
    guard byte(end) == UInt8(ascii: "/"), let first = byte(end + 1), ASCII.isDigit(first) else {
      return (.literal(address), end)
    }
    var index = end + 1
    var length = 0
    while let next = byte(index), ASCII.isDigit(next) {
      length = min(length * 10 + Int(next - UInt8(ascii: "0")), 1_000_000)
      index += 1
    }
    if length > maximum {
      let family = maximum == 32 ? "IPv4" : "IPv6"
      diagnostics.append(
        Diagnostic(
          .cidrPrefixTooLong,
          "prefix length \(text(end + 1, index)) is too long for an \(family) address (at most \(maximum))",
          at: SourceRange(end + 1, index)))
      length = maximum
    }
    let addressExpr = Expr(address, range: SourceRange(start, end))
    return (.literal(.cidr(address: addressExpr, prefixLength: length)), index)
  }
}
