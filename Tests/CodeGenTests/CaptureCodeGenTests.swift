// Packet captures (-w) and kernel stacks (kstack, --stack) as code generation lays them out:
// the listings, the record layouts and maps, and the decoder reading back a record filled
// the way the programs fill it.

import BPF
import BTF
import CodeGen
import Foundation
import Output
import Sema
import SwtraceSyntax
import Testing
import TestSupport

private let goldenDirectory = Golden.directory()

@Suite struct CaptureCodeGen {
  static let captureOptions = DesugaringOptions(capturesPackets: true, recordsStacks: true)
  static let functions = BackendSupport(available: [.tracepoint, .kprobe, .kretprobe, .fentry, .fexit])

  static let goldens: [(name: String, text: String, support: BackendSupport, options: DesugaringOptions)] = [
    // tp_btf: the packet goes through bpf_skb_output; kfree_skb adds its reason and location.
    ("capture-tracepoint", "skb:kfree_skb /mark == 0xdead/ { print(len) }", .tracepointsOnly, captureOptions),
    // kprobe: the linear data copied into the record, which is submitted.
    ("capture-kprobe", "kprobe:ip_rcv /mark == 0xdead/ { print(len) }", functions, captureOptions),
    ("kstack-map-key", "skb:kfree_skb { @[kstack] = count() }", .tracepointsOnly, DesugaringOptions()),
  ]

  @Test(arguments: goldens.map(\.name))
  func listingMatchesGolden(name: String) throws {
    let spec = Self.goldens.first { $0.name == name }!
    let (compiled, file) = try compileAgainstFixture(spec.text, support: spec.support, options: spec.options)
    let listing = "// \(spec.text)\n" + compiled.listing(source: file)
    try Golden.check(listing, name: "\(name).txt", directory: goldenDirectory)
  }

  @Test func aCaptureFollowsEveryPrintOfAnSkbClause() throws {
    let (compiled, _) = try compileAgainstFixture(
      """
      skb:kfree_skb /mark == 1/ { print(len); if (len > 100) { printf("%d\\n", len) } }
      skb:net_dev_queue { print(len) }
      tracepoint:sched:sched_switch { print(preempt) }
      """, options: Self.captureOptions)
    #expect(compiled.captureLayouts.count == 3)
    let labels = compiled.captureLayouts.map { $0.comment.map(\.label) }
    #expect(labels[0] == ["mark", "ifname", "netns", "reason", "location", "kstack"])
    #expect(labels[2] == ["mark", "ifname", "netns", "kstack"])
    for layout in compiled.captureLayouts {
      #expect(layout.metaSize % 8 == 0 && layout.prefixOffset + layout.prefixCapacity == layout.metaSize)
      #expect(layout.deviceType != nil)
    }
    let kinds = compiled.maps.map(\.kind)
    #expect(kinds.filter { $0 == .perfEventArray }.count == 1 && kinds.filter { $0 == .stackTrace }.count == 1)
    #expect(compiled.packetMap.map { compiled.maps[Int($0)].kind } == .perfEventArray)
    #expect(compiled.stackMap.map { compiled.maps[Int($0)].kind } == .stackTrace)
  }

  /// On function backends skb:* has the tracepoint consume_skb (skb, location) and the kernel
  /// function consume_skb (skb): the program of each fills the comment its attach point has
  /// (the VM lane's pcap-kprobe once failed with "consume_skb has no argument 'location'").
  @Test func aFunctionAndATracepointOfTheSameNameKeepTheirOwnComments() throws {
    let (compiled, _) = try compileAgainstFixture(
      "skb:* /mark == 1/ { print(len) }", support: Self.functions, options: Self.captureOptions)
    let consumers = compiled.programs.filter { $0.attachPoint.name == "consume_skb" }
    #expect(Set(consumers.map(\.attachPoint.backend)).count == 2, "a tracepoint and a function: \(consumers.map(\.attachPoint))")
    // One layout for the common comment, and one per attach point with drop details of its own.
    #expect(compiled.captureLayouts.contains { $0.comment.map(\.label) == ["mark", "ifname", "netns", "kstack", "location"] })
  }

  @Test func withoutCapturesThereAreNoPacketOrStackMaps() throws {
    let (compiled, _) = try compileAgainstFixture("skb:kfree_skb { print(len) }")
    #expect(compiled.captureLayouts.isEmpty && compiled.packetMap == nil && compiled.stackMap == nil)
    #expect(!compiled.maps.contains { $0.kind == .perfEventArray || $0.kind == .stackTrace })
  }

  /// A record filled as the tracing program fills it (header, fields, the geometry it worked
  /// out, the prefix) and followed by what bpf_skb_output appends: the decoder gives back the
  /// packet from its MAC header, its length and its comment.
  @Test func theDecoderReadsARecordAsTheProgramsLayItOut() throws {
    let (compiled, _) = try compileAgainstFixture(
      "skb:kfree_skb /mark == 0xdead/ { print(len) }", options: DesugaringOptions(capturesPackets: true))
    let layout = try #require(compiled.captureLayouts.first)
    // A received frame: MAC header at 64, network header at 78, data pulled to the UDP header
    // at 98, 8 + 10 bytes from there.
    let frame = (0..<52).map { UInt8(truncatingIfNeeded: 0x30 + $0) }
    var record = [UInt8](repeating: 0, count: layout.metaSize)
    func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
      withUnsafeBytes(of: value.littleEndian) { record.replaceSubrange(offset..<offset + $0.count, with: $0) }
    }
    put(UInt64(1_000), at: EventHeader.timestampOffset)
    put(UInt32(1), at: EventHeader.cpuOffset)
    put(UInt32(0), at: EventHeader.probeOffset)
    put(layout.id | captureLayoutFlag, at: EventHeader.layoutOffset)
    put(UInt64(0xffff_8881_0000_2000), at: EventHeader.skbOffset)
    let values = Dictionary(uniqueKeysWithValues: layout.comment.map { ($0.label, $0) })
    put(UInt32(0xdead), at: try #require(values["mark"]).offset)
    let ifname = try #require(values["ifname"])
    record.replaceSubrange(ifname.offset..<ifname.offset + 3, with: Array("lo\0".utf8))
    put(UInt32(18), at: layout.length.offset)
    put(UInt32(0), at: layout.pagedLength.offset)
    put(UInt16(64), at: layout.macHeader.offset)
    put(UInt16(78), at: layout.networkHeader.offset)
    put(UInt64(0xffff_8881_0000_8000), at: layout.head.offset)
    put(UInt64(0xffff_8881_0000_8000) + 98, at: layout.data.offset)
    put(UInt16(772), at: try #require(layout.deviceType).offset)
    put(UInt32(64), at: layout.startOffset)
    put(UInt32(34), at: layout.prefixLengthOffset)
    put(UInt32(18), at: layout.capturedOffset)
    record.replaceSubrange(layout.prefixOffset..<layout.prefixOffset + 34, with: frame[..<34])
    // bpf_skb_output's bytes, then the padding a perf sample may end with.
    record += frame[34...] + [0, 0, 0, 0]
    let packet = try #require(record.withUnsafeBytes { CaptureDecoder(compiled: compiled).decode($0) })
    #expect(packet.bytes == frame)
    #expect(packet.originalLength == 52)
    #expect(packet.linkType == .ethernet)
    #expect(packet.probe == "kfree_skb" && packet.cpu == 1 && packet.skb == 0xffff_8881_0000_2000)
    #expect(packet.commentText.hasPrefix("probe=kfree_skb cpu=1 skb=0xffff888100002000 mark=0xdead ifname=lo"))
    // Events are not captures, and captures are not events.
    #expect(record.withUnsafeBytes { EventDecoder(compiled: compiled).decode($0) } == nil)
  }
}
