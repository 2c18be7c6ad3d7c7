// The stack that carried a packet (issue 21): `kstack` and `--stack` end to end, and the
// per-hop latency of -f paths and specs/latency.spec.
//
// The known path: a UDP datagram to a port nothing listens on, sent over loopback inside a
// namespace, is received by __udp4_lib_rcv, which finds no socket and frees it with reason
// SKB_DROP_REASON_NO_SOCKET; it got there from the IP layer (ip_local_deliver_finish) and
// the device layer (__netif_receive_skb...), in that order up the stack. The mark survives
// loopback, so a mark filter finds the drop.

import Foundation
import Testing
import TestSupport

@Suite("kernel stacks and latency end to end (issue 21)", .serialized)
struct KernelStackTests {
  /// Function names of symbolized frames (`name+0xoff [module]` without the rest).
  static func functions(_ frames: [String]) -> [String] {
    frames.map { String($0.prefix { $0 != "+" && $0 != " " }) }
  }

  /// The index of the first frame whose function starts with `prefix`.
  static func position(_ prefix: String, in functions: [String]) -> Int? {
    functions.firstIndex { $0.hasPrefix(prefix) }
  }

  /// Sends `count` datagrams of 32 bytes marked `mark` to 127.0.0.1:9 inside namespace A.
  static func closedPortCommand(_ pair: NetworkNamespacePair, mark: String, count: Int) throws -> String {
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    return pair.shellCommand(
      in: pair.namespaceA,
      [pktgen, "udp", "--dst", "127.0.0.1", "--port", "9", "--count", "\(count)", "--sizes", "32", "--mark", mark])
  }

  @Test("--stack and kstack: a datagram to a closed port is freed with a stack through the UDP receive path",
    .needsTracing, .needsTshark)
  func closedPortStack() throws {
    let pair = try NetworkNamespacePair(subnet: 115)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("stack")
    defer { scratch.remove() }
    let swtrace = try TestEnvironment.binary("swtrace")
    let file = scratch.path("drops.pcapng")
    let spec = "skb:kfree_skb /mark == 0x21b1/ { print(reason, ksym(location)); @stacks[kstack] = count() }"
    let result = try ProcessRunner.run(
      swtrace, ["--stack", "-f", "json", "-w", file, "-c", try Self.closedPortCommand(pair, mark: "0x21b1", count: 3), "-e", spec],
      timeout: 120)
    try #require(result.status == 0, "\(result)")
    var events: [[String: Any]] = []
    var maps: [[String: Any]] = []
    // (The -c command's "sent 3" shares standard output.)
    for line in result.stdoutLines where line.hasPrefix("{") {
      let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
      if object["map"] != nil { maps.append(object) } else { events.append(object) }
    }
    #expect(events.count == 3, "\(result)")
    for event in events {
      let values = try #require(event["values"] as? [String: Any])
      #expect(values["reason"] as? String == "SKB_DROP_REASON_NO_SOCKET", "\(event)")
      // JSON: the stack as an array of frames, the dropping function first.
      let frames = try #require(values["kstack"] as? [String], "\(event)")
      let names = Self.functions(frames)
      let location = try #require(values["ksym(location)"] as? String)
      let udp = try #require(Self.position("__udp4_lib_rcv", in: names), "\(frames)")
      let ip = try #require(Self.position("ip_local_deliver", in: names), "\(frames)")
      let device = try #require(Self.position("__netif_receive_skb", in: names), "\(frames)")
      #expect(udp < ip && ip < device, "up the stack: UDP, IP, device: \(frames)")
      // The frame of the UDP receive function is the drop location the tracepoint reports.
      #expect(frames[udp] == location, "\(frames)")
      // Only the freeing function itself comes before it: swtrace's own BPF frames are left out.
      #expect(udp == 1 && ["kfree_skb", "kfree_skb_reason", "sk_skb_reason_drop"].contains(names[0]), "\(frames)")
      #expect(!names.contains { $0.hasPrefix("bpf_") }, "\(frames)")
    }
    // As a map key: the three datagrams counted by stack. The first one's differs from the
    // others below the drop (its sender resolved the route's neighbour first).
    let stacks = try #require(maps.first { $0["map"] as? String == "@stacks" }?["entries"] as? [[String: Any]], "\(result)")
    #expect(stacks.compactMap { $0["value"] as? Int }.reduce(0, +) == 3 && stacks.count <= 2, "\(stacks)")
    for entry in stacks {
      let keyFrames = (entry["keys"] as? [String: Any])?["kstack"] as? [String]
      #expect(keyFrames.map(Self.functions).flatMap { Self.position("__udp4_lib_rcv", in: $0) } == 1, "\(stacks)")
    }
    // The pcapng comment carries the same stack, bpftrace's layout.
    let packets = try Tshark.packets(file)
    #expect(packets.count == 3)
    let firstFrames = try #require((events.first?["values"] as? [String: Any])?["kstack"] as? [String])
    for packet in packets {
      let comment = packet["frame.comment"] ?? ""
      #expect(comment.contains("\nkstack:\n        \(firstFrames[0])\n        \(firstFrames[1])\n"), "\(packet)")
    }
  }

  @Test("kstack in text: bpftrace's layout, one frame per line, indented, as an event value and a map key", .needsTracing)
  func textLayout() throws {
    let pair = try NetworkNamespacePair(subnet: 116)
    defer { pair.remove() }
    let swtrace = try TestEnvironment.binary("swtrace")
    let spec = "skb:kfree_skb /mark == 0x21b2/ { print(kstack); @[kstack] = count() }"
    let result = try ProcessRunner.run(
      swtrace, ["-c", try Self.closedPortCommand(pair, mark: "0x21b2", count: 2), "-e", spec], timeout: 120)
    try #require(result.status == 0, "\(result)")
    let lines = result.stdoutLines
    // "... kfree_skb (kstack: " then frames, each on its own line with 8 spaces, then ")".
    let starts = lines.indices.filter { lines[$0].hasSuffix(" kfree_skb (kstack: ") }
    #expect(starts.count == 2, "\(result)")
    for start in starts {
      let frames = lines[(start + 1)...].prefix { $0.hasPrefix("        ") }
      #expect(frames.contains { $0.hasPrefix("        __udp4_lib_rcv+0x") }, "\(result)")
      #expect(lines.indices.contains(start + 1 + frames.count) && lines[start + 1 + frames.count] == ")", "\(result)")
    }
    // The map: "@[" then the frames, then "]: N", the counts adding up to the datagrams.
    var counted = 0
    for key in lines.indices where lines[key] == "@[" {
      let frames = lines[(key + 1)...].prefix { $0.hasPrefix("        ") }
      let end = key + 1 + frames.count
      #expect(!frames.isEmpty && end < lines.count && lines[end].hasPrefix("]: "), "\(result)")
      if end < lines.count { counted += Int(lines[end].dropFirst(3)) ?? 0 }
    }
    #expect(counted == 2, "\(result)")
  }

  @Test("specs/latency.spec: one sample per datagram between the two ends of a veth", .needsTracing)
  func latencySpec() throws {
    let pair = try NetworkNamespacePair(subnet: 117)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("latency")
    defer { scratch.remove() }
    let swtrace = try TestEnvironment.binary("swtrace")
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    // SpecFilesTests runs this spec at the same time with 0xdead traffic of its own, which
    // would add its samples here: the spec as shipped, with a mark only this test sends.
    let shipped = try String(
      contentsOfFile: packageRoot.appendingPathComponent("specs/latency.spec").path, encoding: .utf8)
    let ownSpec = shipped.replacingOccurrences(of: "mark == 0xdead", with: "mark == 0x21b7")
    try #require(ownSpec != shipped, "specs/latency.spec no longer filters on mark == 0xdead")
    let spec = scratch.path("latency.spec")
    try ownSpec.write(toFile: spec, atomically: true, encoding: .utf8)
    let burst = UDPBurst(sizes: [100, 200], count: 20, mark: 0x21b7, port: 9117)
    let send = TracedTraffic.sendCommand(burst, pair: pair, pktgen: pktgen, log: scratch.path("send.log"))
    let result = try ProcessRunner.run(swtrace, ["-f", "json", "-c", send, spec], timeout: 120)
    try #require(result.status == 0, "\(result)")
    #expect(scratch.read("send.log")?.contains("sent 20") == true)
    let output = JSONTraceOutput(result.stdout)
    let latency = try #require(output.maps["@latency_ns"], "\(result)")
    #expect(latency.entries.reduce(0) { $0 + $1.sampleCount } == 20, "\(result)")
    // Nothing is left waiting: every start was matched or freed.
    #expect(output.maps["@start"]?.entries.isEmpty == true, "\(result)")
  }

  @Test("-f paths: each hop's time since the previous one, besides the time since the first", .needsTracing)
  func pathsShowTheStepBetweenHops() throws {
    let pair = try NetworkNamespacePair(subnet: 118)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("paths")
    defer { scratch.remove() }
    let burst = UDPBurst(sizes: [100], count: 3, mark: 0x21b3, port: 9118)
    for format in ["paths-json", "paths"] {
      let run = try TracedTraffic.run(
        spec: "skb:* /mark == 0x21b3/ { print(len) }", arguments: ["-f", format, "--track"], bursts: [burst], pair: pair,
        scratch: scratch)
      try #require(run.result.status == 0, "\(run)")
      if format == "paths-json" {
        let lines = run.result.stdoutLines
        let paths = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        // (One more when the first datagram waits for ARP: the kernel queues a copy.)
        #expect(paths.count >= 3, "\(run)")
        for path in paths {
          let hops = try #require(path["hops"] as? [[String: Any]])
          let sinceFirst = hops.compactMap { $0["dt_ns"] as? Int }
          let sincePrevious = hops.compactMap { $0["dt_prev_ns"] as? Int }
          #expect(sincePrevious.count == hops.count && sincePrevious.first == 0, "\(path)")
          // Each step is the difference of the times since the first hop (0 for a hop that a
          // CPU recorded a moment before its predecessor).
          for index in sinceFirst.indices.dropFirst() {
            #expect(sincePrevious[index] == max(0, sinceFirst[index] - sinceFirst[index - 1]), "\(path)")
          }
        }
      } else {
        let hops = run.result.stdoutLines.filter { $0.hasPrefix("  +") }
        #expect(!hops.isEmpty && hops.allSatisfy { $0.range(of: #"^  \+[0-9.]+us \(\+[0-9.]+us\) cpu "#, options: .regularExpression) != nil }, "\(run)")
      }
    }
  }
}
