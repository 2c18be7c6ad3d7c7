import Foundation
import Testing
import TestSupport

@testable import SwtraceSyntax

/// One golden file per error case: the input and every diagnostic as the CLI prints it.
/// Run with `SWTRACE_RECORD=1` to rewrite the files after an intended change.
enum GoldenCases {
  static let all: [(name: String, input: String)] = [
    // Lexical errors.
    ("unterminated-comment", "skb:* { print(len) } /* never closed\n"),
    ("unterminated-string", "skb:* { printf(\"len=%d\\n, len) }\n"),
    ("invalid-escape-unknown", "skb:* { printf(\"a\\qb\") }\n"),
    ("invalid-escape-hex", "skb:* { printf(\"\\x4g\") }\n"),
    ("invalid-utf8-string", "skb:* { printf(\"\\xff\") }\n"),
    ("invalid-integer-digit", "skb:* /mark == 0xdeadbeeg/ { print(len) }\n"),
    ("invalid-integer-no-digits", "skb:* /mark == 0b/ { print(len) }\n"),
    ("integer-overflow", "skb:* /mark == 18446744073709551616/ { print(len) }\n"),
    ("invalid-ipv4-parts", "skb:* /ip.saddr == 10.0.1/ { print(len) }\n"),
    ("invalid-ipv4-octet", "skb:* /ip.saddr == 10.0.0.300/ { print(len) }\n"),
    ("invalid-ipv6-address", "skb:* /ip6.saddr == fd00::1::2/ { print(len) }\n"),
    ("cidr-prefix-too-long-ipv4", "skb:* /ip.saddr in 10.0.0.0/40/ { print(len) }\n"),
    ("cidr-prefix-too-long-ipv6", "skb:* /ip6.saddr in fd00::/129/ { print(len) }\n"),
    ("unexpected-character", "skb:* { print(len) # trailing\n}\n"),
    ("expected-variable-name", "skb:* { $ = len }\n"),

    // Probes and clauses.
    ("empty-spec", "// nothing to trace yet\n"),
    ("expected-probe", "{ print(len) }\n"),
    ("unknown-probe-type", "kprobee:tcp_sendmsg { print(len) }\n"),
    ("unknown-probe-type-no-suggestion", "usdt:/bin/sh:main { print(len) }\n"),
    ("unknown-probe-type-alias", "tp:net:net_dev_xmit { print(len) }\n"),
    ("malformed-probe-begin", "BEGIN:now { print(1) }\n"),
    ("malformed-probe-skb", "skb { print(len) }\n"),
    ("malformed-probe-tracepoint", "tracepoint:net { print(len) }\n"),
    ("malformed-probe-kprobe", "kprobe: { print(len) }\n"),
    ("malformed-probe-interval", "interval { print(1) }\n"),
    ("invalid-glob-unclosed", "skb:net_[dev { print(len) }\n"),
    ("invalid-glob-stray", "skb:net]dev { print(len) }\n"),
    ("invalid-glob-empty", "skb:net_[] { print(len) }\n"),
    ("invalid-glob-nested", "skb:net_[[a] { print(len) }\n"),
    ("invalid-interval", "interval:10 { print(1) }\n"),
    ("invalid-interval-too-long", "interval:999999999999999m { print(1) }\n"),
    ("zero-interval", "interval:0ms { print(1) }\n"),
    ("expected-block", "skb:* print(len)\n"),
    ("unclosed-filter", "skb:* /len > 100 { print(len) }\n"),
    ("unparenthesized-division-in-filter", "skb:* /len / 2 > 100/ { print(len) }\n"),

    // Blocks and statements.
    ("unclosed-block-angle", "skb:* < print(len)\n"),
    ("unclosed-block-brace", "skb:* {\n  print(len)\n"),
    ("unclosed-block-mismatched", "skb:* < print(len) }\n"),
    ("unparenthesized-greater-in-angle-block", "skb:* /mark==0xdead/ < $big = len > 1500 >\n"),
    ("unparenthesized-greater-equal-in-angle-block", "skb:* < $x = len >= 1 >\n"),
    ("unparenthesized-shift-in-angle-block", "skb:* < $hi = mark >> 16 >\n"),
    ("expected-statement-separator", "skb:* { print(len) print(mark) }\n"),
    ("invalid-assignment-target", "skb:* { len = 0 }\n"),
    ("misplaced-else", "skb:* {\n  print(len)\n  else { print(mark) }\n}\n"),
    ("unexpected-token", "skb:* {\n  print(len)\n  )\n}\n"),
    ("expected-block-if", "skb:* { if (len > 100) print(len) }\n"),
    ("expected-block-else", "skb:* { if (len > 100) { print(len) } else print(mark) }\n"),

    // Expressions.
    ("expected-expression", "skb:* { $x = }\n"),
    ("expected-expression-keyword", "skb:* { $x = else }\n"),
    ("expected-token-if-paren", "skb:* { if len > 100 { print(len) } }\n"),
    ("expected-token-if-close", "skb:* { if (len > 100 { print(len) } }\n"),
    ("expected-token-list", "skb:* { print(len mark) }\n"),
    ("expected-token-closing", "skb:* { $x = (len + 1 }\n"),
    ("expected-member-name-dot", "skb:* { print(ip.) }\n"),
    ("expected-member-name-arrow", "skb:* { print(skb->1) }\n"),
    ("empty-map-key", "skb:* { @bytes[] = sum(len) }\n"),
    ("malformed-cast-tag", "skb:* { print((struct *)skb) }\n"),
    ("malformed-cast-close", "skb:* { print((struct sk_buff x)skb) }\n"),
    ("nesting-too-deep", "skb:* { $x = " + String(repeating: "(", count: 120) + "1 }\n"),

    // Several errors in one spec: each is reported, and the valid clause survives.
    (
      "recovery",
      """
      kprobee:tcp_sendmsg { print(len) }
      skb:* /len > 100/ {
        $x = len + * 2
        print(len) print(mark)
        @m[] = count()
      }
      interval:0s < print(@m) >
      BEGIN { printf("ok\\n") }
      skb:* < $big = len > 1500 >

      """
    ),
  ]

  static var directory: URL { Golden.directory() }

  static func render(_ input: String) -> (String, [DiagnosticID]) {
    let file = SourceFile(name: "<spec>", text: input)
    let result = Parser.parse(file)
    let rendered = DiagnosticRenderer(useColor: false).render(result.diagnostics, in: file)
    return (
      "== input ==\n" + input + "== diagnostics ==\n" + rendered, result.diagnostics.map(\.id)
    )
  }
}

@Suite struct GoldenDiagnosticTests {
  @Test(arguments: GoldenCases.all.map(\.name))
  func golden(name: String) throws {
    let input = try #require(GoldenCases.all.first { $0.name == name }).input
    let (actual, ids) = GoldenCases.render(input)
    #expect(!ids.isEmpty, "a golden case must produce diagnostics")
    try Golden.check(actual, name: name + ".txt", directory: GoldenCases.directory)
  }

  @Test func everyDiagnosticHasAGolden() {
    let covered = Set(GoldenCases.all.flatMap { GoldenCases.render($0.input).1 })
    let missing = DiagnosticID.syntaxIDs.filter { !covered.contains($0) }
    #expect(missing.isEmpty, "no golden case produces \(missing)")
    let unknown = covered.subtracting(DiagnosticID.syntaxIDs)
    #expect(unknown.isEmpty, "ids missing from DiagnosticID.syntaxIDs: \(unknown)")
    #expect(Set(DiagnosticID.syntaxIDs).count == DiagnosticID.syntaxIDs.count)
  }

  @Test func noStaleGoldenFiles() throws {
    guard !Golden.isRecording else { return }
    let files = try FileManager.default.contentsOfDirectory(atPath: GoldenCases.directory.path)
      .filter { $0.hasSuffix(".txt") }
    let names = Set(GoldenCases.all.map { $0.name + ".txt" })
    #expect(Set(files) == names)
    #expect(names.count == GoldenCases.all.count, "duplicate golden case names")
  }

  @Test func recoveryReportsEveryError() {
    let input = GoldenCases.all.first { $0.name == "recovery" }!.input
    let (result, _) = parse(input)
    #expect(
      result.diagnostics.map(\.id) == [
        .unknownProbeType, .expectedExpression, .expectedStatementSeparator, .emptyMapKey,
        .zeroInterval,
        .unparenthesizedGreaterInAngleBlock,
      ])
    // The valid clauses are kept: the filter clause (without its broken statements),
    // BEGIN, and the recovered angle block.
    #expect(result.spec.clauses.count == 3)
  }
}
