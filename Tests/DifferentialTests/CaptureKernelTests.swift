// Packet captures (-w) and kernel stacks (kstack, --stack) generate code nothing else does:
// bpf_skb_output with a ring buffer reservation as its metadata, reads of a variable length
// into a record, bpf_get_stackid. Every program must pass the pre-check and load into the
// running kernel, on every skb tracepoint it has, at the default and the largest snap length.

import BTF
import CodeGen
import Foundation
import KernelTestSupport
import Runtime
import Sema
import SwtraceSyntax
import Testing

@Suite("captures and stacks load into the kernel", .serialized)
struct CaptureKernelTests {
  static let specs = [
    "skb:* { print(len) }",
    #"skb:* /mark == 1/ { if (len > 100) { printf("%d %s\n", len, ifname) } else { print(mark) } @[kstack, probe] = count() }"#,
    "skb:kfree_skb { print(reason, ksym(location), kstack) }",
  ]

  @Test("every program loads", .needsKernelLoading, arguments: specs.indices, [Snaplen.standard, Snaplen.maximum, 1])
  func loads(index: Int, snaplen: Int) throws {
    let (types, _) = try RunningKernel.forLoading()
    // Tracepoints only: on a kernel with function backends skb:* would be thousands of programs.
    let resolver = ProbeResolver(types: types, support: .tracepointsOnly)
    let file = SourceFile(name: "<spec>", text: Self.specs[index])
    let compiler = SpecCompiler(
      resolver: resolver, ringBufferSize: 1 << 20, mapEntries: 64,
      options: DesugaringOptions(capturesPackets: true, recordsStacks: true), snaplen: snaplen)
    let compiled: CompiledSpec
    switch compiler.compile(file) {
    case .compiled(let result, _): compiled = result
    case .failed(let diagnostics):
      Issue.record("the spec must compile:\n\(DiagnosticRenderer().render(diagnostics, in: file))")
      return
    }
    #expect(!compiled.captureLayouts.isEmpty && compiled.packetMap != nil && compiled.stackMap != nil)
    let session = TraceSession(compiled: compiled)
    defer { session.detach() }
    do {
      try session.load(skippingRefusedFunctions: false)
    } catch {
      Issue.record("the kernel rejected a program the pre-check accepted: \(error.description)")
    }
  }
}
