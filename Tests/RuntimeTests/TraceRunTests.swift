// The run loop driven as a library, without the command line: real programs on the running
// kernel, real datagrams sent over loopback by this test (marked, so nothing else matches),
// and the lines the run writes collected in memory. These load and attach programs: run them
// under the e2e lock (see the helper preamble), like the end-to-end tests.

import BPF
import BTF
import CodeGen
import Glibc
import KernelTestSupport
import Output
import Runtime
import Sema
import SwtraceSyntax
import Testing
import TestSupport

/// Lines a run writes, kept for the test to read.
final class CollectedLines: LineOutput {
  private(set) var lines: [String] = []
  private(set) var writtenEvents: UInt64 = 0
  let lostEvents: UInt64 = 0
  let isClosed = false
  func append(_ bytes: some Collection<UInt8>, events: Int) {
    var text = String(decoding: bytes, as: UTF8.self)
    if text.hasSuffix("\n") { text.removeLast() }
    lines += text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    writtenEvents += UInt64(events)
  }
  func flush() {}
}

/// Sends `count` UDP datagrams of `size` bytes to 127.0.0.1:`port` with SO_MARK `mark`.
func sendMarked(count: Int, size: Int, mark: UInt32, port: UInt16) throws {
  struct SendFailed: Error { var what: String }
  let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
  guard fd >= 0 else { throw SendFailed(what: "socket: errno \(errno)") }
  defer { close(fd) }
  var value = mark
  guard setsockopt(fd, SOL_SOCKET, SO_MARK, &value, socklen_t(MemoryLayout<UInt32>.size)) == 0 else {
    throw SendFailed(what: "SO_MARK: errno \(errno)")
  }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_port = port.bigEndian
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  let payload = [UInt8](repeating: 0x61, count: size)
  for _ in 0..<count {
    let sent = withUnsafePointer(to: &address) { pointer in
      pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddrPointer in
        payload.withUnsafeBytes {
          sendto(fd, $0.baseAddress, $0.count, 0, sockaddrPointer, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
      }
    }
    guard sent == size else { throw SendFailed(what: "sendto: errno \(errno)") }
  }
}

@Suite("the runtime drives a trace without the command line", .serialized, .needsKernelLoading)
struct TraceRunTests {
  /// The spec compiled for the running kernel, as `swtrace` compiles it.
  static func compile(_ text: String) throws -> (CompiledSpec, SourceFile) {
    let environment = try TracingEnvironment.make(btfPath: nil, privilegedDetection: true)
    let source = SourceFile(name: "<spec>", text: text)
    switch environment.compiler().compile(source) {
    case .compiled(let compiled, _): return (compiled, source)
    case .failed(let diagnostics):
      Issue.record("\(DiagnosticRenderer().render(diagnostics, in: source))")
      throw CompileFailed()
    }
  }
  struct CompileFailed: Error {}

  /// BEGIN prints first, every datagram sent is one event line, END prints the count the
  /// kernel kept and its own text, and the maps END did not clear print last.
  @Test func beginEventsAndEndInOrder() throws {
    let (compiled, _) = try Self.compile(
      #"""
      BEGIN { printf("begin\n") }
      skb:net_dev_queue /mark == 0x5a01/ { @n = count(); print(len) }
      END { print(@n); printf("end\n") }
      """#)
    let lines = CollectedLines()
    let trace = TraceRun(compiled: compiled, options: TraceOptions(duration: 1), output: lines)
    defer { trace.detach() }
    try trace.load()
    let report = try trace.attach()
    #expect(report.attached == 1 && report.failed.isEmpty, "\(report)")
    try trace.startReading()
    // Sent once attached: the records wait in the ring buffer until the loop reads them.
    try sendMarked(count: 3, size: 100, mark: 0x5a01, port: 9_999)
    let summary = try trace.run()
    #expect(summary.samples == 3 && summary.lost == 0, "\(lines.lines)")
    // 100 bytes of payload, 8 of UDP, 20 of IPv4 and the 14 of the Ethernet header loopback
    // gives every packet.
    let events = lines.lines.dropFirst().prefix(3)
    #expect(events.allSatisfy { $0.hasSuffix(" net_dev_queue (len: 142)") }, "\(lines.lines)")
    #expect(lines.lines.first == "begin")
    // END prints @n and its text; @n, not cleared, prints again after END, as in bpftrace.
    #expect(Array(lines.lines.suffix(3)) == ["@n: 3", "end", "@n: 3"], "\(lines.lines)")
    #expect(lines.lines.count == 7, "\(lines.lines)")
  }

  /// A program the kernel refuses (here, one that returns without setting r0, which the
  /// pre-check would have stopped) is reported at the clause it came from.
  @Test func aKernelRejectionNamesItsClause() throws {
    var (compiled, source) = try Self.compile("BEGIN { exit() }\nskb:net_dev_queue /mark == 0x5a02/ {\n  print(len)\n}\n")
    compiled.programs[0].program = Program(instructions: [.exit])
    let trace = TraceRun(compiled: compiled, options: TraceOptions(), output: CollectedLines())
    defer { trace.detach() }
    do throws(RuntimeError) {
      try trace.load()
      Issue.record("the kernel loaded a program that returns an unset r0")
    } catch {
      guard case .programRejected(let probe, _, _, let tail) = error, let diagnostic = error.diagnostic else {
        Issue.record("expected a rejected program: \(error)")
        return
      }
      #expect(probe == "net_dev_queue")
      let rendered = DiagnosticRenderer().render([diagnostic], in: source)
      #expect(rendered.hasPrefix("<spec>:2:1: error: the kernel's verifier rejected the program for net_dev_queue"), "\(rendered)")
      #expect(rendered.contains(" 2 | skb:net_dev_queue /mark == 0x5a02/ {"), "\(rendered)")
      // The kernel's own words, whatever this kernel's wording.
      #expect(!tail.isEmpty && rendered.contains(tail), "\(rendered)")
      #expect(tail.contains("R0"), "the verifier names the unset register: \(tail)")
    }
  }
}
