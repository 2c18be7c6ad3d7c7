// printf, $variables, casts, indexes and IPv6 literals, end to end: the spec is compiled,
// pre-checked, loaded into the kernel, and its printf lines must show the real values of
// the datagrams sent. Each test uses its own subnet, mark and port.

import Foundation
import Testing

/// The `text` of each `-f json` printf event on stdout, in order.
private func printfTexts(_ stdout: String) -> [String] {
  stdout.split(separator: "\n").compactMap { line in
    guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
    return object["text"] as? String
  }
}

@Suite("printf, variables, casts, indexes and IPv6 end to end", .serialized)
struct LanguageEndToEndTests {
  @Test("printf prints real field values through variables, a pointer cast and array indexes", .needsTracing)
  func printfWithVariablesCastsAndIndexes() throws {
    let pair = try NetworkNamespacePair(subnet: 77)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("lang")
    defer { scratch.remove() }
    let burst = UDPBurst(sizes: [100, 200], count: 6, mark: 0x7a77, port: 9777)
    let spec = #"""
      skb:net_dev_queue /mark == 0x7a77/ {
        $payload = (u16)(len - 42)
        $ip = (struct iphdr *)(skb->head + skb->network_header)
        if ($payload > 150) { $size = "big" } else { $size = "small" }
        $i = 2
        printf("%s payload=%d size=%-5s| ttl=%d proto=%d dst=%s dev=%c%c mark=%#x\n", probe, $payload, $size,
               $ip->ttl, $ip->protocol, daddr, skb->dev->name[0], skb->dev->name[$i], mark)
      }
      """#
    let run = try TracedTraffic.run(spec: spec, bursts: [burst], pair: pair, scratch: scratch)
    try #require(!run.result.timedOut && run.result.status == 0, "\(run)")
    #expect(run.sendersSent([burst]), "\(run)")
    // The veth in A is named swt<pid>x<n>a: its first and third characters are s and t.
    let expected = burst.payloads.map { payload in
      "net_dev_queue payload=\(payload) size=\(payload > 150 ? "big  " : "small")| ttl=64 proto=17 dst=\(pair.addressB) dev=st mark=0x7a77\n"
    }
    #expect(printfTexts(run.result.stdout).sorted() == expected.sorted(), "\(run)")

    // In text output the formatted text is the whole line.
    let textRun = try TracedTraffic.run(spec: spec, arguments: [], bursts: [burst], pair: pair, scratch: scratch)
    try #require(!textRun.result.timedOut && textRun.result.status == 0, "\(textRun)")
    #expect(textRun.result.stdoutLines.sorted() == expected.map { String($0.dropLast()) }.sorted(), "\(textRun)")
  }

  @Test("fields named twice (filter and print, several ip fields) show the real values, read once each", .needsTracing)
  func fieldsReadOnceShowRealValues() throws {
    let pair = try NetworkNamespacePair(subnet: 79)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("shared")
    defer { scratch.remove() }
    let burst = UDPBurst(sizes: [100, 300], count: 6, mark: 0x7a79, port: 9779)
    // mark, ifname and ip.daddr are in the filter and the print; the three ip fields share
    // skb->head, network_header and protocol. The generated code reads each once.
    let spec = """
      skb:net_dev_queue /mark == 0x7a79 && ifname == "\(pair.vethA)" && ip.daddr == \(pair.addressB)/ {
        print(mark, ip.saddr, ip.daddr, ip.proto, ifname, len)
      }
      """
    let run = try TracedTraffic.run(spec: spec, bursts: [burst], pair: pair, scratch: scratch)
    try #require(!run.result.timedOut && run.result.status == 0, "\(run)")
    #expect(run.sendersSent([burst]), "\(run)")
    let events = run.json.events
    #expect(events.count == burst.count, "\(run)")
    for event in events {
      #expect(event.values["mark"] == .integer(0x7a79), "\(event)")
      #expect(event.values["ip.saddr"] == .string(pair.addressA), "\(event)")
      #expect(event.values["ip.daddr"] == .string(pair.addressB), "\(event)")
      #expect(event.values["ip.proto"] == .integer(17), "\(event)")
      #expect(event.values["ifname"] == .string(pair.vethA), "\(event)")
    }
    // UDP payload + 8 + 20 + 14 bytes of headers at net_dev_queue.
    #expect(events.compactMap(\.len).sorted() == burst.payloads.map { $0 + 42 }.sorted(), "\(run)")
  }

  @Test("a signed enum compares, prints and printfs as one number: a mark with every bit set is -1", .needsTracing)
  func signedEnumComparesAndPrintsAlike() throws {
    // The running kernel's own word on the enum: its encoding and the name of -1.
    let bpftool = try #require(findExecutable("bpftool"), "bpftool is installed by `make deps`")
    let dump = try ProcessRunner.run(bpftool, ["btf", "dump", "file", "/sys/kernel/btf/vmlinux"], timeout: 60)
    try #require(dump.succeeded, "\(dump)")
    let lines = dump.stdout.split(separator: "\n")
    let header = try #require(lines.firstIndex { $0.hasSuffix("ENUM 'netns_bpf_attach_type' encoding=SIGNED size=4 vlen=4") })
    let minusOne = try #require(
      lines[(header + 1)...].prefix(4).first { $0.hasSuffix(" val=-1") }?.split(separator: "'").dropFirst().first,
      "netns_bpf_attach_type has an enumerator -1")

    let pair = try NetworkNamespacePair(subnet: 86)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("enum")
    defer { scratch.remove() }
    let burst = UDPBurst(sizes: [100], count: 4, mark: 0xffff_ffff, port: 9786)
    let value = "(enum netns_bpf_attach_type)mark"
    let spec = #"""
      skb:net_dev_queue /\#(value) < 0 && \#(value) == -1 && udp.dport == 9786/ {
        printf("%d %s %u %x\n", \#(value), \#(value), \#(value), \#(value))
        print(\#(value))
      }
      """#
    let run = try TracedTraffic.run(spec: spec, bursts: [burst], pair: pair, scratch: scratch)
    try #require(!run.result.timedOut && run.result.status == 0, "\(run)")
    #expect(run.sendersSent([burst]), "\(run)")
    #expect(printfTexts(run.result.stdout) == Array(repeating: "-1 \(minusOne) 4294967295 ffffffff\n", count: burst.count), "\(run)")
    // The print events and the printf events (whose values JSON lists too) name it alike.
    let printed = run.json.events.filter { $0.values[value] != nil }
    #expect(printed.count == 2 * burst.count, "\(run)")
    #expect(printed.allSatisfy { $0.values[value] == .string(String(minusOne)) }, "\(run)")
  }

  @Test("printf through the kernel prints what the C library prints for the values sent", .needsTracing)
  func printfAgreesWithCOnRealValues() throws {
    let pair = try NetworkNamespacePair(subnet: 85)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("printfc")
    defer { scratch.remove() }
    let burst = UDPBurst(sizes: [100, 200, 1000], count: 6, mark: 0x7a85, port: 9785)
    // Each value keeps its own width, as C's hh and h length modifiers do.
    let spec = #"""
      skb:net_dev_queue /mark == 0x7a85/ {
        printf("%#.5o|%-8x|%+d|%#010X|%5.3u|%c|% i\n", (u8)(len - 42), mark, (s8)(len - 42), (u32)len,
               (u16)udp.dport, 65 + (len & 7), (s16)(0 - len))
      }
      """#
    let run = try TracedTraffic.run(spec: spec, bursts: [burst], pair: pair, scratch: scratch)
    try #require(!run.result.timedOut && run.result.status == 0, "\(run)")
    #expect(run.sendersSent([burst]), "\(run)")
    let expected = burst.payloads.map { payload -> String in
      let len = payload + 42
      let arguments: [CVarArg] = [
        Int32(UInt8(truncatingIfNeeded: payload)), Int32(0x7a85), Int32(Int8(truncatingIfNeeded: payload)),
        Int32(len), Int32(9785), Int32(65 + (len & 7)), Int32(Int16(truncatingIfNeeded: -len)),
      ]
      var buffer = [CChar](repeating: 0, count: 256)
      let count = withVaList(arguments) { vsnprintf(&buffer, buffer.count, "%#.5hho|%-8x|%+hhd|%#010X|%5.3hu|%c|% hi\n", $0) }
      return String(decoding: buffer.prefix(Int(count)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    #expect(printfTexts(run.result.stdout).sorted() == expected.sorted(), "\(run)")
  }

  @Test("swtrace-pktgen sends IPv6 only to ::1 and fd00:200::/32")
  func pktgenRefusesForeignIPv6() throws {
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    for destination in ["2001:db8::1", "fe80::1", "fd00::1", "fd00:201::1", "::", "::ffff:8.8.8.8"] {
      let result = try ProcessRunner.run(pktgen, ["udp", "--dst", destination, "--port", "9", "--count", "1"], timeout: 10)
      #expect(result.status == 2, "\(result)")
      #expect(result.stderr.contains("refusing --dst \(destination)"), "\(result)")
      #expect(result.stdout.isEmpty, "nothing may be sent: \(result)")
    }
  }

  @Test("IPv6 filters compare with IPv6 literals and prefixes", .needsTracing)
  func ipv6LiteralFilters() throws {
    let pair = try NetworkNamespacePair(subnet: 78)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("lang6")
    defer { scratch.remove() }
    for (namespace, link, host) in [(pair.namespaceA, pair.vethA, 1), (pair.namespaceB, pair.vethB, 2)] {
      try NetworkNamespacePair.ip(["-n", namespace, "addr", "add", "fd00:200:78::\(host)/64", "dev", link, "nodad"])
    }
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    let swtrace = try TestEnvironment.binary("swtrace")
    let send = pair.shellCommand(
      in: pair.namespaceA,
      [pktgen, "udp", "--dst", "fd00:200:78::2", "--port", "9778", "--count", "4", "--sizes", "64", "--mark", "0x7a78",
       "--max-seconds", "20"]) + " >" + shellQuote(scratch.path("send.log")) + " 2>&1"
    // Neighbour discovery from A goes to a multicast address outside the /64, B's answers
    // come from ::2: only the datagrams match. The second clause must never fire.
    let spec = #"""
      skb:net_dev_queue /ip6.saddr == fd00:200:78::1 && ip6.daddr in fd00:200:78::/64/ {
        $h = (struct ipv6hdr *)(skb->head + skb->network_header)
        printf("%s > %s hop=%d next=%d dport=%d mark=%x loopback=%d\n", ip6.saddr, ip6.daddr, $h->hop_limit,
               $h->nexthdr, udp.dport, mark, ip6.daddr == ::1)
      }
      skb:net_dev_queue /ip6.saddr == fd00:200:78::99 || ip6.daddr in fd00:200:79::/48/ { printf("never\n") }
      """#
    let result = try ProcessRunner.run(swtrace, ["-f", "json", "-c", send, "-e", spec], timeout: 120)
    try #require(!result.timedOut && result.status == 0, "\(result)\n--- sender ---\n\(scratch.read("send.log") ?? "")")
    let expected = Array(
      repeating: "fd00:200:78::1 > fd00:200:78::2 hop=64 next=17 dport=9778 mark=7a78 loopback=0\n", count: 4)
    #expect(printfTexts(result.stdout) == expected, "\(result)\n--- sender ---\n\(scratch.read("send.log") ?? "")")
  }
}
