import BTF
import CodeGen
import Foundation
import Sema
import SwtraceSyntax
import Testing
import TestSupport

private let goldenDirectory = Golden.directory()

/// Specs refused after type checking: by code generation (values too large for an event or
/// for the memory a clause has) and by the pre-check (too much work for the kernel's
/// verifier). Each refusal is a located diagnostic, never a crash; the rendered text is
/// golden. `VerificationCostKernelTests` and the differential test hold the pre-check's
/// verdicts against the kernel's.
@Suite struct PrecheckDiagnosticTests {
  /// Sums of comparisons weighted by powers of two: a number different along each of the
  /// 2^18 paths through the comparisons, which decides the `if`.
  static let tooComplex =
    "skb:net_dev_queue {\n  if (" + (0..<18).map { "(mark > \($0)) * \(1 << $0)" }.joined(separator: " + ")
    + " == 3) {\n    print(len)\n  }\n}"

  static let specs: [(name: String, text: String)] = [
    ("precheck-too-complex", tooComplex),
    ("event-too-large", "skb:net_dev_queue {\n  print(\"" + String(repeating: "x", count: 40000) + "\")\n}"),
    ("variable-too-large", "skb:net_dev_queue {\n  $s = \"" + String(repeating: "x", count: 40000) + "\"\n  print(len)\n}"),
  ]

  func refusal(_ text: String) throws -> (diagnostics: [Diagnostic], file: SourceFile) {
    let types = try KernelTypes.load(path: try Fixtures.btfPath(codeGenFixtureRelease))
    let file = SourceFile(name: "<spec>", text: text)
    let compiler = SpecCompiler(resolver: ProbeResolver(types: types, support: .tracepointsOnly))
    guard case .failed(let diagnostics) = compiler.compile(file) else {
      Issue.record("the spec must be refused")
      return ([], file)
    }
    return (diagnostics, file)
  }

  @Test(arguments: specs.map(\.name))
  func refusalMatchesGolden(name: String) throws {
    let (diagnostics, file) = try refusal(Self.specs.first { $0.name == name }!.text)
    #expect(diagnostics.filter { $0.severity == .error }.count == 1)
    // Long source lines (and their carets) are cut in the golden file; the locations and
    // the messages are whole.
    let rendered = DiagnosticRenderer().render(diagnostics, in: file).split(separator: "\n")
      .map { line in line.contains(" | ") || line.hasSuffix(" |") ? String(line.prefix(120)) : String(line) }
      .joined(separator: "\n")
    try Golden.check(rendered + "\n", name: "\(name).txt", directory: goldenDirectory)
  }

  @Test func theTooComplexSpecIsBlamedOnItsCondition() throws {
    let (diagnostics, file) = try refusal(Self.tooComplex)
    let diagnostic = try #require(diagnostics.first)
    #expect(diagnostic.id == "verifier-precheck")
    // Line 2 is the `if`: its condition holds the numbers that differ along every path.
    #expect(file.location(of: diagnostic.range.start).line == 2)
    #expect(diagnostic.notes.contains { $0.message.contains("$variable") })
  }

  @Test func theSameSumInAVariableIsCheap() throws {
    // Kept in a variable (in the scratch map, which the verifier does not follow), the sum
    // no longer keeps the paths apart.
    let text = "skb:net_dev_queue {\n  $s = " + (0..<18).map { "(mark > \($0)) * \(1 << $0)" }.joined(separator: " + ")
      + "\n  if ($s == 3) {\n    print(len)\n  }\n}"
    let (compiled, _) = try compileAgainstFixture(text)
    let work = try #require(compiled.programs.first?.verifierWork)
    #expect(work < 10_000, "\(work)")
  }
}
