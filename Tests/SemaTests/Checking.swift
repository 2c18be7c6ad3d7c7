import Foundation
import BTF
import Sema
import SwtraceSyntax
import Testing
import TestSupport

/// The fixture kernel Sema's tests check against (goldens included), named by its release in
/// messages, so that nothing changes with the kernel the tests run on.
let semaFixtureRelease = "6.12.117+deb12-amd64"

func semaFixtureTypes() throws -> KernelTypes {
  try KernelTypes.load(path: try Fixtures.btfPath(semaFixtureRelease), origin: semaFixtureRelease)
}

/// A resolver for the fixture kernel, with its tracepoint categories.
func semaFixtureResolver(support: BackendSupport = .tracepointsOnly) throws -> ProbeResolver {
  ProbeResolver(
    types: try semaFixtureTypes(), support: support,
    tracepointCategories: try Fixtures.tracepointCategories(semaFixtureRelease))
}

/// Parses and checks `text`; the checked spec (nil when it has errors) and the diagnostics
/// as the command line prints them.
func check(_ text: String, resolver: ProbeResolver) -> (spec: CheckedSpec?, rendered: String) {
  let file = SourceFile(name: "<spec>", text: text)
  let parsed = Parser.parse(file)
  #expect(!parsed.hasErrors, "test spec must parse: \(text)")
  let result = Checker(resolver: resolver).check(parsed.spec, source: file)
  return (result.spec, DiagnosticRenderer().render(result.diagnostics, in: file))
}

/// The same against the fixture kernel with tracepoints only.
func check(_ text: String) throws -> (spec: CheckedSpec?, rendered: String) {
  check(text, resolver: try semaFixtureResolver())
}

/// Checks that `spec` is refused with an error, and that what the command line would print
/// for it (after a `// spec` line) matches the golden file `name`.txt in `directory`.
func expectRefusalMatchesGolden(_ spec: String, name: String, directory: URL) throws {
  let (checked, rendered) = try check(spec)
  #expect(checked == nil, "\(name) must not check")
  #expect(rendered.contains("error:"))
  try Golden.check("// \(spec)\n\(rendered)", name: "\(name).txt", directory: directory)
}
