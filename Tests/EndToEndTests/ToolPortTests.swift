// The ports of bpftrace's networking tools in tools/ (issue 20), run by bpftrace 0.17 and by
// swtrace at once over the same TCP connections between two namespaces (10.200.134-139.x):
// the ports use only tracepoints and bpftrace's spelling, so the same file runs in both, and
// their lines about our connections must be the same.

import Foundation
import Testing

@Suite("ported tools, compared with bpftrace", .serialized)
struct ToolPortTests {
  static func tool(_ name: String) throws -> String {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("tools/\(name)")
    return try String(contentsOf: url, encoding: .utf8)
  }

  @Test("tcplife: each session's pid, comm, addresses, ports and bytes as bpftrace prints them", .needsBpftrace)
  func tcplife() throws {
    let pair = try NetworkNamespacePair(subnet: 134)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("tool-tcplife")
    defer { scratch.remove() }
    let run = try BpftraceReference.run(
      program: try Self.tool("tcplife.bt"), traffic: tcpExchangeScript(pair: pair, port: 9134, count: 3), scratch: scratch)
    try #require(run.bpftrace.status == 0, "\(run)")
    // The lifespan in ms (the last column) is each tool's own reading of the clock; the rest
    // is the same events' data.
    func ours(_ lines: [String]) -> [String] {
      lines.filter { $0.hasPrefix("PID ") || $0.contains("10.200.134.") }
        .map { $0.split(separator: " ", omittingEmptySubsequences: true).dropLast().joined(separator: " ") }
    }
    let expected = ours(run.bpftraceLines)
    // Three sessions, each seen from both ends (client and server sockets), and the header.
    #expect(expected.count == 7, "\(run)")
    #expect(expected.dropFirst().allSatisfy { $0.contains(" 9134 ") }, "\(run)")
    #expect(ours(run.swtraceLines) == expected, "\(run)")
  }
}
