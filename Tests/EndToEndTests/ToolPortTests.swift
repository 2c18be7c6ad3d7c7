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
    // Three sessions, each seen from both ends (client and server sockets), and the header;
    // a refused attempt (the client faster than the server's listen()) is a session too.
    let sessions = expected.dropFirst()
    #expect(sessions.filter { $0.contains(" 10.200.134.2 9134 10.200.134.1 ") }.count == 3, "\(run)")
    #expect(sessions.filter { $0.contains(" 10.200.134.2 9134") && $0.contains(" 10.200.134.1 ") }.count >= 6, "\(run)")
    #expect(ours(run.swtraceLines) == expected, "\(run)")
  }

  /// Lines about `subnet`'s connections without their first column (the time, each tool's own
  /// reading of the clock), and the header lines.
  static func connectionLines(_ lines: [String], subnet: Int) -> [String] {
    lines.filter { $0.hasPrefix("TIME ") || $0.hasPrefix("Tracing ") || $0.contains("10.200.\(subnet).") }
      .map { line in
        let words = line.split(separator: " ", omittingEmptySubsequences: true)
        return (line.hasPrefix("TIME ") || line.hasPrefix("Tracing ") ? words[...] : words.dropFirst()).joined(separator: " ")
      }
  }

  @Test("tcpconnect and tcpaccept: each connection's pid, comm, addresses and ports as bpftrace prints them", .needsBpftrace,
    arguments: [("tcpconnect.bt", 135), ("tcpaccept.bt", 136)])
  func connectAndAccept(tool: String, subnet: Int) throws {
    let pair = try NetworkNamespacePair(subnet: subnet)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("tool-connect")
    defer { scratch.remove() }
    let port = 9000 + subnet
    let run = try BpftraceReference.run(
      program: try Self.tool(tool), traffic: tcpExchangeScript(pair: pair, port: port, count: 3), scratch: scratch)
    try #require(run.bpftrace.status == 0, "\(run)")
    let expected = Self.connectionLines(run.bpftraceLines, subnet: subnet)
    // Two header lines and the three connections (tcpconnect also sees refused attempts, when
    // the client is faster than the server's listen()).
    let connections = expected.dropFirst(2)
    #expect(connections.count >= 3, "\(run)")
    #expect(connections.allSatisfy { $0.split(separator: " ").contains("\(port)") }, "\(run)")
    #expect(Self.connectionLines(run.swtraceLines, subnet: subnet) == expected, "\(run)")
  }

  @Test("tcpretrans: a dropped data segment's retransmission, with the state from BEGIN's table, as bpftrace prints it",
    .needsBpftrace)
  func tcpretrans() throws {
    let pair = try NetworkNamespacePair(subnet: 137)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("tool-tcpretrans")
    defer { scratch.remove() }
    // Host B drops the first data segment (PSH) to port 9137, once: the client retransmits it.
    let drop = pair.shellCommand(
      in: pair.namespaceB,
      ["iptables", "-I", "INPUT", "-p", "tcp", "--dport", "9137", "--tcp-flags", "PSH", "PSH",
       "-m", "statistic", "--mode", "nth", "--every", "1000", "--packet", "0", "-j", "DROP"])
    let traffic = drop + " || exit 1\n" + tcpExchangeScript(pair: pair, port: 9137)
    let run = try BpftraceReference.run(program: try Self.tool("tcpretrans.bt"), traffic: traffic, scratch: scratch)
    try #require(run.bpftrace.status == 0, "\(run)")
    let expected = Self.connectionLines(run.bpftraceLines, subnet: 137)
    let retransmits = expected.dropFirst(2)
    #expect(!retransmits.isEmpty, "\(run)")
    #expect(
      retransmits.allSatisfy { $0.hasSuffix("10.200.137.2:9137 ESTABLISHED") && $0.contains(" 10.200.137.1:") }, "\(run)")
    #expect(Self.connectionLines(run.swtraceLines, subnet: 137) == expected, "\(run)")
  }
}
