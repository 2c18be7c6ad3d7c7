import BTF
import CodeGen
import Sema
import SwtraceSyntax
import Testing
import TestSupport

/// The fixture kernel the CodeGen tests compile against, so listings and program counts do
/// not change with the machine the tests run on.
let codeGenFixtureRelease = "6.12.117+deb12-amd64"

struct FixtureCompileFailure: Error {}

/// Parses and checks `text` against a fixture kernel's BTF with tracepoints only; records the
/// rendered diagnostics as an issue and throws when the spec does not check.
func checkAgainstFixture(_ text: String, release: String = codeGenFixtureRelease) throws -> CheckedSpec {
  let types = try KernelTypes.load(path: try Fixtures.btfPath(release))
  let file = SourceFile(name: "<spec>", text: text)
  let result = Checker(resolver: ProbeResolver(types: types, support: .tracepointsOnly))
    .check(Parser.parse(file).spec, source: file)
  return try #require(result.spec, "\(DiagnosticRenderer().render(result.diagnostics, in: file))")
}

/// Parses, checks, generates and pre-checks `text` against a fixture kernel's BTF; records the
/// rendered diagnostics as an issue and throws when the spec does not compile.
func compileAgainstFixture(
  _ text: String, release: String = codeGenFixtureRelease, support: BackendSupport = .tracepointsOnly,
  kprobeProgramsShareCode: Bool = false, options: DesugaringOptions = DesugaringOptions(),
  snaplen: Int = Snaplen.standard
) throws -> (CompiledSpec, SourceFile) {
  let types = try KernelTypes.load(path: try Fixtures.btfPath(release))
  let resolver = ProbeResolver(
    types: types, support: support, tracepointCategories: try Fixtures.tracepointCategories(release))
  let file = SourceFile(name: "<spec>", text: text)
  let compiler = SpecCompiler(
    resolver: resolver, options: options, kprobeProgramsShareCode: kprobeProgramsShareCode, snaplen: snaplen)
  switch compiler.compile(file) {
  case .compiled(let compiled, _):
    return (compiled, file)
  case .failed(let diagnostics):
    Issue.record("spec did not compile:\n\(DiagnosticRenderer().render(diagnostics, in: file))")
    throw FixtureCompileFailure()
  }
}
