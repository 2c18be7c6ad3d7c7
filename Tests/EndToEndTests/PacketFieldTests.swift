// Packet fields as a user meets them (issue 18), on UDP datagrams whose every byte the test
// chose: a field of a header the packet does not have prints as `-` (JSON null), in events,
// printf, map keys and variables; comparisons with it are false; has() tells; a probe's
// own arguments are args.NAME where a packet name takes the bare one; net_dev_xmit, which
// fires after the driver took the packet, shows what it recorded. Every field's value
// against an independent dissector is FieldOracleTests' part.

import Foundation
import Testing

@Suite("packet fields: absent, has(), args, after the hand-over", .serialized)
struct PacketFieldTests {
  /// The UDP datagrams of every test here: 100-byte payloads to port 9300 + n, so frames
  /// of 142 bytes (14 Ethernet + 20 IPv4 + 8 UDP + 100).
  static func burst(_ n: Int, mark: UInt32, count: Int = 6) -> UDPBurst {
    UDPBurst(sizes: [100], count: count, mark: mark, port: 9300 + n)
  }

  @Test("a header the packet does not have: - in text, null in JSON, in events, printf, map keys and variables", .needsTracing)
  func absentFields() throws {
    let pair = try NetworkNamespacePair(subnet: 101)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("fields")
    defer { scratch.remove() }
    let spec = """
      skb:net_dev_queue /mark == 0xb101/ {
        $port = tcp.dport
        print(udp.dport, tcp.dport, icmp.id, ip6.saddr, saddr, $port)
        printf("udp %d tcp %d %5d|\\n", udp.dport, tcp.dport, tcp.sport)
        @ports[udp.dport, tcp.dport] = count()
      }
      """
    for format in ["json", "text"] {
      let run = try TracedTraffic.run(
        spec: spec, arguments: ["-f", format], bursts: [Self.burst(1, mark: 0xb101)], pair: pair, scratch: scratch)
      try #require(run.result.status == 0, "\(run)")
      if format == "json" {
        let events = run.json.events.filter { !$0.line.contains("\"text\"") }
        #expect(events.count == 6, "\(run)")
        for event in events {
          #expect(event.values["udp.dport"] == .integer(9301), "\(event)")
          for name in ["tcp.dport", "icmp.id", "ip6.saddr", "$port"] {
            #expect(event.values[name] == .null, "\(name) of a UDP datagram over IPv4: \(event)")
          }
          #expect(event.values["saddr"] == .string(pair.addressA), "\(event)")
        }
        let texts = run.result.stdoutLines.filter { $0.contains("\"text\"") }
        #expect(texts.count == 6 && texts.allSatisfy { $0.contains(#""text": "udp 9301 tcp -     -|\n""#) }, "\(run)")
        let map = try #require(run.json.maps["@ports"], "\(run)")
        #expect(map.entries.count == 1, "\(map)")
        #expect(map.entries.first?.keys["udp.dport"] == .integer(9301) && map.entries.first?.keys["tcp.dport"] == .null, "\(map)")
        #expect(map.entries.first?.integer == 6, "\(map)")
      } else {
        let lines = run.result.stdoutLines.filter { $0.contains(" net_dev_queue (") }
        #expect(lines.count == 6, "\(run)")
        #expect(
          lines.allSatisfy {
            $0.hasSuffix("(udp.dport: 9301 tcp.dport: - icmp.id: - ip6.saddr: - saddr: \(pair.addressA) $port: -)")
          }, "\(run)")
        #expect(run.result.stdoutLines.filter { $0 == "udp 9301 tcp -     -|" }.count == 6, "\(run)")
        #expect(run.result.stdoutLines.contains("@ports[9301, -]: 6"), "\(run)")
      }
    }
  }

  @Test("comparisons with an absent field are false, has() tells whether it is there", .needsTracing)
  func comparisonsAndHas() throws {
    let pair = try NetworkNamespacePair(subnet: 102)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("fields")
    defer { scratch.remove() }
    // Each count is a question about 6 UDP datagrams: which filters hold for them?
    let spec = """
      skb:net_dev_queue /mark == 0xb102 && tcp.dport != 1/ { @tcp_not_1 = count() }
      skb:net_dev_queue /mark == 0xb102 && !(tcp.dport == 1)/ { @not_tcp_1 = count() }
      skb:net_dev_queue /mark == 0xb102 && tcp.dport + 1 > 0/ { @tcp_arith = count() }
      skb:net_dev_queue /mark == 0xb102 && udp.dport != 1/ { @udp_not_1 = count() }
      skb:net_dev_queue /mark == 0xb102 && has(udp) && !has(tcp) && has(udp.len) && !has(icmp.seq) && has(saddr)/ { @has = count() }
      skb:net_dev_queue /mark == 0xb102 && (saddr == \(pair.addressA) || saddr in fd00::/8) && daddr in 10.200.102.0/24/ { @addr = count() }
      skb:net_dev_queue /mark == 0xb102 && proto == 17 && dport == 9302 && sport > 0/ { @shortcuts = count() }
      """
    let run = try TracedTraffic.run(spec: spec, bursts: [Self.burst(2, mark: 0xb102)], pair: pair, scratch: scratch)
    try #require(run.result.status == 0, "\(run)")
    let maps = run.json.maps
    #expect(maps["@tcp_not_1"].map(\.entries.isEmpty) ?? true, "no TCP header, no port: != is false too\n\(run)")
    #expect(maps["@tcp_arith"].map(\.entries.isEmpty) ?? true, "arithmetic on an absent field is absent\n\(run)")
    for name in ["@not_tcp_1", "@udp_not_1", "@has", "@addr", "@shortcuts"] {
      #expect(maps[name]?.entries.first?.integer == 6, "\(name) should count the 6 datagrams\n\(run)")
    }
  }

  @Test("in an skb clause len is the packet's; the probe's own len argument is args.len", .needsTracing)
  func argumentsByArgs() throws {
    let pair = try NetworkNamespacePair(subnet: 103)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("fields")
    defer { scratch.remove() }
    // One 100-byte TCP segment, read 10 bytes at a time: skb_copy_datagram_iovec fires for
    // each read with its argument len 10, on an skb whose len is the segment's 100.
    let server = """
      import socket
      s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
      s.bind(("\(pair.addressB)", 9303))
      s.listen(1)
      s.settimeout(20)
      print("ready", flush=True)
      c, _ = s.accept()
      c.settimeout(20)
      received = 0
      while received < 100:
          chunk = c.recv(10)
          if not chunk:
              break
          received += len(chunk)
      print("received", received, flush=True)
      """
    let client = """
      import socket, time
      c = socket.create_connection(("\(pair.addressB)", 9303), timeout=20)
      c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
      time.sleep(0.2)
      c.sendall(b"x" * 100)
      time.sleep(0.5)
      c.close()
      """
    try server.write(toFile: scratch.path("server.py"), atomically: true, encoding: .utf8)
    try client.write(toFile: scratch.path("client.py"), atomically: true, encoding: .utf8)
    let log = scratch.path("server.log")
    let command =
      pair.shellCommand(in: pair.namespaceB, ["/usr/bin/python3", scratch.path("server.py")]) + " >" + shellQuote(log)
      + " 2>&1 & for i in $(seq 100); do grep -q ready " + shellQuote(log) + " && break; sleep 0.1; done; "
      + pair.shellCommand(in: pair.namespaceA, ["/usr/bin/python3", scratch.path("client.py")]) + "; wait"
    let result = try ProcessRunner.run(
      try TestEnvironment.binary("swtrace"),
      ["-f", "json", "-c", command, "-e", "skb:skb_copy_datagram_iovec /tcp.dport == 9303/ { @copy[len, args.len] = count() }"],
      timeout: 120)
    let served = scratch.read("server.log") ?? ""
    try #require(result.status == 0 && served.contains("received 100"), "\(result)\n\(served)")
    let map = try #require(JSONTraceOutput(result.stdout).maps["@copy"], "\(result)")
    #expect(map.entries.count == 1 && map.entry(["len": "100", "args.len": "10"])?.integer == 10, "\(map)")
  }

  @Test("net_dev_xmit shows what it recorded: the length and device before the hand-over, no packet fields", .needsTracing)
  func afterTheHandOver() throws {
    let pair = try NetworkNamespacePair(subnet: 104)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("fields")
    defer { scratch.remove() }
    let spec = """
      skb:net_dev_queue /mark == 0xb104/ { @q[skb] = 1 }
      skb:net_dev_start_xmit, skb:net_dev_xmit /@q[skb] != 0/ {
        @seen[probe, len, ifname, udp.dport, mark] = count()
      }
      skb:net_dev_xmit /@q[skb] != 0/ { delete(@q[skb]) }
      """
    let run = try TracedTraffic.run(spec: spec, bursts: [Self.burst(4, mark: 0xb104)], pair: pair, scratch: scratch)
    try #require(run.result.status == 0, "\(run)")
    let map = try #require(run.json.maps["@seen"], "\(run)")
    // Before the hand-over the whole packet; after it, its recorded length and device, and
    // nothing read from an skb the driver may have freed (veth has pulled the Ethernet
    // header, scrubbed the mark and moved skb->dev to the peer by then).
    let before = map.entry([
      "probe": "net_dev_start_xmit", "len": "142", "ifname": pair.vethA, "udp.dport": "9304", "mark": "45316",
    ])
    #expect(before?.integer == 6, "\(map)")
    let after = map.entries.first { $0.key("probe") == "net_dev_xmit" }
    #expect(after?.key("len") == "142" && after?.key("ifname") == pair.vethA, "\(map)")
    #expect(after?.keys["udp.dport"] == .null && after?.keys["mark"] == .null, "\(map)")
    #expect(after?.integer == 6, "\(map)")
  }
}
