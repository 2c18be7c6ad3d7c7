import BTF
import CodeGen
import Sema
import SwtraceSyntax
import Testing
import TestSupport

/// The language reference's examples are real specs: each one not marked `syntax-only`
/// type-checks, compiles and passes the verifier pre-check against a fixture kernel (and,
/// in DifferentialTests, loads into the running one).
@Suite struct GrammarExamples {
  static let release = "6.12.117+deb12-amd64"
  /// Loaded once for all examples.
  static let types = Result { try KernelTypes.load(path: try Fixtures.btfPath(release)) }

  @Test(arguments: try referenceExamples().filter { !$0.attributes.contains("syntax-only") })
  func exampleCompiles(example: ReferenceExample) throws {
    let types = try Self.types.get()
    // Function backends make skb:* thousands of programs: only examples that need them get them.
    let support: BackendSupport = example.attributes.contains("functions") ? .all : .tracepointsOnly
    let resolver = ProbeResolver(
      types: types, support: support, tracepointCategories: try Fixtures.tracepointCategories(Self.release))
    let file = SourceFile(name: "grammar/README.md example \(example.number)", text: example.text)
    switch SpecCompiler(resolver: resolver).compile(file) {
    case .compiled(let compiled, _):
      #expect(!compiled.programs.isEmpty)
    case .failed(let diagnostics):
      Issue.record("\(example.text)\n\(DiagnosticRenderer().render(diagnostics, in: file))")
    }
  }
}
