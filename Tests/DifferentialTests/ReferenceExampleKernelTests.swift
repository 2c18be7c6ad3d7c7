// Issue 5's acceptance check for the language reference: every example not marked
// `syntax-only` compiles against the running kernel's BTF, and every program it makes, with
// its real maps created, is accepted by the kernel's verifier. Nothing is attached.

import BTF
import CodeGen
import Foundation
import KernelTestSupport
import Runtime
import Sema
import SwtraceSyntax
import Testing
import TestSupport

@Suite("the language reference's examples load into the kernel", .serialized)
struct ReferenceExampleKernelTests {
  static let functionBackends: Set<Backend> = [.kprobe, .kretprobe, .fentry, .fexit]

  @Test(
    "every program of the example loads",
    .needsKernelLoading, arguments: try referenceExamples().filter { !$0.attributes.contains("syntax-only") })
  func exampleLoads(example: ReferenceExample) throws {
    let (types, support) = try RunningKernel.forLoading()
    let file = SourceFile(name: "grammar/README.md example \(example.number)", text: example.text)
    let compiler = Self.compiler(for: example, types: types, support: support)
    guard case .compiled(var compiled, _) = compiler.compile(file) else {
      Issue.record("example \(example.number) must compile on this kernel:\n\(example.text)")
      return
    }
    let unloadable = compiled.programs.filter { !Self.loadsHere($0.attachPoint.backend, support) }
    for program in unloadable {
      let backend = program.attachPoint.backend.rawValue
      print("skip: example \(example.number): \(backend):\(program.attachPoint.name): this kernel cannot load \(backend) programs")
    }
    compiled.programs.removeAll { unloadable.contains($0) }
    guard !compiled.programs.isEmpty else { return }
    let session = TraceSession(compiled: compiled)
    defer { session.detach() }
    do {
      try session.load(skippingRefusedFunctions: false)
      let loaded = Dictionary(grouping: compiled.programs, by: \.attachPoint.backend.rawValue)
        .map { "\($0.value.count) \($0.key)" }.sorted().joined(separator: ", ")
      print("example \(example.number): loaded \(loaded)")
    } catch .notPermitted(let error)
      where compiled.programs.contains(where: { Self.functionBackends.contains($0.attachPoint.backend) })
    {
      try skip("example \(example.number): this kernel refuses its function programs (\(error))")
    } catch {
      Issue.record("example \(example.number) was rejected by the kernel:\n\(example.text)\n\(error.description)")
    }
  }

  /// The running kernel's backends; for examples marked `functions`, every backend, since
  /// their programs may load where kprobes or fentry do not attach. Their `skb:` functions use
  /// kprobes unless fentry attaches here, as kprobe programs name no function when they load.
  static func compiler(for example: ReferenceExample, types: KernelTypes, support: BackendSupport) -> SpecCompiler {
    var compiledSupport = support
    var forcedFunctionBackend: Backend?
    if example.attributes.contains("functions") {
      compiledSupport.available.formUnion(functionBackends)
      if !support.available.contains(.fentry) { forcedFunctionBackend = .kprobe }
    }
    if support.available.contains(.kprobe), KernelCapabilities.kprobesAttachInBulk {
      compiledSupport.kprobesAttachInBulk = true
    }
    let resolver = ProbeResolver(
      types: types, support: compiledSupport, readingTracepointCategories: KernelCapabilities.tracepointCategories,
      forcedFunctionBackend: forcedFunctionBackend)
    return SpecCompiler(resolver: resolver, kprobeProgramsShareCode: compiledSupport.kprobesAttachInBulk)
  }

  /// Whether programs of `backend` load here. kprobe programs load without the kprobe PMU
  /// that attaching needs; fentry and fexit programs are loaded against their function, which
  /// a kernel without trampolines refuses whatever the code.
  static func loadsHere(_ backend: Backend, _ support: BackendSupport) -> Bool {
    switch backend {
    case .fentry, .fexit: support.available.contains(backend)
    default: true
    }
  }
}
