// The ports of bpftrace's networking tools in tools/ (issue 20), run by bpftrace 0.17 and by
// swtrace at once over the same TCP connections between two namespaces (10.200.134-137.x,
// and fd00:200:134::/64 for tcpdrop's IPv6):
// the ports use only tracepoints and bpftrace's spelling, so the same file runs in both, and
// their lines about our connections must be the same.

import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

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

  /// tcpdrop's records about `subnet`: each line naming one of its addresses, without its
  /// first column (the time), with the stack printed under it (the indented lines that
  /// follow), each frame as `function+offset` with the offset in decimal (bpftrace writes it
  /// in decimal, swtrace in hex, as the kernel does).
  static func dropRecords(_ lines: [String], subnet: Int) -> [(line: String, frames: [String])] {
    var records: [(line: String, frames: [String])] = []
    var index = lines.startIndex
    while index < lines.endIndex {
      let line = lines[index]
      index += 1
      guard line.contains("10.200.\(subnet).") || line.contains("fd00:200:\(subnet)::") else { continue }
      let frames = lines[index...].prefix { $0.first == " " || $0.first == "\t" }
      index += frames.count
      let decimal = frames.map { frame in
        let parts = frame.trimmingCharacters(in: .whitespaces).split(separator: "+", maxSplits: 1)
        guard parts.count == 2 else { return String(frame) }
        let offset = parts[1].hasPrefix("0x") ? Int(parts[1].dropFirst(2), radix: 16) : Int(parts[1])
        return "\(parts[0])+\(offset.map(String.init) ?? String(parts[1]))"
      }
      records.append((line.split(separator: " ").dropFirst().joined(separator: " "), decimal))
    }
    return records
  }

  @Test("tcpdrop: SYNs dropped by netfilter on the way out, with pid, comm, addresses, ports, state, reason and stack, as bpftrace prints them",
    .needsBpftrace)
  func tcpdrop() throws {
    let pair = try NetworkNamespacePair(subnet: 134)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("tool-tcpdrop")
    defer { scratch.remove() }
    // Host A's netfilter drops its own SYNs to port 9148 (IPv4 and IPv6) in OUTPUT: each is
    // freed with reason NETFILTER_DROP while its socket, in SYN_SENT, still owns it. A SYN to
    // port 9149, where nothing listens on host B, is dropped there with reason NO_SOCKET
    // before any socket owns it: tcpdrop does not print it. The client writes its pid, each
    // socket's local port, and its error after 0.3 s: none while the SYN is being dropped,
    // ECONNREFUSED where host B answered with a reset (it had no socket).
    let client = """
      import os, socket, time
      for family, address, port in ((socket.AF_INET, "\(pair.addressB)", 9148), (socket.AF_INET6, "fd00:200:134::2", 9148),
                                    (socket.AF_INET, "\(pair.addressB)", 9149)):
          s = socket.socket(family, socket.SOCK_STREAM); s.setblocking(False)
          s.connect_ex((address, port))
          time.sleep(0.3)
          print(os.getpid(), s.getsockname()[1], port, s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), flush=True)
          s.close()
      """
    let setup = [
      ["ip", "-n", pair.namespaceA, "addr", "add", "fd00:200:134::1/64", "dev", pair.vethA, "nodad"],
      ["ip", "-n", pair.namespaceB, "addr", "add", "fd00:200:134::2/64", "dev", pair.vethB, "nodad"],
    ].map { $0.map(shellQuote).joined(separator: " ") } + ["iptables", "ip6tables"].map {
      pair.shellCommand(in: pair.namespaceA, [$0, "-A", "OUTPUT", "-p", "tcp", "--dport", "9148", "-j", "DROP"])
    }
    let traffic = setup.map { $0 + " || exit 1\n" }.joined()
      + pair.shellCommand(in: pair.namespaceA, ["timeout", "20", "python3", "-c", client]) + " >"
      + shellQuote(scratch.path("client.log"))
    let run = try BpftraceReference.run(program: try Self.tool("tcpdrop.bt"), traffic: traffic, scratch: scratch)
    try #require(run.bpftrace.status == 0, "\(run)")
    let sockets = (scratch.read("client.log") ?? "").split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
    try #require(sockets.count == 3 && sockets.allSatisfy { $0.count == 4 }, "client: \(sockets)\n\(run)")
    #expect(sockets.map { $0[3] } == ["0", "0", "\(ECONNREFUSED)"], "client: \(sockets)")
    let pid = sockets[0][0]
    // The reason's number from the kernel's BTF, as bpftool prints it.
    let btf = try ProcessRunner.run("bpftool", ["btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"], timeout: 60)
    let reason = try #require(
      btf.stdoutLines.first { $0.contains("SKB_DROP_REASON_NETFILTER_DROP = ") }?.split(separator: "=").last
        .map { $0.trimmingCharacters(in: .init(charactersIn: " ,")) }, "\(btf.stderr)")
    let expectedLines = [
      "\(pid) python3 \(pair.addressA):\(sockets[0][1]) \(pair.addressB):9148 SYN_SENT \(reason)",
      "\(pid) python3 fd00:200:134::1:\(sockets[1][1]) fd00:200:134::2:9148 SYN_SENT \(reason)",
    ]
    func squeezed(_ line: String) -> String { line.split(separator: " ").joined(separator: " ") }
    let expected = Self.dropRecords(run.bpftraceLines, subnet: 134)
    let actual = Self.dropRecords(run.swtraceLines, subnet: 134)
    // Each SYN at least once (a retransmission 1 s later would be a second line), the
    // closed port's never.
    #expect(Set(expected.map { squeezed($0.line) }) == Set(expectedLines), "\(run)")
    #expect(actual.map { squeezed($0.line) } == expected.map { squeezed($0.line) }, "\(run)")
    #expect(!(run.swtraceLines + run.bpftraceLines).contains { $0.contains(":\(sockets[2][1]) ") }, "\(run)")
    // The stacks: from the drop, through netfilter's verdict, back to connect(2), frame for
    // frame the same as bpftrace's.
    for (ours, theirs) in zip(actual, expected) {
      // (kfree_skb_reason before 6.11, which made it an inline around sk_skb_reason_drop)
      #expect(["sk_skb_reason_drop+", "kfree_skb_reason+"].contains { ours.frames.first?.hasPrefix($0) == true }, "\(ours.frames)")
      for function in ["nf_hook_slow", "tcp_connect", "__sys_connect"] {
        #expect(ours.frames.contains { $0.hasPrefix(function + "+") }, "\(function) missing from \(ours.frames)\n\(run)")
      }
      #expect(ours.frames == theirs.frames, "swtrace \(ours.frames)\nbpftrace \(theirs.frames)")
    }
  }
}
