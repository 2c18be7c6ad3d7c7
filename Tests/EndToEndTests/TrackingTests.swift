// Tracking and paths (issue 7), end to end. A datagram marked in namespace A crosses a
// veth into B, where the kernel scrubs its mark: a mark filter alone loses it there, and
// track() / --track keep following it (by skb address) until the kernel frees it.
//
// Lengths at each level, for payload p (see WalkingSkeletonTests): p + 42 on A's side
// (net_dev_queue, net_dev_start_xmit), p + 28 once B has pulled the Ethernet header
// (netif_rx, netif_receive_skb), and less as the IP and UDP headers are pulled in turn.
// Nothing listens in B, so each datagram ends in B at kfree_skb (no socket), after icmp_send.

import Foundation
import Testing

@Suite("tracking and paths end to end (issue 7)", .serialized)
struct TrackingTests {
  /// Header bytes in front of the payload at the levels a datagram's len can be seen at.
  static let headerLevels = [42, 28, 8, 0]
  static let freePoints: Set<String> = ["kfree_skb", "consume_skb"]

  /// Payloads 100, 150, 200, ...: no two differ by a header size, so a length names its payload.
  static func distinctPayloads(_ count: Int) -> [Int] { (0..<count).map { 100 + 50 * $0 } }

  /// The payloads (among `candidates`) a length can belong to.
  static func payloads(forLength len: Int, among candidates: Set<Int>) -> Set<Int> {
    Set(headerLevels.map { len - $0 }).intersection(candidates)
  }

  @Test("with the mark filter alone, events stop where veth scrubs the mark", .needsTracing)
  func markAloneStopsAtCrossing() throws {
    let pair = try NetworkNamespacePair(subnet: 71)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("track")
    defer { scratch.remove() }
    let inodeA = try pair.netnsInode(pair.namespaceA)
    let inodeB = try pair.netnsInode(pair.namespaceB)
    let burst = UDPBurst(sizes: Self.distinctPayloads(10), count: 10, mark: 0x7a01, port: 9701)
    let run = try TracedTraffic.run(
      spec: "skb:* /mark == 0x7a01/ { print(len, netns, ifname) }", bursts: [burst], pair: pair, scratch: scratch)
    try #require(run.result.status == 0, "\(run)")
    #expect(run.sendersSent([burst]), "\(run)")
    let events = run.json.events
    let inB = events.filter { $0.values["netns"] == .integer(Int64(inodeB)) || $0.values["ifname"] == .string(pair.vethB) }
    #expect(inB.isEmpty, "the mark is scrubbed on the way into B, yet B's side shows up:\n\(firstFew(inB))")
    let queued = Set(
      events.filter { $0.probe == "net_dev_queue" && $0.values["netns"] == .integer(Int64(inodeA)) }.compactMap(\.len))
    #expect(queued == Set(burst.sizes.map { $0 + 42 }), "every datagram is seen in A at net_dev_queue:\n\(run)")
  }

  /// Runs a tracking spec over 10 datagrams and checks both sides of the veth for each.
  func checkBothSides(spec: String, arguments: [String], mark: UInt32, subnet: Int, port: Int) throws {
    let pair = try NetworkNamespacePair(subnet: subnet)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("track")
    defer { scratch.remove() }
    let inodeA = Int64(try pair.netnsInode(pair.namespaceA))
    let inodeB = Int64(try pair.netnsInode(pair.namespaceB))
    let burst = UDPBurst(sizes: Self.distinctPayloads(10), count: 10, mark: mark, port: port)
    let run = try TracedTraffic.run(spec: spec, arguments: arguments, bursts: [burst], pair: pair, scratch: scratch)
    try #require(run.result.status == 0, "\(run)")
    #expect(run.sendersSent([burst]), "\(run)")
    let events = run.json.events
    #expect(summary(of: run.result)?.lost == 0, "\(run)")
    for payload in burst.sizes {
      let sent = events.contains {
        $0.probe == "net_dev_queue" && $0.len == payload + 42 && $0.values["netns"] == .integer(inodeA)
          && $0.values["ifname"] == .string(pair.vethA)
      }
      let received = events.contains {
        $0.probe == "netif_receive_skb" && $0.len == payload + 28 && $0.values["netns"] == .integer(inodeB)
          && $0.values["ifname"] == .string(pair.vethB)
      }
      #expect(sent, "payload \(payload): no net_dev_queue event in A (\(pair.vethA), netns \(inodeA)) with len \(payload + 42)")
      #expect(
        received,
        "payload \(payload): no netif_receive_skb event in B (\(pair.vethB), netns \(inodeB)) with len \(payload + 28): the packet was not followed across")
    }
    // Nothing else got tracked: every event belongs to one of the datagrams.
    let candidates = Set(burst.sizes)
    let strangers = events.filter { event in
      guard let len = event.len else { return true }
      return Self.payloads(forLength: len, among: candidates).isEmpty
    }
    #expect(strangers.isEmpty, "events that belong to none of the datagrams:\n\(firstFew(strangers))")
  }

  @Test("track() follows every datagram into B", .needsTracing)
  func trackFollowsAcrossNamespaces() throws {
    try checkBothSides(
      spec: "skb:* /mark == 0x7a02/ { track(); print(len, netns, ifname) }", arguments: ["-f", "json"],
      mark: 0x7a02, subnet: 72, port: 9702)
  }

  @Test("--track follows every datagram into B", .needsTracing)
  func trackFlagFollowsAcrossNamespaces() throws {
    try checkBothSides(
      spec: "skb:* /mark == 0x7a03/ { print(len, netns, ifname) }", arguments: ["-f", "json", "--track"],
      mark: 0x7a03, subnet: 73, port: 9703)
  }

  @Test("1,000 datagrams back to back give 1,000 separate paths, each ending where the skb is freed", .needsTracing)
  func thousandSeparatePaths() throws {
    let pair = try NetworkNamespacePair(subnet: 74)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("track")
    defer { scratch.remove() }
    let inodeA = Int64(try pair.netnsInode(pair.namespaceA))
    let inodeB = Int64(try pair.netnsInode(pair.namespaceB))
    // Resolve B's address first: while ARP is pending, the kernel replaces the first
    // datagram's skb with a copy and frees the original (a real, one-hop path of its own).
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    let warmUp = try pair.run(in: pair.namespaceA, [pktgen, "icmp", "--dst", pair.addressB, "--count", "1"], timeout: 20)
    try #require(warmUp.succeeded, "\(warmUp)")
    let sizes = Self.distinctPayloads(20)  // 100...1050 by 50, each 50 times
    let burst = UDPBurst(sizes: sizes, count: 1000, mark: 0x7a04, port: 9704)
    let run = try TracedTraffic.run(
      spec: "skb:* /mark == 0x7a04/ { print(len, netns) }", arguments: ["-f", "paths-json", "--track"],
      bursts: [burst], pair: pair, scratch: scratch)
    try #require(run.result.status == 0, "\(run)")
    #expect(run.sendersSent([burst]), "\(run)")
    let tally = summary(of: run.result)
    #expect(tally?.lost == 0, "no event may be lost, or paths fall apart:\n\(run)")

    var paths: [PacketPath] = []
    var malformed: [String] = []
    for line in run.result.stdoutLines where !line.isEmpty {
      if let path = PacketPath.parse(line) { paths.append(path) } else { malformed.append(line) }
    }
    #expect(malformed.isEmpty, "lines that are not paths:\n\(firstFew(malformed))")
    #expect(paths.count == 1000, "one path per datagram: \(paths.count) paths\n\(run)")
    #expect(
      tally?.samples == paths.reduce(0) { $0 + $1.hops.count }, "every event is a hop of exactly one path:\n\(run)")

    let candidates = Set(sizes)
    var incomplete: [PacketPath] = []
    var badEnd: [PacketPath] = []
    var freedMidway: [PacketPath] = []
    var merged: [PacketPath] = []
    var oneSided: [PacketPath] = []
    var perPayload: [Int: Int] = [:]
    for path in paths {
      if !path.complete { incomplete.append(path) }
      if !Self.freePoints.contains(path.hops.last?.probe ?? "") { badEnd.append(path) }
      if path.hops.dropLast().contains(where: { Self.freePoints.contains($0.probe) }) { freedMidway.append(path) }
      // Every hop's len must belong to the same single payload.
      var owners = candidates
      for hop in path.hops {
        owners.formIntersection(Self.payloads(forLength: Int(hop.integer("len") ?? -1_000_000), among: candidates))
      }
      if owners.count == 1 { perPayload[owners.first!, default: 0] += 1 } else { merged.append(path) }
      let namespaces = Set(path.hops.compactMap { $0.integer("netns") })
      if !(namespaces.contains(inodeA) && namespaces.contains(inodeB)) { oneSided.append(path) }
    }
    #expect(incomplete.isEmpty, "\(incomplete.count) paths not marked complete, e.g.\n\(firstFew(incomplete, 3))")
    #expect(badEnd.isEmpty, "\(badEnd.count) paths do not end at kfree_skb/consume_skb, e.g.\n\(firstFew(badEnd, 3))")
    #expect(freedMidway.isEmpty, "\(freedMidway.count) paths go on after a free, e.g.\n\(firstFew(freedMidway, 3))")
    #expect(merged.isEmpty, "\(merged.count) paths mix the lengths of different datagrams, e.g.\n\(firstFew(merged, 3))")
    #expect(oneSided.isEmpty, "\(oneSided.count) paths are not seen in both A and B, e.g.\n\(firstFew(oneSided, 3))")
    #expect(
      perPayload.count == sizes.count && perPayload.values.allSatisfy { $0 == 50 },
      "each of the 20 payload sizes was sent 50 times, paths per payload: \(perPayload.sorted { $0.key < $1.key })")
  }

  @Test("specs/drops.spec counts nftables drops under SKB_DROP_REASON_NETFILTER_DROP", .needsTracing)
  func nftablesDrops() throws {
    let pair = try NetworkNamespacePair(subnet: 75)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("drops")
    defer { scratch.remove() }
    let inodeB = try pair.netnsInode(pair.namespaceB)
    try pair.nft(in: pair.namespaceB, ["add", "table", "inet", "swt"])
    try pair.nft(in: pair.namespaceB, ["add", "chain", "inet", "swt", "input", "{ type filter hook input priority 0; policy accept; }"])
    try pair.nft(in: pair.namespaceB, ["add", "rule", "inet", "swt", "input", "udp", "dport", "9705", "drop"])
    let dropped = UDPBurst(sizes: [100, 200], count: 50, mark: 0x7a05, port: 9705)
    let spared = UDPBurst(sizes: [300], count: 10, mark: 0x7a05, port: 9715)  // dropped for no socket instead

    // The spec file as a user runs it: every drop on the machine, by reason and place.
    let specFile = packageRoot.appendingPathComponent("specs/drops.spec").path
    let run = try TracedTraffic.run(
      spec: try String(contentsOfFile: specFile, encoding: .utf8), bursts: [dropped, spared], pair: pair, scratch: scratch)
    try #require(run.result.status == 0, "\(run)")
    #expect(run.sendersSent([dropped, spared]), "\(run)")
    let byReason = try #require(run.json.maps["@drops"], "drops.spec should print @drops:\n\(run)")
    let netfilter = byReason.entry(["reason": "SKB_DROP_REASON_NETFILTER_DROP"])?.integer ?? 0
    // Other drops on the machine may add to any reason, but these 50 must all be there.
    #expect(netfilter >= 50, "the 50 datagrams dropped by the nftables rule: \(byReason)")
    let noSocket = byReason.entry(["reason": "SKB_DROP_REASON_NO_SOCKET"])?.integer ?? 0
    #expect(noSocket >= 10, "the 10 datagrams to a port nobody listens on: \(byReason)")
    if let places = run.json.maps["@where"] {
      let netfilterPlaces = places.entries.filter { $0.key("reason") == "SKB_DROP_REASON_NETFILTER_DROP" }
      #expect(!netfilterPlaces.isEmpty, "\(places)")
      for place in netfilterPlaces {
        let location = place.keys.first { $0.key != "reason" }?.value
        guard case .string(let symbol)? = location else {
          Issue.record("the drop location should be a symbol+offset string: \(places)")
          continue
        }
        #expect(symbol.contains("+0x") && !symbol.hasPrefix("0x"), "location printed as symbol+offset: \(places)")
      }
    }

    // The same count narrowed to this test's packets: exactly the dropped ones, no other reason.
    let narrowed = try TracedTraffic.run(
      spec: "skb:kfree_skb /udp.dport == 9705 && netns == \(inodeB)/ { @drops[reason] = count() }",
      bursts: [dropped], pair: pair, scratch: scratch)
    try #require(narrowed.result.status == 0, "\(narrowed)")
    let exact = try #require(narrowed.json.maps["@drops"], "\(narrowed)")
    #expect(exact.entries.count == 1, "no reason but the nftables drop for port 9705 in B: \(exact)")
    #expect(exact.entry(["reason": "SKB_DROP_REASON_NETFILTER_DROP"])?.integer == 50, "\(exact)")
  }

  @Test("specs/ping-path.spec prints every hop of a ping with the right namespace and interface", .needsTracing)
  func pingPath() throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    let pair = try NetworkNamespacePair(subnet: 76)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("ping")
    defer { scratch.remove() }
    let inodeA = Int64(try pair.netnsInode(pair.namespaceA))
    let inodeB = Int64(try pair.netnsInode(pair.namespaceB))
    let id: Int64 = 0x7a06
    let ping =
      pair.shellCommand(in: pair.namespaceA, [pktgen, "icmp", "--dst", pair.addressB, "--count", "3", "--id", "\(id)"])
      + " >" + shellQuote(scratch.path("ping.log")) + " 2>&1"
    let specFile = packageRoot.appendingPathComponent("specs/ping-path.spec").path
    let result = try ProcessRunner.run(swtrace, ["-f", "json", "-c", ping, specFile], timeout: 120)
    let context = "\(result)\n--- ping ---\n\(scratch.read("ping.log") ?? "(did not run)")"
    // The spec follows every ICMP packet on the machine, and other suites running at the same
    // time flood loopback with datagrams to closed ports: their ICMP errors may overflow the
    // ring buffer. Then swtrace says so with status 4; this ping's hops must be complete anyway.
    let lost = summary(of: result)?.lost ?? 0
    try #require(result.status == 0 || (result.status == 4 && lost > 0), "\(context)")
    #expect(scratch.read("ping.log")?.contains("sent 3 received 3") == true, "\(context)")
    let output = JSONTraceOutput(result.stdout)
    #expect(output.malformed.isEmpty, "\(firstFew(output.malformed))")
    let ours = output.events.filter { $0.values["icmp.id"] == .integer(id) }

    struct Hop: Hashable, CustomStringConvertible {
      let probe: String, netns: Int64, ifname: String, type: Int64, seq: Int64, saddr: String, daddr: String
      var description: String { "\(probe) netns \(netns) \(ifname) type \(type) seq \(seq) \(saddr) -> \(daddr)" }
    }
    func hop(_ event: TraceEvent) -> Hop? {
      guard case .integer(let netns)? = event.values["netns"], case .string(let ifname)? = event.values["ifname"],
        case .integer(let type)? = event.values["icmp.type"], case .integer(let seq)? = event.values["icmp.seq"],
        case .string(let saddr)? = event.values["saddr"], case .string(let daddr)? = event.values["daddr"]
      else { return nil }
      return Hop(probe: event.probe, netns: netns, ifname: ifname, type: type, seq: seq, saddr: saddr, daddr: daddr)
    }
    let seen = ours.compactMap(hop)
    #expect(seen.count == ours.count, "events missing one of the printed fields:\n\(firstFew(ours))")
    var expected: [Hop] = []
    for seq in Int64(1)...3 {
      let a = pair.addressA, b = pair.addressB
      expected += [
        Hop(probe: "net_dev_queue", netns: inodeA, ifname: pair.vethA, type: 8, seq: seq, saddr: a, daddr: b),
        Hop(probe: "netif_rx", netns: inodeB, ifname: pair.vethB, type: 8, seq: seq, saddr: a, daddr: b),
        Hop(probe: "netif_receive_skb", netns: inodeB, ifname: pair.vethB, type: 8, seq: seq, saddr: a, daddr: b),
        Hop(probe: "net_dev_queue", netns: inodeB, ifname: pair.vethB, type: 0, seq: seq, saddr: b, daddr: a),
        Hop(probe: "netif_rx", netns: inodeA, ifname: pair.vethA, type: 0, seq: seq, saddr: b, daddr: a),
        Hop(probe: "netif_receive_skb", netns: inodeA, ifname: pair.vethA, type: 0, seq: seq, saddr: b, daddr: a),
      ]
    }
    let missing = expected.filter { !seen.contains($0) }
    let unexpected = seen.filter { !expected.contains($0) }
    #expect(missing.isEmpty, "hops not printed (A is netns \(inodeA), B is \(inodeB)):\n\(missing.map(\.description).joined(separator: "\n"))\nprinted:\n\(seen.map(\.description).joined(separator: "\n"))")
    #expect(unexpected.isEmpty, "hops that should not be there:\n\(unexpected.map(\.description).joined(separator: "\n"))")
    #expect(seen.count == expected.count, "each hop exactly once:\n\(seen.map(\.description).joined(separator: "\n"))")
  }
}
