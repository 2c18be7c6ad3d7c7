// The pcapng writer, read back by tshark and capinfos (Wireshark's own readers): blocks,
// lengths and 32-bit padding they accept without a complaint, one interface per probe and
// link type with its name, description and nanosecond resolution, wall-clock timestamps,
// captured and original lengths, and the comment. Also what link type a capture's geometry
// means, and the comment's text.

import Foundation
import Output
import Testing
import TestSupport

@Suite struct PcapngFiles {
  /// Monotonic nanoseconds of the first packet and the wall-clock offset: the file must say
  /// their sum, 1,700,000,000.000000123 s after the epoch plus the monotonic time.
  static let wallClockOffset: Int64 = 1_700_000_000_000_000_000

  /// A UDP datagram from 10.200.110.1:40000 to 10.200.110.2:9000 with `payload` bytes 0, 1,
  /// 2, ..., in an Ethernet frame between two made-up MAC addresses.
  static func ethernetFrame(payload: Int) -> [UInt8] {
    let udpLength = 8 + payload
    let ipLength = 20 + udpLength
    var frame: [UInt8] = [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]
    frame += [0x45, 0, UInt8(ipLength >> 8), UInt8(ipLength & 0xff), 0, 1, 0x40, 0, 64, 17, 0, 0]
    frame += [10, 200, 110, 1, 10, 200, 110, 2]
    frame += [0x9c, 0x40, 0x23, 0x28, UInt8(udpLength >> 8), UInt8(udpLength & 0xff), 0, 0]
    frame += (0..<payload).map { UInt8(truncatingIfNeeded: $0) }
    return frame
  }

  static func packet(
    _ probe: String, _ linkType: LinkType, _ bytes: [UInt8], original: Int? = nil, at timestamp: UInt64,
    comment: [(String, DecodedValue)] = []
  ) -> CapturedPacket {
    CapturedPacket(
      timestamp: timestamp, cpu: 1, probe: probe, skb: 0xffff_8881_0000_1000, linkType: linkType, bytes: bytes,
      originalLength: original ?? bytes.count, comment: comment)
  }

  /// Packets whose lengths leave 0 to 3 bytes of padding, a truncated one, a repeated
  /// interface, and a comment over several lines.
  static let packets: [CapturedPacket] = [
    packet(
      "net_dev_queue", .ethernet, ethernetFrame(payload: 19), at: 123,
      comment: [("mark", .unsigned(0xdead)), ("ifname", .text("vetha")), ("netns", .unsigned(4_026_531_840))]),
    packet(
      "kfree_skb", .raw, Array(ethernetFrame(payload: 958).dropFirst(14).prefix(40)), original: 986, at: 5_000,
      comment: [
        ("reason", .name("SKB_DROP_REASON_NO_SOCKET")), ("location", .name("__udp4_lib_rcv+0x4bc")),
        ("kstack", .kernelStack(KernelStack(frames: ["sk_skb_reason_drop+0x90", "__udp4_lib_rcv+0x4bc"]))),
      ]),
    packet("net_dev_queue", .ethernet, ethernetFrame(payload: 20), at: 9_000),
    packet("net_dev_queue", .user0, [1, 2, 3], at: 12_000, comment: [("ifname", .text("")), ("netns", .unsigned(0))]),
  ]

  static func write() throws -> URL {
    var writer = PcapngWriter(
      application: "swtrace test", system: "Linux test", snaplen: 2048, wallClockOffset: wallClockOffset)
    for packet in packets { writer.write(packet) }
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("swtrace-pcapng-\(getpid())-\(UUID()).pcapng")
    try Data(writer.take()).write(to: file)
    return file
  }

  @Test(.needsTshark) func tsharkReadsEveryPacketAsWritten() throws {
    let file = try Self.write()
    defer { try? FileManager.default.removeItem(at: file) }
    let read = try Tshark.packets(file.path)
    try #require(read.count == Self.packets.count, "\(read)")
    for (written, dissected) in zip(Self.packets, read) {
      #expect(dissected["frame.interface_name"] == written.probe, "\(dissected)")
      #expect(dissected.integer("frame.len") == written.originalLength, "\(dissected)")
      #expect(dissected.integer("frame.cap_len") == written.bytes.count, "\(dissected)")
      #expect(dissected["frame.comment"] == written.commentText, "\(dissected)")
      // Wireshark's numbers for the encapsulations: 1 Ethernet, 7 raw IP, 45 "user 0".
      let encapsulation = [LinkType.ethernet: "1", .raw: "7", .user0: "45"][written.linkType]
      #expect(dissected["frame.encap_type"] == encapsulation, "\(dissected)")
      let nanoseconds = Int64(written.timestamp) + Self.wallClockOffset
      let epoch = "\(nanoseconds / 1_000_000_000).\(String(format: "%09lld", nanoseconds % 1_000_000_000))"
      #expect(dissected["frame.time_epoch"] == epoch, "\(dissected)")
    }
    // The same probe and link type share an interface; a new link type gets its own.
    #expect(read.map { $0.integer("frame.interface_id") } == [0, 1, 0, 2])
    #expect(read[0]["frame.interface_description"] == "swtrace probe net_dev_queue: Ethernet frames")
    // What Wireshark's dissectors make of the bytes: the packet itself, not just its length.
    #expect(read[0]["udp.dstport"] == "9000" && read[0]["ip.src"] == "10.200.110.1" && read[0]["udp.length"] == "27")
    #expect(read[0].bytes("data.data") == (0..<19).map { UInt8($0) })
    #expect(read[1]["ip.dst"] == "10.200.110.2" && read[1]["ip.len"] == "986")
  }

  @Test(.needsTshark) func capinfosSeesTheSectionAndInterfaces() throws {
    let file = try Self.write()
    defer { try? FileManager.default.removeItem(at: file) }
    let info = try Tshark.capinfos(file.path)
    #expect(info.contains("pcapng"), "\(info)")
    #expect(info.contains("Capture application: swtrace test") && info.contains("Capture oper-sys:    Linux test"), "\(info)")
    #expect(info.contains("Number of packets:   4"), "\(info)")
    #expect(info.contains("Number of interfaces in file: 3"), "\(info)")
    #expect(info.components(separatedBy: "Time precision = nanoseconds (9)").count - 1 == 3, "\(info)")
    #expect(info.components(separatedBy: "Capture length = 2048").count - 1 == 3, "\(info)")
    for name in ["net_dev_queue", "kfree_skb"] { #expect(info.contains("Name = \(name)"), "\(info)") }
  }

  /// The comment says what the issue asks for, in `key=value` words a display filter can
  /// match (`frame.comment contains "probe=kfree_skb"`), with the stack in bpftrace's layout.
  @Test func commentText() {
    #expect(
      Self.packets[0].commentText
        == "probe=net_dev_queue cpu=1 skb=0xffff888100001000 mark=0xdead ifname=vetha netns=4026531840")
    #expect(
      Self.packets[1].commentText == """
        probe=kfree_skb cpu=1 skb=0xffff888100001000 reason=SKB_DROP_REASON_NO_SOCKET location=__udp4_lib_rcv+0x4bc
        kstack:
                sk_skb_reason_drop+0x90
                __udp4_lib_rcv+0x4bc
        """)
    // No device: no ifname, no namespace.
    #expect(Self.packets[3].commentText == "probe=net_dev_queue cpu=1 skb=0xffff888100001000")
  }
}

/// What a capture starts with, by where its start is and what device the skb is on. The
/// offsets are the kernel's (`skb->head` relative, the MAC header 0xffff when unset, the
/// network header 0 when never set), the device types its ARPHRD_* numbers.
@Suite struct CaptureLinkTypes {
  static func geometry(start: UInt64, mac: UInt64, network: UInt64, data: UInt64, device: UInt64) -> PacketGeometryValues {
    PacketGeometryValues(start: start, dataOffset: data, macHeader: mac, networkHeader: network, deviceType: device)
  }

  @Test func ethernetLikeDevices() {
    // Sent on a veth (ARPHRD_ETHER): data at the MAC header.
    #expect(Self.geometry(start: 64, mac: 64, network: 78, data: 64, device: 1).linkType(firstByteOfNetworkHeader: 0x45) == .ethernet)
    // Received: the MAC header pulled, the capture starts before data.
    #expect(Self.geometry(start: 64, mac: 64, network: 78, data: 78, device: 1).linkType(firstByteOfNetworkHeader: 0x45) == .ethernet)
    // Loopback's header is an Ethernet header of zeros (ARPHRD_LOOPBACK).
    #expect(Self.geometry(start: 64, mac: 64, network: 78, data: 98, device: 772).linkType(firstByteOfNetworkHeader: 0x45) == .ethernet)
    // A packet socket's frame: both headers at the frame's start.
    #expect(Self.geometry(start: 2, mac: 2, network: 2, data: 2, device: 1).linkType(firstByteOfNetworkHeader: 0x12) == .ethernet)
    // Entering __dev_queue_xmit: the Ethernet header pushed at data, the MAC header not set
    // yet (it is set in the function's body).
    #expect(Self.geometry(start: 50, mac: 0xffff, network: 64, data: 50, device: 1).linkType(firstByteOfNetworkHeader: 0x45) == .ethernet)
    #expect(Self.geometry(start: 50, mac: 0xffff, network: 64, data: 50, device: 772).linkType(firstByteOfNetworkHeader: 0x45) == .ethernet)
    // No device, but an Ethernet header's length before the network header.
    #expect(Self.geometry(start: 64, mac: 64, network: 78, data: 78, device: 0).linkType(firstByteOfNetworkHeader: 0x45) == .ethernet)
  }

  @Test func devicesWithoutALinkLayer() {
    // WireGuard and tun (ARPHRD_NONE): the MAC header is the network header.
    #expect(Self.geometry(start: 80, mac: 80, network: 80, data: 80, device: 0xfffe).linkType(firstByteOfNetworkHeader: 0x45) == .raw)
    #expect(Self.geometry(start: 80, mac: 80, network: 80, data: 80, device: 0xfffe).linkType(firstByteOfNetworkHeader: 0x60) == .raw)
  }

  @Test func networkHeaderOnly() {
    // Built by the IP layer, no MAC header yet.
    #expect(Self.geometry(start: 128, mac: 0xffff, network: 128, data: 128, device: 1).linkType(firstByteOfNetworkHeader: 0x45) == .raw)
    // An ARP header is not IP.
    #expect(Self.geometry(start: 128, mac: 0xffff, network: 128, data: 128, device: 1).linkType(firstByteOfNetworkHeader: 0x00) == .user0)
  }

  @Test func nothingToNameItBy() {
    // Neither header set (a transport header being built): the bytes from data, as data.
    #expect(Self.geometry(start: 160, mac: 0xffff, network: 0, data: 160, device: 1).linkType(firstByteOfNetworkHeader: nil) == .user0)
    // The same from data on a device whose header is not Ethernet's (ARPHRD_IPGRE).
    #expect(Self.geometry(start: 50, mac: 0xffff, network: 64, data: 50, device: 778).linkType(firstByteOfNetworkHeader: 0x45) == .user0)
    // An unknown link layer (an IP tunnel's outer header, ARPHRD_IPGRE) before the network header.
    #expect(Self.geometry(start: 64, mac: 64, network: 88, data: 64, device: 778).linkType(firstByteOfNetworkHeader: 0x45) == .user0)
  }
}
