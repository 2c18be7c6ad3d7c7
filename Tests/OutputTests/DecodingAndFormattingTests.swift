// Output without a kernel: ring buffer records laid out as the generated programs write them
// (EventHeader, then each field little-endian at its offset), decoded and printed as lines,
// JSON and packet paths; map values laid out per CPU as the kernel returns them, merged and
// printed. Addresses are checked against the C library's inet_ntop, JSON against Foundation's
// parser: the oracles are outside swtrace.

import Foundation
import Glibc
import Testing
import TestSupport

@testable import CodeGen
@testable import Output
@testable import Sema
import SwtraceSyntax

/// `value`'s low `width` bytes, little-endian.
private func littleEndian(_ value: UInt64, _ width: Int) -> [UInt8] {
  (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
}

/// A record as a program writes it: the header, then `fields` at their offsets.
private func record(
  layout: EventLayout, probe: UInt32, timestamp: UInt64, cpu: UInt32, skb: UInt64 = 0, fields: [[UInt8]]
) -> [UInt8] {
  var bytes = [UInt8](repeating: 0, count: layout.size)
  func put(_ value: [UInt8], at offset: Int) { bytes.replaceSubrange(offset..<offset + value.count, with: value) }
  put(littleEndian(timestamp, 8), at: EventHeader.timestampOffset)
  put(littleEndian(UInt64(cpu), 4), at: EventHeader.cpuOffset)
  put(littleEndian(UInt64(probe), 4), at: EventHeader.probeOffset)
  put(littleEndian(UInt64(layout.id), 4), at: EventHeader.layoutOffset)
  put(littleEndian(skb, 8), at: EventHeader.skbOffset)
  for (field, value) in zip(layout.fields, fields) { put(value, at: field.offset) }
  return bytes
}

/// What the C library prints for an address in network order.
private func inetNtop(_ family: Int32, _ bytes: [UInt8]) -> String {
  var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
  _ = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) }
  return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

private func spec(layouts: [EventLayout], probes: [String], maps: [MapDeclaration] = []) -> CompiledSpec {
  CompiledSpec(
    programs: [], maps: [], layouts: layouts, probeNames: probes, ringBufferSize: 4096, userMaps: maps,
    userClauses: [])
}

/// `print(len, saddr, ip6.daddr, ifname, gso_type, (s16)x)` as code generation lays it out.
private let printLayout = EventLayout(
  id: 0,
  fields: [
    EventField(label: "len", type: .u32, offset: 32, size: 4),
    EventField(label: "saddr", type: .ipv4, offset: 40, size: 8),
    EventField(label: "ip6.daddr", type: .ipv6, offset: 48, size: 16),
    EventField(label: "ifname", type: .string(capacity: 16), offset: 64, size: 16),
    EventField(
      label: "gso_type", type: .flags(FlagNames(flags: [.init(name: "tcpv4", value: 1), .init(name: "udp", value: 2)])),
      offset: 80, size: 4),
    EventField(label: "(s16)x", type: .integer(bytes: 2, signed: true), offset: 84, size: 2),
  ],
  size: 88, range: SourceRange(0, 0))

@Suite struct EventRecords {
  static let saddr: [UInt8] = [10, 200, 0, 1]
  static let daddr: [UInt8] = [0xfd, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01]

  /// The field bytes of one event: addresses as the program holds them (IPv4 in host order
  /// in a register, IPv6 as the packet's bytes).
  static var fields: [[UInt8]] {
    let ipv4 = UInt64(saddr[0]) << 24 | UInt64(saddr[1]) << 16 | UInt64(saddr[2]) << 8 | UInt64(saddr[3])
    return [
      littleEndian(1500, 4), littleEndian(ipv4, 8), daddr, Array("veth0".utf8) + [0, 0x41, 0x41],
      littleEndian(3, 4), littleEndian(UInt64(bitPattern: -2), 2),
    ]
  }

  @Test func aRecordDecodesToItsValues() throws {
    let decoder = EventDecoder(compiled: spec(layouts: [printLayout], probes: ["net_dev_queue", "kfree_skb"]))
    let bytes = record(layout: printLayout, probe: 1, timestamp: 123_456_789, cpu: 3, skb: 0xffff_8880_1234_5600, fields: Self.fields)
    let event = try #require(bytes.withUnsafeBytes { decoder.decode($0) })
    #expect(event.timestamp == 123_456_789 && event.cpu == 3 && event.probe == "kfree_skb")
    #expect(event.skb == 0xffff_8880_1234_5600)
    #expect(event.values.map(\.label) == ["len", "saddr", "ip6.daddr", "ifname", "gso_type", "(s16)x"])
    #expect(
      event.values.map(\.value) == [
        .unsigned(1500), .ipv4(0x0ac8_0001), .ipv6(Self.daddr), .text("veth0"), .name("tcpv4|udp"), .signed(-2),
      ])
    // What the C library makes of the same addresses.
    #expect(event.values[1].value.text == inetNtop(AF_INET, Self.saddr))
    #expect(event.values[2].value.text == inetNtop(AF_INET6, Self.daddr))
  }

  @Test func recordsThatAreNotThisSpecsAreRefused() {
    let decoder = EventDecoder(compiled: spec(layouts: [printLayout], probes: ["net_dev_queue"]))
    let good = record(layout: printLayout, probe: 0, timestamp: 1, cpu: 0, fields: Self.fields)
    #expect(good.withUnsafeBytes { decoder.decode($0) } != nil)
    // Shorter than its layout, an unknown layout or probe, shorter than a header.
    #expect(Array(good.prefix(80)).withUnsafeBytes { decoder.decode($0) } == nil)
    var unknownLayout = good
    unknownLayout[EventHeader.layoutOffset] = 7
    #expect(unknownLayout.withUnsafeBytes { decoder.decode($0) } == nil)
    var unknownProbe = good
    unknownProbe[EventHeader.probeOffset] = 9
    #expect(unknownProbe.withUnsafeBytes { decoder.decode($0) } == nil)
    #expect(Array(good.prefix(16)).withUnsafeBytes { decoder.decode($0) } == nil)
    // exit() sends a header with the exit layout id and nothing else.
    var exit = [UInt8](repeating: 0, count: EventHeader.size)
    exit.replaceSubrange(EventHeader.layoutOffset..<EventHeader.layoutOffset + 4, with: littleEndian(UInt64(exitRequestLayoutID), 4))
    #expect(exit.withUnsafeBytes { decoder.isExitRequest($0) })
    #expect(!good.withUnsafeBytes { decoder.isExitRequest($0) })
  }

  @Test func textLinesAreIpftracesAndJSONLinesParse() throws {
    let decoder = EventDecoder(compiled: spec(layouts: [printLayout], probes: ["net_dev_queue"]))
    let bytes = record(layout: printLayout, probe: 0, timestamp: 42, cpu: 1, fields: Self.fields)
    let event = try #require(bytes.withUnsafeBytes { decoder.decode($0) })
    #expect(
      EventFormatter(format: .text).line(event)
        == "42 1 net_dev_queue (len: 1500 saddr: 10.200.0.1 ip6.daddr: fd00:200::1 ifname: veth0 gso_type: tcpv4|udp (s16)x: -2)")

    let line = EventFormatter(format: .json, host: "node \"1\"", wallClockOffset: 1_000).line(event)
    let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
    #expect(object["probe"] as? String == "net_dev_queue")
    #expect(object["ts"] as? Int == 42 && object["cpu"] as? Int == 1 && object["wall_ts"] as? Int == 1_042)
    #expect(object["host"] as? String == "node \"1\"")
    let values = try #require(object["values"] as? [String: Any])
    #expect(values["len"] as? Int == 1500 && values["(s16)x"] as? Int == -2)
    #expect(values["saddr"] as? String == "10.200.0.1" && values["ip6.daddr"] as? String == "fd00:200::1")
    #expect(values["ifname"] as? String == "veth0" && values["gso_type"] as? String == "tcpv4|udp")
  }

  /// Whatever a kernel string holds, the JSON stays valid and reads back the same.
  @Test func jsonStringsRoundTripThroughAJSONParser() throws {
    var random = SplitMix64(seed: 0x0_50_7e57)
    let alphabet: [Unicode.Scalar] = ["\"", "\\", "\n", "\r", "\t", "\u{0}", "\u{1}", "\u{1f}", "\u{7f}", "a", "/", "é", "€", "😀"]
    for _ in 0..<500 {
      var text = ""
      for _ in 0..<Int(random.next() % 12) { text.unicodeScalars.append(alphabet[Int(random.next() % UInt64(alphabet.count))]) }
      let encoded = JSON.string(text)
      let decoded = try JSONSerialization.jsonObject(with: Data(encoded.utf8), options: .fragmentsAllowed) as? String
      #expect(decoded == text, "\(encoded)")
    }
  }

  @Test func ipv6TextIsWhatTheCLibraryPrints() {
    var random = SplitMix64(seed: 0x1_9_6)
    for _ in 0..<2000 {
      // Groups are zero half of the time, so runs of zeros of every length and position occur.
      let groups = (0..<8).map { _ in random.next() % 2 == 0 ? UInt16(0) : UInt16(truncatingIfNeeded: random.next()) }
      let bytes = groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
      // inet_ntop writes IPv4-mapped and -compatible addresses with a dotted tail, which
      // swtrace does not: leave those out.
      if groups[0..<5].allSatisfy({ $0 == 0 }) && (groups[5] == 0xffff || groups[5] == 0) { continue }
      #expect(DecodedValue.ipv6(bytes).text == inetNtop(AF_INET6, bytes), "\(groups)")
    }
  }
}

@Suite struct PacketPaths {
  static let layout = EventLayout(
    id: 0, fields: [EventField(label: "len", type: .u32, offset: 32, size: 4)], size: 40, range: SourceRange(0, 0))

  static func event(_ probe: String, skb: UInt64, at timestamp: UInt64, len: UInt32) -> DecodedEvent {
    DecodedEvent(timestamp: timestamp, cpu: 0, probe: probe, skb: skb, values: [("len", .unsigned(UInt64(len)))])
  }

  /// A path ends where the kernel frees its skb; the address then starts a new path. Each
  /// hop shows its time since the first hop and, in parentheses, since the previous one.
  @Test func aPathEndsWhereTheSkbIsFreed() throws {
    let paths = PathCollector(json: false)
    #expect(paths.add(Self.event("net_dev_queue", skb: 0xa0, at: 1_000, len: 142)).isEmpty)
    #expect(paths.add(Self.event("net_dev_queue", skb: 0xb0, at: 1_500, len: 60)).isEmpty)
    #expect(paths.add(Self.event("net_dev_start_xmit", skb: 0xa0, at: 1_800, len: 142)).isEmpty)
    let done = try #require(paths.add(Self.event("kfree_skb", skb: 0xa0, at: 3_500, len: 142)).first?.text)
    #expect(
      done == """
        packet skb 0xa0 at 1000 (3 hops):
          +0.0us (+0.0us) cpu 0 net_dev_queue (len: 142)
          +0.8us (+0.8us) cpu 0 net_dev_start_xmit (len: 142)
          +2.5us (+1.7us) cpu 0 kfree_skb (len: 142)
        """)
    #expect(paths.add(Self.event("net_dev_queue", skb: 0xa0, at: 9_000, len: 99)).isEmpty)
    #expect(
      paths.finish().map(\.text) == [
        "packet skb 0xb0 at 1500 (1 hop, not freed while tracing):\n  +0.0us (+0.0us) cpu 0 net_dev_queue (len: 60)",
        "packet skb 0xa0 at 9000 (1 hop, not freed while tracing):\n  +0.0us (+0.0us) cpu 0 net_dev_queue (len: 99)",
      ])
    #expect(paths.finish().isEmpty)
  }

  @Test func jsonPathsParse() throws {
    let paths = PathCollector(json: true)
    _ = paths.add(Self.event("net_dev_queue", skb: 0xa0, at: 1_000, len: 142))
    _ = paths.add(Self.event("net_dev_start_xmit", skb: 0xa0, at: 1_200, len: 142))
    let line = try #require(paths.add(Self.event("consume_skb", skb: 0xa0, at: 1_700, len: 142)).first?.text)
    let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
    #expect(object["skb"] as? String == "0xa0" && object["ts"] as? Int == 1_000 && object["complete"] as? Bool == true)
    let hops = try #require(object["hops"] as? [[String: Any]])
    #expect(hops.map { $0["probe"] as? String } == ["net_dev_queue", "net_dev_start_xmit", "consume_skb"])
    #expect(hops.map { $0["dt_ns"] as? Int } == [0, 200, 700])
    #expect(hops.map { $0["dt_prev_ns"] as? Int } == [0, 200, 500])
    #expect(hops.map { ($0["values"] as? [String: Any])?["len"] as? Int } == [142, 142, 142])
  }
}

@Suite struct MapValues {
  /// One map's per-CPU value: one 8-byte-aligned slot per CPU, as the kernel returns it.
  static func perCPU(_ slots: [[UInt64]]) -> [UInt8] {
    slots.flatMap { slot in slot.flatMap { littleEndian($0, 8) } }
  }

  static func map(_ name: String, _ aggregation: Aggregation, keys: [MapKey] = [], value: ValueType = .u64) -> MapDeclaration {
    MapDeclaration(name: name, keys: keys, aggregation: aggregation, valueType: value, range: SourceRange(0, 0))
  }

  @Test func countsAndSumsAddUpEveryCPU() throws {
    let maps = [
      Self.map("pkts", .count, keys: [MapKey(label: "ifname", type: .string(capacity: 16))]),
      Self.map("delta", .sum, value: .integer(bytes: 8, signed: true)),
    ]
    let printer = MapPrinter(compiled: spec(layouts: [], probes: [], maps: maps), format: .text)
    let key = Array("eth0".utf8) + [UInt8](repeating: 0, count: 12)
    let counts = printer.entries(0, raw: [(key, Self.perCPU([[2], [3], [0]]))])
    #expect(printer.render(0, entries: counts) == "@pkts[eth0]: 5\n")
    let sums = printer.entries(1, raw: [(littleEndian(0, 8), Self.perCPU([[UInt64(bitPattern: -7)], [2]]))])
    #expect(printer.render(1, entries: sums) == "@delta: -5\n")
    #expect(printer.render(1, entries: []) == "@delta: (empty)\n")
  }

  @Test func averagesMinimaAndMaximaKeepWhatCPUsSaw() {
    let maps = [
      Self.map("avg", .average), Self.map("stats", .stats), Self.map("low", .minimum, value: .integer(bytes: 4, signed: true)),
      Self.map("high", .maximum),
    ]
    let printer = MapPrinter(compiled: spec(layouts: [], probes: [], maps: maps), format: .text)
    let key = littleEndian(0, 8)
    // (count, total) per CPU.
    #expect(printer.render(0, entries: printer.entries(0, raw: [(key, Self.perCPU([[2, 300], [1, 150]]))])) == "@avg: 150\n")
    #expect(
      printer.render(1, entries: printer.entries(1, raw: [(key, Self.perCPU([[2, 300], [2, 100]]))]))
        == "@stats: count 4, average 100, total 400\n")
    // (value, present) per CPU: a CPU that saw nothing does not count.
    #expect(
      printer.render(2, entries: printer.entries(2, raw: [(key, Self.perCPU([[UInt64(bitPattern: -3), 1], [0, 0], [5, 1]]))]))
        == "@low: -3\n")
    #expect(printer.render(3, entries: printer.entries(3, raw: [(key, Self.perCPU([[0, 0], [0, 0]]))])) == "@high: (none)\n")
  }

  @Test func histogramsPrintTheirBucketsAndJSONParses() throws {
    let hist = Self.map("sizes", .histogram)
    let printer = MapPrinter(compiled: spec(layouts: [], probes: [], maps: [hist]), format: .text)
    // Buckets 9 ([128, 256)) and 11 ([512, 1K)), keyed like a hash map's: the bucket last.
    let raw = [(littleEndian(9, 8), Self.perCPU([[4], [6]])), (littleEndian(11, 8), Self.perCPU([[5], [0]]))]
    let entries = printer.entries(0, raw: raw)
    let rows = printer.render(0, entries: entries).split(separator: "\n")
    #expect(rows[0] == "@sizes:")
    #expect(rows[1].hasPrefix("[128, 256)") && rows[1].contains("      10 |") && rows[1].hasSuffix(String(repeating: "@", count: 52) + "|"))
    #expect(rows[2].hasPrefix("[256, 512)") && rows[2].contains("       0 |"))
    #expect(rows[3].hasPrefix("[512, 1K)") && rows[3].contains("       5 |" + String(repeating: "@", count: 26)))

    let json = MapPrinter(compiled: spec(layouts: [], probes: [], maps: [hist]), format: .json).render(0, entries: entries)
    let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(json)")
    #expect(object["map"] as? String == "@sizes" && object["aggregation"] as? String == "hist")
    let buckets = try #require(((object["entries"] as? [[String: Any]])?.first?["buckets"]) as? [[String: Any]])
    #expect(buckets.map { $0["min"] as? Int } == [128, 512])
    #expect(buckets.map { $0["max"] as? Int } == [256, 1024])
    #expect(buckets.map { $0["count"] as? Int } == [10, 5])
  }
}

/// The event path's direct formatter (`RecordFormatter`, records to bytes without a
/// `DecodedEvent`) writes exactly the lines of `EventFormatter.line(EventDecoder.decode(...))`,
/// whose values the suites above check against inet_ntop, Foundation's JSON parser and the
/// C library: on every kind of value it has a shortcut for, the values it leaves to the
/// general path, and the edges (absent values, strings that are not plain ASCII, extreme
/// numbers, records too short or of layouts the spec does not have).
@Suite struct DirectRecordLines {
  static let layout = EventLayout(
    id: 0,
    fields: [
      EventField(label: "len", type: .u32, offset: 32, size: 4),
      EventField(label: "saddr", type: .ipv4, offset: 40, size: 8),
      EventField(label: "ifname", type: .string(capacity: 16), offset: 48, size: 16),
      EventField(label: "(s16)x", type: .integer(bytes: 2, signed: true), offset: 64, size: 2),
      EventField(label: "big", type: .u64, offset: 72, size: 8),
      EventField(label: "neg", type: .s64, offset: 80, size: 8),
      EventField(label: "ok", type: .bool, offset: 88, size: 1),
      EventField(label: "ptr", type: .pointer(pointee: 0, description: "struct sk_buff *"), offset: 96, size: 8),
      EventField(label: "udp.dport", type: .integer(bytes: 2, signed: false), offset: 104, size: 2, presenceOffset: 106),
      EventField(label: "addr", type: .ipAddress, offset: 112, size: 24),
      EventField(label: "ip6.daddr", type: .ipv6, offset: 136, size: 16),
      EventField(
        label: "gso", type: .flags(FlagNames(flags: [.init(name: "tcpv4", value: 1), .init(name: "udp", value: 2)])),
        offset: 152, size: 4),
    ],
    size: 160, range: SourceRange(0, 0))

  static let strings: [[UInt8]] = [
    Array("veth0".utf8), Array("a\"b\\c".utf8), Array("tab\there".utf8), Array("caf\u{e9}".utf8), [0x41, 0xff, 0x42],
    [0x7f, 0x41], Array("0123456789abcdef".utf8), [], [0xc2, 0x85],
  ]

  static func records() -> [[UInt8]] {
    var random = SplitMix64(seed: 22)
    var records: [[UInt8]] = []
    for n in 0..<400 {
      var fields: [[UInt8]] = []
      let extremes: [UInt64] = [0, 1, 9, 10, 99, 100, UInt64.max, 1 << 63, random.next()]
      fields.append(littleEndian(extremes[n % extremes.count], 4))
      fields.append(littleEndian(random.next(), 8))
      let string = strings[n % strings.count]
      fields.append(Array((string + [UInt8](repeating: 0, count: 16)).prefix(16)))
      fields.append(littleEndian(extremes[(n + 3) % extremes.count], 2))
      fields.append(littleEndian(extremes[(n + 5) % extremes.count], 8))
      fields.append(littleEndian(extremes[(n + 6) % extremes.count], 8))
      fields.append([UInt8(n % 3)])
      fields.append(littleEndian(n % 4 == 0 ? 0 : random.next(), 8))
      fields.append(littleEndian(random.next(), 2) + [UInt8(n % 2)])
      let family: UInt8 = n % 3 == 0 ? 6 : 4
      fields.append((0..<16).map { _ in UInt8(truncatingIfNeeded: random.next()) } + [family] + [UInt8](repeating: 0, count: 7))
      fields.append((0..<16).map { i in i < 2 ? 0xfd : (n % 2 == 0 ? 0 : UInt8(truncatingIfNeeded: random.next())) })
      fields.append(littleEndian(UInt64(n % 4), 4))
      records.append(record(layout: layout, probe: UInt32(n % 2), timestamp: random.next(), cpu: UInt32(n % 3), fields: fields))
    }
    return records
  }

  @Test(arguments: [OutputFormat.text, .json], [nil, "node \"1\""])
  func directLinesAreTheGeneralLines(format: OutputFormat, host: String?) throws {
    let decoder = EventDecoder(compiled: spec(layouts: [Self.layout], probes: ["net_dev_queue", "kfree_skb"]))
    for offset: Int64? in [nil, 1_700_000_000_000_000_000, -5] {
      let formatter = EventFormatter(format: format, host: host, wallClockOffset: offset)
      let direct = try #require(RecordFormatter(decoder: decoder, formatter: formatter))
      for record in Self.records() {
        var line: [UInt8] = []
        let outcome = record.withUnsafeBytes { direct.append($0, to: &line) }
        let event = try #require(record.withUnsafeBytes { decoder.decode($0) })
        #expect(outcome == .formatted)
        #expect(String(decoding: line, as: UTF8.self) == formatter.line(event) + "\n")
      }
    }
  }

  @Test func recordsThatAreNoEventAreLeftAlone() throws {
    let decoder = EventDecoder(compiled: spec(layouts: [Self.layout], probes: ["net_dev_queue"]))
    let direct = try #require(RecordFormatter(decoder: decoder, formatter: EventFormatter(format: .json)))
    let good = Self.records()[0]
    var otherProbe = good
    otherProbe[EventHeader.probeOffset] = 1
    var otherLayout = good
    otherLayout[EventHeader.layoutOffset] = 1
    for bytes in [Array(good.prefix(100)), Array(good.prefix(20)), otherProbe, otherLayout] {
      var line: [UInt8] = []
      #expect(bytes.withUnsafeBytes { direct.append($0, to: &line) } == .notAnEvent)
      #expect(bytes.withUnsafeBytes { decoder.decode($0) } == nil)
      #expect(line.isEmpty)
    }
  }

  @Test func pathsTakeTheGeneralPath() throws {
    let decoder = EventDecoder(compiled: spec(layouts: [Self.layout], probes: ["net_dev_queue"]))
    #expect(RecordFormatter(decoder: decoder, formatter: EventFormatter(format: .paths)) == nil)
    #expect(RecordFormatter(decoder: decoder, formatter: EventFormatter(format: .pathsJSON)) == nil)
  }
}
