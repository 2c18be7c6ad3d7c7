import Testing

@testable import SwtraceSyntax

/// All tokens of `text` in expression mode, as short strings.
private func tokens(_ text: String) -> [String] {
  let lexer = Lexer(bytes: Array(text.utf8))
  var out: [String] = []
  var offset = 0
  while true {
    let token = lexer.token(at: offset)
    let prefix = token.newlineBefore ? "\\n " : ""
    switch token.kind {
    case .eof: return out
    case .identifier(let name): out.append(prefix + "id:" + name)
    case .variable(let name): out.append(prefix + "$" + name)
    case .positional(let number): out.append(prefix + "$\(number)")
    case .positionalCount: out.append(prefix + "$#")
    case .map(let name): out.append(prefix + "@" + name)
    case .literal(let kind): out.append(prefix + Dump.expr(Expr(kind, range: token.range)))
    case .punct(let punct): out.append(prefix + punct.rawValue)
    case .invalid: out.append(prefix + "invalid")
    }
    offset = token.range.end
  }
}

private func lexDiagnostics(_ text: String) -> [DiagnosticID] {
  let lexer = Lexer(bytes: Array(text.utf8))
  var out: [DiagnosticID] = []
  var offset = 0
  while true {
    let token = lexer.token(at: offset)
    out += token.diagnostics.map(\.id)
    if token.kind == .eof { return out }
    offset = token.range.end
  }
}

@Suite struct LexerTests {
  @Test func punctuation() {
    #expect(
      tokens("( ) [ ] { } < > , ; . -> = == != <= << + - * / % & && | || ^ ! ~ :")
        == [
          "(", ")", "[", "]", "{", "}", "<", ">", ",", ";", ".", "->", "=", "==", "!=", "<=", "<<",
          "+",
          "-", "*", "/", "%", "&", "&&", "|", "||", "^", "!", "~", ":",
        ])
  }

  @Test func greaterIsAlwaysOneCharacter() {
    #expect(tokens(">>= >=") == [">", ">", "=", ">", "="])
  }

  @Test func identifiersVariablesMaps() {
    #expect(tokens("gso_type $x1 @bytes @ @[") == ["id:gso_type", "$x1", "@bytes", "@", "@", "["])
  }

  @Test func integers() {
    #expect(
      tokens("0 42 0xdead 0XFF 0b1010 1_000_000 0x_ff") == [
        "0", "42", "57005", "255", "10", "1000000", "255",
      ])
    #expect(tokens("18446744073709551615") == ["18446744073709551615"])
    #expect(lexDiagnostics("18446744073709551616") == [.integerOverflow])
    #expect(lexDiagnostics("0x") == [.invalidIntegerLiteral])
    #expect(lexDiagnostics("0b102") == [.invalidIntegerLiteral])
    #expect(lexDiagnostics("12ab") == [.invalidIntegerLiteral])
  }

  @Test func strings() {
    #expect(tokens(#""a\n\t\\\"\x41\r\0""#) == ["\"a\\n\\t\\\\\\\"A\\r\\0\""])
    #expect(lexDiagnostics(#""abc"#) == [.unterminatedString])
    #expect(lexDiagnostics(#""\q""#) == [.invalidEscape])
    #expect(lexDiagnostics(#""\xZ1""#) == [.invalidEscape])
    #expect(lexDiagnostics(#""\xff""#) == [.invalidUTF8String])
    #expect(tokens("\"héllo\"") == ["\"héllo\""])
  }

  @Test func ipv4AndCIDR() {
    #expect(
      tokens("10.0.0.10 10.0.0.0/8 255.255.255.255") == [
        "ipv4(10.0.0.10)", "cidr(ipv4(10.0.0.0)/8)", "ipv4(255.255.255.255)",
      ])
    // A space before `/` makes it division (or the end of a filter), not a prefix.
    #expect(tokens("10.0.0.0 /8") == ["ipv4(10.0.0.0)", "/", "8"])
    #expect(lexDiagnostics("10.0.0") == [.invalidIPv4Address])
    #expect(lexDiagnostics("10.0.0.256") == [.invalidIPv4Address])
    #expect(lexDiagnostics("10.0.0.0/33") == [.cidrPrefixTooLong])
  }

  @Test func ipv6() {
    #expect(
      tokens("::1 fd00::1 2001:db8::/32 ::") == [
        "ipv6(::1)", "ipv6(fd00::1)", "cidr(ipv6(2001:db8::)/32)", "ipv6(::)",
      ])
    #expect(tokens("2001:db8:0:0:1:0:0:1") == ["ipv6(2001:db8::1:0:0:1)"])
    #expect(tokens("::ffff:10.0.0.1") == ["ipv6(::ffff:a00:1)"])
    // Not address-shaped: a single colon between identifiers stays punctuation.
    #expect(tokens("dead:beef") == ["id:dead", ":", "id:beef"])
    #expect(tokens("add") == ["id:add"])
    #expect(lexDiagnostics("1::2::3") == [.invalidIPv6Address])
    #expect(lexDiagnostics("fd00::/129") == [.cidrPrefixTooLong])
  }

  @Test func triviaAndNewlines() {
    #expect(
      tokens("a // comment\n b /* x\n y */ c /* z */ d") == [
        "id:a", "\\n id:b", "\\n id:c", "id:d",
      ])
    #expect(tokens("#!/usr/bin/env swtrace\nBEGIN") == ["\\n id:BEGIN"])
    #expect(lexDiagnostics("a /* open") == [.unterminatedComment])
  }

  @Test func unexpectedCharacters() {
    #expect(tokens("a # é") == ["id:a", "invalid", "invalid"])
    #expect(lexDiagnostics("é") == [.unexpectedCharacter])
    // `$1` is a positional parameter; `$1x` is neither that nor a variable name.
    #expect(lexDiagnostics("$ $1x") == [.expectedVariableName, .expectedVariableName])
    #expect(lexDiagnostics("$1 $#") == [])
  }
}
