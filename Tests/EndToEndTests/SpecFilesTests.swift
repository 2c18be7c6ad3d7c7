// Every spec shipped in specs/ is documented, passes `swtrace check`, and loads and runs
// for 2 s (-d 2) against real traffic with exit status 0.
//
// The traffic, between two namespaces A and B for as long as the specs run (bounded): UDP
// marked 0xdead (mark-path.spec, wireguard-path.spec, latency.spec), pings (ping-path.spec), UDP to a port B's nftables drops
// (drops.spec), TCP connections to a closed port (tcp-resets.spec) and to a port whose SYNs
// B drops (tcp-retransmits.spec), and, when python3 is there to receive it, bulk TCP that
// veth sends as GSO packets (gso-sizes.spec).

import Foundation
import Testing

@Suite("specs/ end to end", .serialized)
struct SpecFilesTests {
  static var specFiles: [URL] {
    let directory = packageRoot.appendingPathComponent("specs")
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
    return names.filter { $0.hasSuffix(".spec") }.sorted().map { directory.appendingPathComponent($0) }
  }

  /// What a run of a known spec must show with the traffic above (stdout), beyond status 0.
  static let expectedOutput: [String: [String]] = [
    "mark-path.spec": ["net_dev_queue (len: "],
    "ping-path.spec": ["icmp.type: 8", "icmp.type: 0"],
    "drops.spec": [
      "@drops[SKB_DROP_REASON_NETFILTER_DROP]: ", "@where[SKB_DROP_REASON_NETFILTER_DROP, ",
      "@stacks[SKB_DROP_REASON_NETFILTER_DROP, \n        ",
    ],
    "latency.spec": ["@latency_ns:\n[", "@start"],
    "tcp-resets.spec": ["tcp_send_reset (reason: SK_RST_REASON_NO_SOCKET", "@resets[SK_RST_REASON_NO_SOCKET, 9901]: "],
    "tcp-retransmits.spec": ["tcp_retransmit_skb (len: 0)", "@retransmits: "],
    "qdisc-latency.spec": ["@ns[", "@start"],
    "rx-by-dev.spec": ["@pkts[", "@bytes["],
    "syscalls-hello.spec": ["hello: counting system calls per program", "@calls["],
    "wireguard-path.spec": ["net_dev_queue (len: ", "comm: swtrace-pktgen)"],
  ]

  @Test("there are specs, and each starts with a header: the question, how to run it, what it prints")
  func headers() throws {
    let files = Self.specFiles
    #expect(files.count >= 9, "specs/ should hold at least the nine shipped specs: \(files.map(\.lastPathComponent))")
    for file in files {
      let text = try String(contentsOf: file, encoding: .utf8)
      let header = text.split(separator: "\n", omittingEmptySubsequences: false)
        .prefix { $0.hasPrefix("//") || $0.hasPrefix("#!") }
      #expect(header.count >= 4, "\(file.lastPathComponent) needs a header comment")
      #expect(header.contains { $0.contains("?") }, "\(file.lastPathComponent): the header should ask its question")
      #expect(
        header.contains { $0.contains("swtrace ") && $0.contains(file.lastPathComponent) },
        "\(file.lastPathComponent): the header should show how to run it")
    }
  }

  @Test("every spec passes swtrace check", .needsTracing)
  func everySpecChecks() throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    for file in Self.specFiles {
      let result = try ProcessRunner.run(swtrace, ["check", file.path], timeout: 120)
      #expect(result.status == 0, "\(file.lastPathComponent):\n\(result)")
      #expect(result.stderr.contains("\(file.path): ok"), "\(result)")
    }
  }

  @Test("every spec loads and runs for 2 s with traffic, and exits 0", .needsTracing)
  func everySpecRuns() throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    let pair = try NetworkNamespacePair(subnet: 91)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("specs")
    defer { scratch.remove() }
    try pair.nft(in: pair.namespaceB, ["add", "table", "inet", "swt"])
    try pair.nft(in: pair.namespaceB, ["add", "chain", "inet", "swt", "input", "{ type filter hook input priority 0; policy accept; }"])
    try pair.nft(in: pair.namespaceB, ["add", "rule", "inet", "swt", "input", "udp", "dport", "9905", "drop"])
    try pair.nft(in: pair.namespaceB, ["add", "rule", "inet", "swt", "input", "tcp", "dport", "9906", "drop"])

    let traffic = try RunningProcess("bash", ["-c", try trafficScript(pair: pair, scratch: scratch)])
    defer { traffic.stop() }
    // Wait (bounded) for the first round, so that every spec sees traffic from its start.
    let deadline = Date().addingTimeInterval(20)
    while scratch.read("rounds") == nil && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }

    for file in Self.specFiles {
      let name = file.lastPathComponent
      let result = try ProcessRunner.run(swtrace, ["-d", "2", file.path], timeout: 120)
      #expect(!result.timedOut && result.status == 0, "\(name) did not run cleanly:\n\(result)")
      #expect(!result.stderr.contains("error:"), "\(name):\n\(result)")
      #expect(summary(of: result) != nil, "\(name) should end with Samples: N Lost: M:\n\(result)")
      #expect(result.seconds < 60, "\(name) took \(result.seconds) s for -d 2")
      var expected = Self.expectedOutput[name] ?? []
      if name == "gso-sizes.spec", findExecutable("python3") != nil { expected.append("tcpv4") }
      for text in expected {
        #expect(result.stdout.contains(text), "\(name) should print '\(text)' with this traffic:\n\(result)")
      }
    }
    let rounds = scratch.read("rounds")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "0"
    print("note: \(#function): \(rounds) rounds of traffic")
  }

  /// A bash script sending every kind of traffic once per round (about a second), for at
  /// most 150 rounds; the test stops it when the specs are done.
  func trafficScript(pair: NetworkNamespacePair, scratch: ScratchDirectory) throws -> String {
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    let a = pair.namespaceA, b = pair.addressB
    let inA = "ip netns exec \(shellQuote(a))"
    let inB = "ip netns exec \(shellQuote(pair.namespaceB))"
    let pg = shellQuote(pktgen)
    var script = "exec >/dev/null 2>&1 </dev/null\n"
    if findExecutable("python3") != nil {
      // A TCP sink in B for the bulk transfers: accepts and drains connections, and gives
      // up after 10 s without one.
      let server = """
        import socket
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 9903)); s.listen(16); s.settimeout(10)
        for _ in range(200):
            try:
                c, _ = s.accept()
            except OSError:
                break
            c.settimeout(5)
            try:
                while c.recv(1 << 16):
                    pass
            except OSError:
                pass
            c.close()
        """
      script += "\(inB) python3 -c \(shellQuote(server)) &\nsleep 0.3\n"
    }
    script += """
      for round in $(seq 1 150); do
        \(inA) \(pg) udp --dst \(b) --port 9900 --count 20 --sizes 100-119 --mark 0xdead --rate 100 --max-seconds 1
        \(inA) \(pg) udp --dst \(b) --port 9905 --count 5 --max-seconds 1
        \(inA) \(pg) icmp --dst \(b) --count 1 --timeout 0.5 --max-seconds 1
        \(inA) bash -c '(exec 3<>/dev/tcp/\(b)/9901) 2>/dev/null; true'
        \(inA) timeout 1.5 bash -c 'exec 3<>/dev/tcp/\(b)/9906' &
        \(inA) timeout 2 bash -c 'exec 3<>/dev/tcp/\(b)/9903 && head -c 2000000 /dev/zero >&3' &
        sleep 0.5
        echo $round > \(shellQuote(scratch.path("rounds")))
      done
      wait

      """
    return script
  }
}
