import BTF
import Foundation
import Sema
import SwtraceSyntax
import Testing
import TestSupport

private let goldenDirectory = Golden.directory()

/// Loops that cannot be unrolled, jumps outside loops and the other refusals of issue 20's
/// constructs, each with its located diagnostic, as printed.
@Suite struct LoopErrors {
  static let cases: [(name: String, spec: String)] = [
    ("loop-unbounded-no-comparison", "skb:* { $i = 0; while (len) { $i++ } }"),
    ("loop-unbounded-not-constant-start", "skb:* { $i = len; while ($i < 10) { $i++ } }"),
    ("loop-unbounded-no-step", "skb:* { $i = 0; while ($i < 10) { print($i) } }"),
    ("loop-unbounded-two-steps", "skb:* { $i = 0; while ($i < 10) { $i++; $i += 2 } }"),
    ("loop-unbounded-continue-before-step", "skb:* { $i = 0; while ($i < 10) { if (len > 1) { continue } $i++ } }"),
    ("loop-too-long-while", "skb:* { $i = 0; while ($i < 5000) { $i++ } }"),
    ("loop-too-long-for", "skb:* { for ($i : 0..2000) { print($i) } }"),
    ("for-range-not-constant", "skb:* { for ($i : 0..len) { print($i) } }"),
    ("break-outside-loop", "skb:* { break }"),
  ]

  @Test(arguments: cases.map(\.name))
  func diagnosticMatchesGolden(name: String) throws {
    try expectRefusalMatchesGolden(Self.cases.first { $0.name == name }!.spec, name: name, directory: goldenDirectory)
  }

  /// A while loop over a counter unrolls as often as the loop's own arithmetic runs it.
  @Test(arguments: [
    ("$i = 0; while ($i < 10) { $i++ }", 10),
    // Integer literals are unsigned in swtrace (signed in bpftrace): 10, 7, 4, 1, then 1 - 3
    // wraps above 0, so counting down past 0 needs a signed variable.
    ("$i = 10; while ($i >= 3) { $i -= 3 }", 3),
    ("$i = (s64)10; while ($i > 0) { $i -= 3 }", 4),
    ("$i = 1; while (100 > $i) { $i = $i + 7 }", 15),
    ("$i = 0; while ($i != 12) { $i += 4 }", 3),
  ])
  func whileIterations(body: String, iterations: Int) throws {
    let (spec, rendered) = try check("skb:* { \(body) }")
    let clause = try #require(spec?.clauses.first, "\(rendered)")
    let loops: [Loop] = clause.actions.compactMap { action in
      if case .loop(let loop) = action { return loop }
      return nil
    }
    #expect(loops.map { $0.iterations } == [iterations], "\(clause.actions)")
  }
}
