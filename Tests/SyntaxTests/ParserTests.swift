import Testing

@testable import SwtraceSyntax

/// Parses a spec that must be free of diagnostics and returns its range-free dump.
private func dump(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> String {
  let (result, file) = parse(text)
  #expect(result.diagnostics.isEmpty, "\(render(result, file))", sourceLocation: sourceLocation)
  return Dump.spec(result.spec)
}

/// The dump of the single statement of `skb:* { STATEMENT }`.
private func statement(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> String
{
  let (result, file) = parse("skb:* {\n\(text)\n}")
  #expect(result.diagnostics.isEmpty, "\(render(result, file))", sourceLocation: sourceLocation)
  guard let clause = result.spec.clauses.first, clause.body.statements.count == 1 else {
    Issue.record("expected one statement", sourceLocation: sourceLocation)
    return ""
  }
  return Dump.statement(clause.body.statements[0])
}

/// The dump of `$x = EXPRESSION`'s value.
private func expression(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> String
{
  let (result, file) = parse("skb:* {\n$x = \(text)\n}")
  #expect(result.diagnostics.isEmpty, "\(render(result, file))", sourceLocation: sourceLocation)
  guard let first = result.spec.clauses.first?.body.statements.first,
    case .assignVariable(_, let value) = first.kind
  else {
    Issue.record("expected an assignment", sourceLocation: sourceLocation)
    return ""
  }
  return Dump.expr(value)
}

private func ids(_ text: String) -> [DiagnosticID] { parse(text).0.diagnostics.map(\.id) }

@Suite struct ParserTests {
  @Test func missionOneLinerParsesExactly() {
    let (result, _) = parse("skb:* /mark==0xdead/ < print(len, gso_type) >")
    #expect(result.diagnostics.isEmpty)
    let call = Expr(
      .call(
        name: "print",
        arguments: [
          Expr(.identifier("len"), range: SourceRange(29, 32)),
          Expr(.identifier("gso_type"), range: SourceRange(34, 42)),
        ]), range: SourceRange(23, 43))
    let expected = Spec(clauses: [
      Clause(
        probes: [Probe(kind: .skb(glob: "*"), range: SourceRange(0, 5))],
        filter: Expr(
          .binary(
            .equal, Expr(.identifier("mark"), range: SourceRange(7, 11)),
            Expr(.integer(0xdead), range: SourceRange(13, 19))), range: SourceRange(7, 19)),
        body: Block(
          statements: [Statement(kind: .expression(call), range: SourceRange(23, 43))],
          style: .angle,
          range: SourceRange(21, 45)),
        range: SourceRange(0, 45))
    ])
    #expect(result.spec == expected)
  }

  @Test func probes() {
    #expect(dump("skb:* {}") == #"(clause [skb(glob: "*")] {})"#)
    #expect(dump("skb:net_dev_* {}") == #"(clause [skb(glob: "net_dev_*")] {})"#)
    #expect(dump("skb:dev_[qh]?x {}") == #"(clause [skb(glob: "dev_[qh]?x")] {})"#)
    #expect(
      dump("tracepoint:net:net_dev_* {}")
        == #"(clause [tracepoint(category: "net", name: "net_dev_*")] {})"#)
    #expect(dump("kprobe:tcp_sendmsg {}") == #"(clause [kprobe(function: "tcp_sendmsg")] {})"#)
    #expect(
      dump("kretprobe:tcp_sendmsg {}") == #"(clause [kretprobe(function: "tcp_sendmsg")] {})"#)
    #expect(dump("fentry:ip_rcv {}") == #"(clause [fentry(function: "ip_rcv")] {})"#)
    #expect(dump("fexit:ip_rcv.cold {}") == #"(clause [fexit(function: "ip_rcv.cold")] {})"#)
    #expect(dump("BEGIN {} END {}") == "(clause [begin] {})\n(clause [end] {})")
    #expect(
      dump("skb:a,skb:b , kprobe:c {}")
        == #"(clause [skb(glob: "a") skb(glob: "b") kprobe(function: "c")] {})"#)
  }

  @Test func intervals() {
    let cases: [(String, UInt64)] = [
      ("1ns", 1), ("5us", 5_000), ("500ms", 500_000_000), ("1s", 1_000_000_000),
      ("2m", 120_000_000_000),
      ("1_000ms", 1_000_000_000),
    ]
    for (text, nanoseconds) in cases {
      #expect(dump("interval:\(text) {}") == "(clause [interval(nanoseconds: \(nanoseconds))] {})")
    }
    #expect(ids("interval:0ms {}") == [.zeroInterval])
    #expect(ids("interval:5 {}") == [.invalidInterval])
    #expect(ids("interval:5h {}") == [.invalidInterval])
    #expect(ids("interval:99999999999999999999m {}") == [.invalidInterval])
  }

  @Test func probeErrors() {
    #expect(ids("kprobee:foo {}") == [.unknownProbeType])
    #expect(
      parse("kprobee:foo {}").0.diagnostics.first?.notes.first?.message == "did you mean 'kprobe'?")
    #expect(
      parse("tracepoitn:a:b {}").0.diagnostics.first?.notes.first?.message
        == "did you mean 'tracepoint'?")
    #expect(parse("begin {}").0.diagnostics.first?.notes.first?.message == "did you mean 'BEGIN'?")
    #expect(
      parse("tp:a:b {}").0.diagnostics.first?.notes.first?.message == "did you mean 'tracepoint'?")
    #expect(parse("zzzzzz:a {}").0.diagnostics.first?.notes.isEmpty == true)
    #expect(ids("skb: {}") == [.malformedProbe])
    #expect(ids("tracepoint:net {}") == [.malformedProbe])
    #expect(ids("kprobe {}") == [.malformedProbe])
    #expect(ids("BEGIN:x {}") == [.malformedProbe])
    #expect(ids("skb:a[bc {}") == [.invalidGlob])
    #expect(ids("skb:a] {}") == [.invalidGlob])
    #expect(ids("skb:a[] {}") == [.invalidGlob])
    #expect(ids("skb:* print(len)") == [.expectedBlock])
    #expect(ids("42 {}") == [.expectedProbe])
  }

  /// The one edit distance every "did you mean" note uses, in the parser and in Sema.
  @Test func editDistance() {
    #expect(Spelling.distance("kprobe", "kprobe") == 0)
    #expect(Spelling.distance("kprbe", "kprobe") == 1)
    #expect(Spelling.distance("tracepoitn", "tracepoint") == 1)
    #expect(Spelling.distance("lne", "len") == 1)
    #expect(Spelling.distance("", "abc") == 3)
    #expect(Spelling.distance("abc", "") == 3)
    // A swap is one edit only between neighbours: "ca" to "abc" is three edits.
    #expect(Spelling.distance("ca", "abc") == 3)
    #expect(Spelling.distance("kitten", "sitting") == 3)
    #expect(Spelling.closest(to: "prnt", among: ["print", "printf", "exit"], limit: 1) == "print")
    #expect(Spelling.closest(to: "xyz", among: ["print", "printf", "exit"], limit: 1) == nil)
  }

  @Test func filters() {
    #expect(dump("skb:* /len > 100/ {}") == #"(clause [skb(glob: "*")] /(> len 100)/ {})"#)
    #expect(dump("skb:*/(len / 2) == 3/{}") == #"(clause [skb(glob: "*")] /(== (/ len 2) 3)/ {})"#)
    #expect(dump("skb:* /a\n && b/ {}") == #"(clause [skb(glob: "*")] /(&& a b)/ {})"#)
    #expect(ids("skb:* /len / 2 == 1/ {}") == [.unparenthesizedDivisionInFilter])
    #expect(ids("skb:* /len > 1 {}") == [.unclosedFilter])
  }

  @Test func literals() {
    #expect(expression("42") == "42")
    #expect(expression("0xdead") == "57005")
    #expect(expression("0b1_01") == "5")
    #expect(expression("\"a\\tb\"") == #""a\tb""#)
    #expect(expression("true") == "true")
    #expect(expression("false") == "false")
    #expect(expression("10.0.0.10") == "ipv4(10.0.0.10)")
    #expect(expression("10.0.0.0/8") == "cidr(ipv4(10.0.0.0)/8)")
    #expect(expression("fd00::1") == "ipv6(fd00::1)")
    #expect(expression("2001:db8::/32") == "cidr(ipv6(2001:db8::)/32)")
  }

  @Test func ipv4Value() {
    let (result, _) = parse("skb:* /ip.daddr == 10.0.0.10/ {}")
    guard case .binary(_, _, let rhs)? = result.spec.clauses.first?.filter?.kind else {
      Issue.record("no filter")
      return
    }
    #expect(rhs.kind == .ipv4(0x0a00_000a))
  }

  @Test func primaryAndPostfix() {
    #expect(expression("ip.saddr") == "(. ip saddr)")
    #expect(expression("skb->dev->name") == "(-> (-> skb dev) name)")
    #expect(expression("a.b.c") == "(. (. a b) c)")
    #expect(expression("a[1][2]") == "(index (index a 1) 2)")
    #expect(expression("f()") == "(f)")
    #expect(expression("f(x, y,)") == "(f x y)")
    #expect(expression("$y") == "$y")
    #expect(expression("@m") == "@m")
    #expect(expression("@m[k1, k2]") == "@m[k1 k2]")
    #expect(expression("@") == "@")
    #expect(expression("@[k]") == "@[k]")
    #expect(expression("(u32)len") == "(cast u32 len)")
    #expect(expression("(struct sk_buff *)arg0") == "(cast struct sk_buff * arg0)")
    #expect(expression("(union u **)p") == "(cast union u ** p)")
    #expect(expression("(u8)-x") == "(cast u8 (- x))")
    #expect(expression("(len)") == "len")
  }

  @Test func precedence() {
    #expect(expression("1 + 2 * 3") == "(+ 1 (* 2 3))")
    #expect(expression("1 - 2 - 3") == "(- (- 1 2) 3)")
    #expect(expression("a || b && c") == "(|| a (&& b c))")
    #expect(expression("a | b ^ c & d") == "(| a (^ b (& c d)))")
    #expect(expression("a == b < c") == "(== a (< b c))")
    #expect(expression("a in b == c") == "(== (in a b) c)")
    #expect(expression("a < b << c + d") == "(< a (<< b (+ c d)))")
    #expect(expression("a >> 1 >= b") == "(>= (>> a 1) b)")
    #expect(expression("a % b / c * d") == "(* (/ (% a b) c) d)")
    #expect(expression("-a * !b + ~c") == "(+ (* (- a) (! b)) (~ c))")
    #expect(expression("(a + b) * c") == "(* (+ a b) c)")
    #expect(expression("- - a") == "(- (- a))")
    #expect(expression("(u32)a + b") == "(+ (cast u32 a) b)")
    #expect(expression("-a.b[0]") == "(- (index (. a b) 0))")
    // Every operator's precedence matches BinaryOperator.precedence.
    for op in BinaryOperator.allCases {
      for other in BinaryOperator.allCases {
        let text = "a \(op.rawValue) b \(other.rawValue) c"
        let expected =
          op.precedence >= other.precedence
          ? "(\(other.rawValue) (\(op.rawValue) a b) c)"
          : "(\(op.rawValue) a (\(other.rawValue) b c))"
        #expect(expression(text) == expected, "\(text)")
      }
    }
  }

  @Test func statements() {
    #expect(statement("print(len, gso_type)") == "(print len gso_type)")
    #expect(statement("printf(\"%d\\n\", len)") == #"(printf "%d\n" len)"#)
    #expect(statement("track()") == "(track)")
    #expect(statement("exit()") == "(exit)")
    #expect(statement("delete(@m[k])") == "(delete @m[k])")
    #expect(statement("clear(@m)") == "(clear @m)")
    #expect(statement("$x = len + 1") == "(= $x (+ len 1))")
    #expect(statement("@m[dev, cpu] = count()") == "(= @m[dev cpu] (count))")
    #expect(statement("@ = sum(len)") == "(= @ (sum len))")
    #expect(statement("if (a) { x() }") == "(if a {(x)})")
    #expect(statement("if (a) < x() > else < y() >") == "(if a <(x)> else <(y)>)")
    #expect(
      statement("if (a) { x() } else if (b) { y() } else { z() }")
        == "(if a {(x)} else {(if b {(y)} else {(z)})})")
    #expect(statement("if (a) {\n x()\n}\nelse {\n y()\n}") == "(if a {(x)} else {(y)})")
  }

  @Test func separators() {
    #expect(
      dump("skb:* { a(); b()\n c() ;; d() }") == #"(clause [skb(glob: "*")] {(a) (b) (c) (d)})"#)
    // Newlines inside parentheses and brackets do not end a statement.
    #expect(
      dump("skb:* {\n print(a,\n b)\n @m[\n k] = count()\n}")
        == #"(clause [skb(glob: "*")] {(print a b) (= @m[k] (count))})"#)
    // A trailing binary operator continues onto the next line.
    #expect(statement("$x = a +\n b") == "(= $x (+ a b))")
    #expect(ids("skb:* { a() b() }") == [.expectedStatementSeparator])
    // A newline ends the statement before an operator at the start of the next line.
    #expect(ids("skb:* {\n $x = a\n + b\n}") == [.expectedExpression])
  }

  @Test func commentsAndShebang() {
    #expect(
      dump("#!/usr/bin/env swtrace\n// c\nskb:* /* inline */ { /* x */ print(len) // y\n }")
        == #"(clause [skb(glob: "*")] {(print len)})"#)
  }

  @Test func angleBlocks() {
    // The last `>` closes the block; `>` inside parentheses or brackets is a comparison.
    #expect(
      dump("skb:* < print(len > 5, @m[a > b]) >")
        == #"(clause [skb(glob: "*")] <(print (> len 5) @m[(> a b)])>)"#)
    #expect(dump("skb:* < $x = (a >= b) >") == #"(clause [skb(glob: "*")] <(= $x (>= a b))>)"#)
    #expect(dump("skb:* < $x = (a >> 2) >") == #"(clause [skb(glob: "*")] <(= $x (>> a 2))>)"#)
    #expect(dump("skb:*<print(len)>") == #"(clause [skb(glob: "*")] <(print len)>)"#)
    // `< ... >` nests, and adjacent `>>` closes two blocks.
    #expect(
      dump("skb:* < if (a) < print(b) >> ") == #"(clause [skb(glob: "*")] <(if a <(print b)>)>)"#)
    #expect(
      dump("skb:* < if (a) < x() > else < y() > >")
        == #"(clause [skb(glob: "*")] <(if a <(x)> else <(y)>)>)"#)
    // One line may hold several clauses.
    #expect(dump("BEGIN < a() > END < b() > kprobe:f < c() >").split(separator: "\n").count == 3)
    // Inside `{ }`, `>` is always a comparison.
    #expect(
      dump("skb:* { $x = a > b; $y = a >> b }")
        == #"(clause [skb(glob: "*")] {(= $x (> a b)) (= $y (>> a b))})"#)
    #expect(
      dump("skb:* < if (a) { $x = a > b } >")
        == #"(clause [skb(glob: "*")] <(if a {(= $x (> a b))})>)"#)
  }

  @Test func unparenthesizedGreaterInAngleBlock() {
    let (result, _) = parse("skb:* < $x = len > 100 >")
    #expect(result.diagnostics.map(\.id) == [.unparenthesizedGreaterInAngleBlock])
    #expect(
      result.diagnostics.first?.message
        == "a comparison with '>' inside a '< ... >' block must be parenthesized: write (a > b)")
    #expect(result.diagnostics.first?.range == SourceRange(17, 18))
    #expect(
      result.diagnostics.first?.notes.first?.message
        == "the unparenthesized '>' ends the block; write (len > 100)")
    // Recovery parses the comparison as intended.
    #expect(Dump.spec(result.spec) == #"(clause [skb(glob: "*")] <(= $x (> len 100))>)"#)
    #expect(ids("skb:* < $x = a >= 1 >") == [.unparenthesizedGreaterInAngleBlock])
    #expect(ids("skb:* < print(a) > b >") == [.unparenthesizedGreaterInAngleBlock])
    #expect(ids("skb:* < $x = a >> 2 >") == [.unparenthesizedShiftInAngleBlock])
  }

  @Test func blockErrors() {
    let (result, _) = parse("skb:* < print(len)")
    #expect(result.diagnostics.map(\.id) == [.unclosedBlock])
    #expect(result.diagnostics.first?.message == "expected '>' to close the block")
    #expect(
      result.diagnostics.first?.notes == [.init(.note, "block opened here", at: SourceRange(6, 7))])
    #expect(ids("skb:* { print(len)") == [.unclosedBlock])
    #expect(ids("skb:* < print(len) }") == [.unclosedBlock])
    #expect(ids("skb:* { print(len) ) }") == [.expectedStatementSeparator])
    #expect(ids("skb:* {\n )\n print(len)\n }") == [.unexpectedToken])
    #expect(ids("skb:* { else { a() } }") == [.misplacedElse])
    #expect(ids("skb:* { len = 1 }") == [.invalidAssignmentTarget])
    #expect(ids("skb:* { if a { b() } }") == [.expectedToken])
    #expect(ids("skb:* { if (a) b() }") == [.expectedBlock])
    #expect(ids("skb:* { if (a) { b() } else c() }") == [.expectedBlock])
  }

  @Test func expressionErrors() {
    #expect(ids("skb:* { $x = }") == [.expectedExpression])
    #expect(ids("skb:* { $x = if }") == [.expectedExpression])
    #expect(ids("skb:* { print(a b) }") == [.expectedToken])
    #expect(ids("skb:* { $x = (a }") == [.expectedToken])
    #expect(ids("skb:* { $x = a[1 }") == [.expectedToken])
    #expect(ids("skb:* { $x = a. }") == [.expectedMemberName])
    #expect(ids("skb:* { $x = @m[] }") == [.emptyMapKey])
    #expect(ids("skb:* { $x = (struct)y }") == [.malformedCast])
    #expect(ids("skb:* { $x = (struct a b)y }") == [.malformedCast])
    #expect(ids("skb:* { $x = # }") == [.unexpectedCharacter])
    #expect(ids("") == [.emptySpec])
    #expect(ids("// only a comment\n") == [.emptySpec])
  }

  @Test func deepNestingIsADiagnostic() {
    let text =
      "skb:* { $x = " + String(repeating: "(", count: 10_000) + "1"
      + String(repeating: ")", count: 10_000) + " }"
    #expect(ids(text) == [.nestingTooDeep])
    let blocks = "skb:* " + String(repeating: "{ if (a) ", count: 5_000)
    #expect(ids(blocks) == [.nestingTooDeep])
    // Nesting within the limit is fine.
    #expect(
      ids(
        "skb:* { $x = " + String(repeating: "(", count: 50) + "1"
          + String(repeating: ")", count: 50) + " }"
      ).isEmpty)
  }

  @Test func ranges() {
    let text = "kprobe:f { if (a) { $v = -b } }"
    let (result, file) = parse(text)
    let clause = result.spec.clauses[0]
    #expect(file.text(of: clause.range) == text)
    #expect(file.text(of: clause.probes[0].range) == "kprobe:f")
    let ifStatement = clause.body.statements[0]
    #expect(file.text(of: ifStatement.range) == "if (a) { $v = -b }")
    guard case .ifElse(_, let then, _) = ifStatement.kind else { return }
    #expect(file.text(of: then.range) == "{ $v = -b }")
    #expect(file.text(of: then.statements[0].range) == "$v = -b")
    let castText = "skb:* { print((struct sk_buff *)skb->len, (a + b)) }"
    let (castResult, castFile) = parse(castText)
    guard case .expression(let call) = castResult.spec.clauses[0].body.statements[0].kind,
      case .call(_, let arguments) = call.kind, case .cast(let type, _) = arguments[0].kind
    else {
      Issue.record("no cast")
      return
    }
    #expect(castFile.text(of: arguments[0].range) == "(struct sk_buff *)skb->len")
    #expect(castFile.text(of: type.range) == "struct sk_buff *")
    #expect(castFile.text(of: arguments[1].range) == "(a + b)")
  }
}
