// Packets you can open in Wireshark (issue 21), end to end: swtrace writes the packet of every
// event with -w, and tshark, Wireshark's own dissector, reads the file back. What tshark
// finds is compared with what was sent: swtrace-pktgen's datagrams (payload "SWTP", the
// sequence number big-endian, then the bytes 8, 9, 10, ... mod 256), the namespaces'
// addresses and the veths' MAC addresses as `ip link` gives them, the port, the lengths
// (payload + 8 UDP + 20 IPv4 + 14 Ethernet).
//
// Subnets 10.200.110-119.0/24, one per test.

import Foundation
#if canImport(Glibc)
  import Glibc
#endif
import Testing
import TestSupport

@Suite("packet captures end to end (issue 21)", .serialized)
struct PacketCaptureTests {
  /// The payload swtrace-pktgen sends as datagram `sequence` (0-based), `size` bytes long.
  static func payload(sequence: Int, size: Int) -> [UInt8] {
    let header: [UInt8] = [0x53, 0x57, 0x54, 0x50] + withUnsafeBytes(of: UInt32(sequence).bigEndian, Array.init)
    return (0..<size).map { $0 < header.count ? header[$0] : UInt8(truncatingIfNeeded: $0) }
  }

  /// The sequence number in a captured payload, if it is one of pktgen's.
  static func sequence(of payload: [UInt8]) -> Int? {
    guard payload.count >= 8, payload.prefix(4) == [0x53, 0x57, 0x54, 0x50] else { return nil }
    return payload[4..<8].reduce(0) { $0 << 8 | Int($1) }
  }

  /// A device's MAC address as `ip -j link show` gives it.
  static func macAddress(_ pair: NetworkNamespacePair, _ namespace: String, _ device: String) throws -> String {
    let result = try ProcessRunner.run("ip", ["-n", namespace, "-j", "link", "show", device], timeout: 10)
    guard result.succeeded,
      let list = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]],
      let address = list.first?["address"] as? String
    else { throw ProcessRunnerError(description: "no MAC address for \(device): \(result)") }
    return address
  }

  /// The `Packets: N Lost: M` line swtrace prints after `Samples:` with -w.
  static func packetSummary(_ result: ProcessResult) -> (packets: Int, lost: Int)? {
    for line in result.stderrLines.reversed() where line.hasPrefix("Packets: ") {
      let words = line.split(separator: " ")
      guard words.count == 4, let packets = Int(words[1]), let lost = Int(words[3]) else { return nil }
      return (packets, lost)
    }
    return nil
  }

  @Test("a UDP burst: every datagram at every marked probe, with its ports, payload, lengths and a comment naming its probe",
    .needsTracing, .needsTshark)
  func udpBurst() throws {
    let pair = try NetworkNamespacePair(subnet: 110)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("capture")
    defer { scratch.remove() }
    let file = scratch.path("burst.pcapng")
    let sizes = (0..<10).map { 100 + 50 * $0 }
    let burst = UDPBurst(sizes: sizes, count: 10, mark: 0x21a1, port: 9110)
    let started = Date().timeIntervalSince1970
    let run = try TracedTraffic.run(
      spec: "skb:* /mark == 0x21a1/ { print(len) }", arguments: ["-f", "json", "-w", file], bursts: [burst], pair: pair,
      scratch: scratch)
    let ended = Date().timeIntervalSince1970
    try #require(run.result.status == 0, "\(run)")
    #expect(run.sendersSent([burst]), "\(run)")
    let events = run.json.events
    let summary = Self.packetSummary(run.result)
    #expect(summary?.lost == 0 && summary?.packets == events.count, "\(run)")

    let packets = try Tshark.packets(file)
    // Every event has its packet, probe for probe.
    #expect(packets.count == events.count, "\(packets.count) packets for \(events.count) events")
    var eventsPerProbe: [String: Int] = [:]
    for event in events { eventsPerProbe[event.probe, default: 0] += 1 }
    var packetsPerProbe: [String: Int] = [:]
    for packet in packets { packetsPerProbe[packet["frame.interface_name"] ?? "?", default: 0] += 1 }
    #expect(packetsPerProbe == eventsPerProbe)

    let macA = try Self.macAddress(pair, pair.namespaceA, pair.vethA)
    let macB = try Self.macAddress(pair, pair.namespaceB, pair.vethB)
    for packet in packets {
      let probe = try #require(packet["frame.interface_name"])
      let comment = packet["frame.comment"] ?? ""
      #expect(comment.hasPrefix("probe=\(probe) "), "\(packet)")
      #expect(comment.contains(" mark=0x21a1") && comment.contains(" ifname=\(pair.vethA) "), "\(packet)")
      #expect(packet["udp.dstport"] == "9110" && packet["ip.src"] == pair.addressA && packet["ip.dst"] == pair.addressB, "\(packet)")
      let epoch = Double(packet["frame.time_epoch"] ?? "") ?? 0
      #expect(epoch >= started - 1 && epoch <= ended + 1, "the packet's time is the wall clock's: \(packet)")
    }
    // At the queue of the sending veth, each datagram exactly once, whole, in an Ethernet frame.
    let queued = packets.filter { $0["frame.interface_name"] == "net_dev_queue" }
    let bySequence = Dictionary(grouping: queued) { Self.sequence(of: $0.bytes("data.data") ?? []) ?? -1 }
    #expect(bySequence.keys.sorted() == Array(0..<10), "\(firstFew(queued))")
    for sequence in 0..<10 {
      guard let matches = bySequence[sequence] else { continue }
      #expect(matches.count == 1)
      let packet = matches[0]
      let size = sizes[sequence]
      #expect(packet.bytes("data.data") == Self.payload(sequence: sequence, size: size), "\(packet)")
      #expect(packet.integer("frame.len") == size + 42 && packet.integer("frame.cap_len") == size + 42, "\(packet)")
      #expect(packet.integer("ip.len") == size + 28 && packet.integer("udp.length") == size + 8, "\(packet)")
      #expect(packet["eth.src"] == macA && packet["eth.dst"] == macB, "\(packet)")
      #expect(packet["frame.encap_type"] == "1", "Ethernet: \(packet)")
    }
  }

  @Test("GSO and paged datagrams are captured whole; a snap length cuts them and keeps their length",
    .needsTracing, .needsTshark)
  func gsoAndPagedPackets() throws {
    let pair = try NetworkNamespacePair(subnet: 111)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("capture")
    defer { scratch.remove() }
    // With UDP_SEGMENT every payload is in page fragments; 5,000 bytes leave as one GSO
    // datagram of five 1,000-byte segments, 800 bytes as a plain (but paged) one.
    let sizes = [5000, 800]
    let burst = UDPBurst(sizes: sizes, count: 2, mark: 0x21a2, port: 9111, extra: ["--gso-size", "1000"])
    let spec = "skb:net_dev_queue, skb:net_dev_start_xmit /mark == 0x21a2/ { print(len, data_len, gso_size) }"
    for snaplen in [65000, 300] {
      let file = scratch.path("gso-\(snaplen).pcapng")
      let run = try TracedTraffic.run(
        spec: spec, arguments: ["-f", "json", "-w", file, "--snaplen", "\(snaplen)"], bursts: [burst], pair: pair,
        scratch: scratch)
      try #require(run.result.status == 0, "\(run)")
      #expect(run.sendersSent([burst]), "\(run)")
      // The kernel's own fields say the case was exercised: payloads paged, the large one GSO.
      let events = run.json.events
      for (size, gso) in [(5000, 1000), (800, 0)] {
        let seen = events.filter { $0.len == size + 42 }
        #expect(seen.count == 2, "\(run)")
        #expect(seen.allSatisfy { $0.values["data_len"] == .integer(Int64(size)) && $0.values["gso_size"] == .integer(Int64(gso)) }, "\(firstFew(seen))")
      }
      let packets = try Tshark.packets(file)
      #expect(packets.count == 4, "\(firstFew(packets))")
      for packet in packets {
        let length = try #require(packet.integer("frame.len"))
        let size = length - 42
        #expect(sizes.contains(size), "\(packet)")
        let sequence = try #require(sizes.firstIndex(of: size))
        #expect(packet.integer("frame.cap_len") == min(length, snaplen), "\(packet)")
        #expect(packet.integer("ip.len") == size + 28 && packet.integer("udp.length") == size + 8, "\(packet)")
        #expect(packet["udp.dstport"] == "9111", "\(packet)")
        // Every captured byte of the payload is the one sent, paged or not.
        let captured = try #require(packet.bytes("data.data"), "\(packet)")
        #expect(captured == Array(Self.payload(sequence: sequence, size: size).prefix(min(length, snaplen) - 42)), "\(packet)")
      }
    }
  }

  @Test("on the receiving side a packet is captured from its MAC header, which the stack has pulled, with -f paths",
    .needsTracing, .needsTshark)
  func receivingSideFromTheMACHeader() throws {
    let pair = try NetworkNamespacePair(subnet: 112)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("capture")
    defer { scratch.remove() }
    let file = scratch.path("receive.pcapng")
    let sizes = [100, 150, 200]
    let burst = UDPBurst(sizes: sizes, count: 3, mark: 0x21a3, port: 9112)
    // --track follows the datagrams into B, where veth scrubbed the mark; nothing listens
    // there, so each ends in kfree_skb for want of a socket.
    let run = try TracedTraffic.run(
      spec: "skb:* /mark == 0x21a3/ { print(len) }", arguments: ["-f", "paths-json", "--track", "-w", file],
      bursts: [burst], pair: pair, scratch: scratch)
    try #require(run.result.status == 0, "\(run)")
    let paths = run.result.stdoutLines.compactMap(PacketPath.parse)
    // A packet per hop, but at net_dev_xmit: it fires after the driver took the packet, which
    // may be gone by then.
    let hops = paths.reduce(0) { $0 + $1.hops.filter { $0.probe != "net_dev_xmit" }.count }
    let packets = try Tshark.packets(file)
    #expect(hops > 0 && packets.count == hops, "a packet per hop: \(packets.count) packets, \(hops) hops")
    #expect(!packets.contains { $0["frame.interface_name"] == "net_dev_xmit" })
    let macA = try Self.macAddress(pair, pair.namespaceA, pair.vethA)
    let received = packets.filter { ($0["frame.comment"] ?? "").contains(" ifname=\(pair.vethB)") }
    for probe in ["netif_receive_skb", "kfree_skb"] {
      let atProbe = received.filter { $0["frame.interface_name"] == probe }
      #expect(atProbe.count == 3, "\(probe): \(firstFew(atProbe))")
      for packet in atProbe {
        let data = try #require(packet.bytes("data.data"), "\(packet)")
        let sequence = try #require(Self.sequence(of: data), "\(packet)")
        #expect(data == Self.payload(sequence: sequence, size: sizes[sequence]), "\(packet)")
        #expect(packet.integer("frame.len") == sizes[sequence] + 42 && packet["eth.src"] == macA, "\(packet)")
      }
    }
    for packet in received.filter({ $0["frame.interface_name"] == "kfree_skb" }) {
      let comment = packet["frame.comment"] ?? ""
      #expect(comment.contains(" reason=SKB_DROP_REASON_NO_SOCKET") && comment.contains(" location=__udp4_lib_rcv+"), "\(packet)")
    }
  }

  @Test("a frame shorter than its headers is captured as it was sent", .needsTracing, .needsTshark)
  func frameShorterThanItsHeaders() throws {
    let pair = try NetworkNamespacePair(subnet: 113)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("capture")
    defer { scratch.remove() }
    let file = scratch.path("short.pcapng")
    let macA = try Self.macAddress(pair, pair.namespaceA, pair.vethA)
    let macB = try Self.macAddress(pair, pair.namespaceB, pair.vethB)
    // An Ethernet header that announces IPv4, then 5 bytes of an IPv4 header (which needs 20).
    let frame = macB.replacingOccurrences(of: ":", with: "") + macA.replacingOccurrences(of: ":", with: "") + "0800" + "4500001300"
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    let swtrace = try TestEnvironment.binary("swtrace")
    let send = pair.shellCommand(in: pair.namespaceA, [pktgen, "frame", "--dev", pair.vethA, "--hex", frame, "--mark", "0x21a4"])
    let result = try ProcessRunner.run(
      swtrace, ["-w", file, "-c", send, "-e", "skb:net_dev_queue, skb:net_dev_start_xmit /mark == 0x21a4/ { print(len) }"],
      timeout: 120)
    try #require(result.status == 0, "\(result)")
    let packets = try Tshark.packets(file, ["-x"])
    #expect(packets.count == 2, "\(firstFew(packets))")
    for packet in packets {
      #expect(packet.integer("frame.len") == 19 && packet.integer("frame.cap_len") == 19, "\(packet)")
      #expect(packet["frame_raw"] == frame, "\(packet)")
      #expect(packet["eth.src"] == macA && packet["eth.dst"] == macB && packet["eth.type"] == "0x0800", "\(packet)")
    }
  }

  @Test("-w - streams pcapng into tshark; the text output moves to standard error", .needsTracing, .needsTshark, .needsBash)
  func streamIntoTshark() throws {
    let pair = try NetworkNamespacePair(subnet: 114)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("capture")
    defer { scratch.remove() }
    let swtrace = try TestEnvironment.binary("swtrace")
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    let tshark = try #require(Tshark.path)
    let burst = UDPBurst(sizes: [120, 240], count: 6, mark: 0x21a5, port: 9114)
    let send = TracedTraffic.sendCommand(burst, pair: pair, pktgen: pktgen, log: scratch.path("send.log"))
    // pktgen's own output too must not land in the pcapng: run it without redirecting.
    let unredirected = send.components(separatedBy: " >").first!
    let script = [
      shellQuote(swtrace), "-f", "json", "-w", "-", "-c", shellQuote(unredirected), "-e",
      shellQuote("skb:net_dev_queue /mark == 0x21a5/ { print(len) }"), "2>" + shellQuote(scratch.path("stderr")), "|",
      shellQuote(tshark), "-r", "-", "-T", "fields", "-e", "udp.dstport", "-e", "frame.len",
      "; echo \"status ${PIPESTATUS[*]}\"",
    ].joined(separator: " ")
    let result = try ProcessRunner.run("bash", ["-c", script], timeout: 120)
    let stderr = scratch.read("stderr") ?? ""
    #expect(result.stdoutLines.last == "status 0 0", "\(result)\n--- swtrace's stderr ---\n\(stderr)")
    let rows = result.stdoutLines.dropLast().map { $0.split(separator: "\t").map(String.init) }
    #expect(rows.count == 6, "\(result)")
    #expect(rows.map { $0.first } == Array(repeating: "9114", count: 6))
    let lengths: [String] = (0..<6).map { index in String(burst.payload(index) + 42) }
    #expect(rows.map { $0.last } == lengths)
    // The events went to standard error, with the counts; pktgen's line too.
    #expect(stderr.components(separatedBy: "{\"probe\": \"net_dev_queue\"").count - 1 == 6, "\(stderr)")
    #expect(stderr.contains("Packets: 6 Lost: 0") && stderr.contains("sent 6"), "\(stderr)")
  }

  @Test("-w into a FIFO nobody reads, under a flood: swtrace stops, detaches and exits 4, counting the packets not written",
    .needsTracing, .needsBash)
  func captureIntoStalledReader() throws {
    let scratch = try ScratchDirectory("capture-stalled")
    defer { scratch.remove() }
    let fifo = scratch.path("capture.fifo")
    try #require(mkfifo(fifo, 0o600) == 0, "mkfifo: errno \(errno)")
    // Opened first, without waiting for a writer; never read.
    let reader = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    try #require(reader >= 0, "open FIFO: errno \(errno)")
    defer { close(reader) }
    let pidFile = scratch.path("command.pid")
    let flood = "echo $$ > \(shellQuote(pidFile)); exec \(try Faults.send(mark: 0x21a7, count: 3_000_000, seconds: 60)) >/dev/null"
    let trace = try Faults.commandLine([
      "-d", "2", "-o", "/dev/null", "-w", fifo, "-c", flood, "-e", "skb:net_dev_queue /mark == 0x21a7/ { print(len) }",
    ])
    let process = try Faults.start("exec \(trace)")
    let objects = try Faults.attached(process)
    // The reader still holds the FIFO: swtrace must not wait for it beyond its second.
    let result = process.wait(timeout: 40)
    #expect(!result.timedOut && result.status == 4 && crashSigns(result).isEmpty, "\(result)")
    let packets = try #require(Self.packetSummary(result), "\(result)")
    #expect(packets.lost > 0, "\(result)")
    #expect(result.stderr.contains("of the lost packets were not written to '\(fifo)' within 1 s of the stop"), "\(result)")
    #expect(result.stderr.contains("packets were not captured (swtrace exits with 4)"), "\(result)")
    // The event output (/dev/null) took everything: events left behind waited on the capture.
    #expect(!result.stderr.contains("'/dev/null' took no more"), "\(result)")
    Faults.expectReleased(objects, "\(result)")
    Faults.expectCommandGone(pidFile, "\(result)")
  }

  @Test("-w - into a reader that leaves (head -c): swtrace ends at once with status 0, and stops its command",
    .needsTracing, .needsBash)
  func captureReaderLeaves() throws {
    let scratch = try ScratchDirectory("capture-head")
    defer { scratch.remove() }
    let pidFile = scratch.path("command.pid")
    // A steady stream the kernel never has to drop: what ends the run is the reader alone.
    let send = "echo $$ > \(shellQuote(pidFile)); exec \(try Faults.send(mark: 0x21a8, count: 1_000_000, rate: 2000, seconds: 60)) >/dev/null"
    let trace = try Faults.commandLine([
      "-o", "/dev/null", "-w", "-", "-c", send, "-e", "skb:net_dev_queue /mark == 0x21a8/ { print(len) }",
    ])
    let result = try ProcessRunner.run(
      "bash", ["-c", "\(trace) 2>\(shellQuote(scratch.path("stderr"))) | head -c 4096 >/dev/null; echo \"status ${PIPESTATUS[*]}\""],
      timeout: 40)
    let stderr = scratch.read("stderr") ?? ""
    #expect(!result.timedOut && result.stdoutLines.last == "status 0 0", "\(result)\n--- swtrace's stderr ---\n\(stderr)")
    #expect(stderr.contains("Packets: ") && !stderr.contains("error:"), "\(stderr)")
    Faults.expectCommandGone(pidFile, "\(result)\n\(stderr)")
  }

  @Test("-w FILE on a full disk (/dev/full) ends the run with exit 2 and a sentence naming it", .needsTracing)
  func captureFileWriteError() throws {
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    let send = "\(shellQuote(pktgen)) udp --dst 127.0.0.1 --port 9 --count 3 --mark 0x21a6 >/dev/null"
    let result = try ProcessRunner.run(
      try TestEnvironment.binary("swtrace"),
      ["-w", "/dev/full", "-c", send, "-e", "skb:net_dev_queue /mark == 0x21a6/ { print(len) }"], timeout: 120)
    #expect(result.status == 2, "\(result)")
    #expect(result.stderr.contains("error: cannot write the packet capture to '/dev/full': No space left on device"), "\(result)")
  }

  @Test("-w FILE that cannot be created, and a --snaplen out of range, are refused before anything is loaded",
    .needsTracing)
  func refusedBeforeLoading() throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    let path = "/nonexistent-\(getpid())/trace.pcapng"
    let unwritable = try ProcessRunner.run(swtrace, ["-w", path, "-e", "skb:* { print(len) }"], timeout: 60)
    #expect(unwritable.status == 2, "\(unwritable)")
    #expect(unwritable.stderr.contains("cannot open '\(path)' for the packet capture (-w)"), "\(unwritable)")
    #expect(!unwritable.stderr.contains("Attaching"), "\(unwritable)")
    for arguments in [["-w", "x.pcapng", "--snaplen", "0"], ["-w", "x.pcapng", "--snaplen", "65001"], ["--snaplen", "100"]] {
      let refused = try ProcessRunner.run(swtrace, arguments + ["-e", "skb:* { print(len) }"], timeout: 60)
      #expect(refused.status == 64, "\(arguments): \(refused)")
      #expect(refused.stderr.contains("--snaplen"), "\(arguments): \(refused)")
    }
  }
}
