// Compiling specs for the running kernel's tracepoints and loading them, for the tests that
// put the pre-check's verdicts next to the kernel's.

import BTF
import CodeGen
import Runtime
import Sema
import SwtraceSyntax
import Testing

/// The compiler these tests use: the running kernel's tracepoints, small maps and ring buffer.
func runningKernelCompiler(_ types: KernelTypes) -> SpecCompiler {
  SpecCompiler(resolver: ProbeResolver(types: types, support: .tracepointsOnly), ringBufferSize: 4096, mapEntries: 64)
}

/// A spec that must compile, whose programs and maps a test then replaces or loads.
func template(_ text: String, types: KernelTypes) throws -> CompiledSpec {
  let file = SourceFile(name: "<spec>", text: text)
  switch runningKernelCompiler(types).compile(file) {
  case .compiled(let compiled, _):
    return compiled
  case .failed(let diagnostics):
    Issue.record("the template spec must compile:\n\(DiagnosticRenderer().render(diagnostics, in: file))")
    throw KernelRefusal(description: "the template spec did not compile")
  }
}

/// `file` compiled without the pre-check, for the kernel to judge alone.
func compileWithoutPrecheck(_ file: SourceFile, types: KernelTypes) -> CompiledSpec? {
  let resolver = ProbeResolver(types: types, support: .tracepointsOnly)
  guard let checked = Checker(resolver: resolver).check(Parser.parse(file).spec, source: file).spec else { return nil }
  return try? CodeGenerator(types: types, ringBufferSize: 4096, mapEntries: 64).generate(checked)
}

/// Loads every program of `compiled` (nothing is attached): the kernel's instructions
/// processed for each, or what it said.
func loadIntoKernel(_ compiled: CompiledSpec) -> Result<[Int], KernelRefusal> {
  let session = TraceSession(compiled: compiled)
  defer { session.detach() }
  do {
    try session.load(skippingRefusedFunctions: false)
    return .success(session.verifiedInstructionCounts().map { $0 ?? 0 })
  } catch {
    return .failure(KernelRefusal(description: error.description))
  }
}

struct KernelRefusal: Error, CustomStringConvertible {
  var description: String
}
