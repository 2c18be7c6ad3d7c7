public import CodeGen
import Sema

/// The link types swtrace writes (tcpdump.org's LINKTYPE_* numbers).
public enum LinkType: UInt16, Hashable, Sendable, CaseIterable {
  /// An Ethernet header first (veth, loopback, bridges, VLANs, physical NICs).
  case ethernet = 1
  /// An IPv4 or IPv6 header first, no link-layer header (WireGuard, tun, or a capture that
  /// starts at the network header).
  case raw = 101
  /// Bytes swtrace cannot name a link type for (no network header set yet, an unknown
  /// link-layer header): "user 0", which Wireshark shows as data.
  case user0 = 147

  /// How the interface description names what its packets start with.
  public var description: String {
    switch self {
    case .ethernet: "Ethernet frames"
    case .raw: "IP packets without a link-layer header"
    case .user0: "bytes from skb->data, no header swtrace can name"
    }
  }
}

/// One captured packet: the bytes as the kernel held them at a probe, and what its comment
/// says.
public struct CapturedPacket: Sendable {
  /// `bpf_ktime_get_ns()` when the probe fired (the monotonic clock).
  public var timestamp: UInt64
  public var cpu: UInt32
  public var probe: String
  public var skb: UInt64
  public var linkType: LinkType
  /// At most the snap length, from the capture's start.
  public var bytes: [UInt8]
  /// The packet's length from the capture's start: the bytes before `data`, plus `skb->len`.
  public var originalLength: Int
  /// Labelled values: mark, device, namespace, drop reason and location, stack.
  public var comment: [(label: String, value: DecodedValue)]

  public init(
    timestamp: UInt64, cpu: UInt32, probe: String, skb: UInt64, linkType: LinkType, bytes: [UInt8],
    originalLength: Int, comment: [(label: String, value: DecodedValue)]
  ) {
    self.timestamp = timestamp
    self.cpu = cpu
    self.probe = probe
    self.skb = skb
    self.linkType = linkType
    self.bytes = bytes
    self.originalLength = originalLength
    self.comment = comment
  }

  /// The packet comment: `probe=... cpu=... skb=0x...`, then the comment's values as
  /// `label=value` (the mark in hex, as iptables and ip rules show marks; an absent device
  /// left out), then the stack in bpftrace's layout.
  public var commentText: String {
    var parts = ["probe=\(probe)", "cpu=\(cpu)", "skb=0x\(String(skb, radix: 16))"]
    var stack = ""
    for (label, value) in comment {
      switch (label, value) {
      case ("mark", .unsigned(let mark)): parts.append("mark=0x\(String(mark, radix: 16))")
      case ("ifname", .text("")), ("netns", .unsigned(0)): continue
      case (_, .kernelStack(let frames)):
        stack = "\n\(label):" + (frames.unavailable == nil ? String(frames.text.dropLast()) : " " + frames.text)
      default: parts.append("\(label)=\(value.text)")
      }
    }
    return parts.joined(separator: " ") + stack
  }
}

/// Reads capture records: the record a program filled (`CaptureLayout`) followed by the
/// packet's bytes from `skb->data`, whichever channel carried them (a perf sample or a ring
/// buffer record: both are laid out so).
public struct CaptureDecoder: Sendable {
  public let compiled: CompiledSpec
  public let stacks: KernelStackTable?

  public init(compiled: CompiledSpec, stacks: KernelStackTable? = nil) {
    self.compiled = compiled
    self.stacks = stacks
  }

  /// Whether a ring buffer record is a capture rather than an event.
  public static func isCapture(_ bytes: UnsafeRawBufferPointer) -> Bool {
    guard bytes.count >= EventHeader.size else { return false }
    let id = UInt32(truncatingIfNeeded: StoredNumber(bytes, at: EventHeader.layoutOffset, width: 4).bits)
    return id != exitRequestLayoutID && id & captureLayoutFlag != 0
  }

  /// The packet in a capture record, or nil when the record is not one this spec makes.
  /// A perf sample may carry padding after the packet: the record says how long it is.
  public func decode(_ bytes: UnsafeRawBufferPointer) -> CapturedPacket? {
    guard Self.isCapture(bytes) else { return nil }
    func number(_ offset: Int, _ width: Int) -> UInt64 { StoredNumber(bytes, at: offset, width: width).bits }
    let id = Int(UInt32(truncatingIfNeeded: number(EventHeader.layoutOffset, 4)) & ~captureLayoutFlag)
    let probeID = Int(number(EventHeader.probeOffset, 4))
    guard id < compiled.captureLayouts.count, probeID < compiled.probeNames.count else { return nil }
    let layout = compiled.captureLayouts[id]
    guard bytes.count >= layout.metaSize else { return nil }
    func field(_ field: EventField) -> UInt64 { number(field.offset, field.size) }
    let prefixLength = min(Int(number(layout.prefixLengthOffset, 4)), layout.prefixCapacity)
    let captured = min(Int(number(layout.capturedOffset, 4)), bytes.count - layout.metaSize)
    let packet =
      Array(bytes[layout.prefixOffset..<layout.prefixOffset + prefixLength])
      + Array(bytes[layout.metaSize..<layout.metaSize + captured])
    let geometry = PacketGeometryValues(
      start: number(layout.startOffset, 4), dataOffset: field(layout.data) &- field(layout.head),
      macHeader: field(layout.macHeader), networkHeader: field(layout.networkHeader),
      deviceType: layout.deviceType.map(field) ?? 0)
    let decoder = EventDecoder(compiled: compiled, stacks: stacks)
    return CapturedPacket(
      timestamp: number(EventHeader.timestampOffset, 8), cpu: UInt32(truncatingIfNeeded: number(EventHeader.cpuOffset, 4)),
      probe: compiled.probeNames[probeID], skb: number(EventHeader.skbOffset, 8),
      linkType: geometry.linkType(firstByteOfNetworkHeader: geometry.networkHeaderByte(in: packet)),
      bytes: packet, originalLength: Int(truncatingIfNeeded: geometry.dataOffset &- geometry.start) + Int(field(layout.length)),
      comment: layout.comment.map { ($0.label, decoder.decode($0, bytes)) })
  }
}

/// What a capture record says about where the packet's bytes are, as offsets from
/// `skb->head`.
public struct PacketGeometryValues: Hashable, Sendable {
  /// Where the capture starts: the MAC header, the network header or `data`.
  public var start: UInt64
  public var dataOffset: UInt64
  /// 0xffff when unset.
  public var macHeader: UInt64
  /// 0 when unset.
  public var networkHeader: UInt64
  /// `dev->type`, an ARPHRD_* number; 0 without a device.
  public var deviceType: UInt64

  public init(start: UInt64, dataOffset: UInt64, macHeader: UInt64, networkHeader: UInt64, deviceType: UInt64) {
    self.start = start
    self.dataOffset = dataOffset
    self.macHeader = macHeader
    self.networkHeader = networkHeader
    self.deviceType = deviceType
  }

  /// ARPHRD_ETHER and ARPHRD_LOOPBACK (whose header is an Ethernet header of zeros).
  static let ethernetDevices: Set<UInt64> = [1, 772]

  var networkHeaderSet: Bool { networkHeader != 0 && networkHeader >= start }

  /// The first byte of the network header in the captured bytes, if captured.
  public func networkHeaderByte(in bytes: [UInt8]) -> UInt8? {
    guard networkHeaderSet else { return nil }
    let position = Int(networkHeader - start)
    return position < bytes.count ? bytes[position] : nil
  }

  /// What the captured bytes start with. From the MAC header: Ethernet on an Ethernet-like
  /// device, whatever the network header says (a packet socket's frame has both headers at
  /// the same offset); on a device without a link layer (WireGuard, tun, IP tunnels) the MAC
  /// header is the network header: raw IP; without a device, Ethernet when the link-layer
  /// header is at least as long as one. From the network header: raw IP when its first byte
  /// says IPv4 or IPv6. From data 14 bytes before the network header on an Ethernet-like
  /// device: Ethernet. Anything else: user 0.
  public func linkType(firstByteOfNetworkHeader byte: UInt8?) -> LinkType {
    let isIP = byte.map { $0 >> 4 == 4 || $0 >> 4 == 6 } ?? false
    if start == macHeader, macHeader != 0xffff {
      if Self.ethernetDevices.contains(deviceType) { return .ethernet }
      if networkHeaderSet, networkHeader == macHeader { return isIP ? .raw : .user0 }
      if deviceType == 0, networkHeaderSet, networkHeader - macHeader >= 14 { return .ethernet }
      return .user0
    }
    if networkHeaderSet, start == networkHeader { return isIP ? .raw : .user0 }
    // From data, an Ethernet header's length before the network header on an Ethernet-like
    // device, the MAC header not set yet: the header the device pushed (dev_hard_header)
    // before __dev_queue_xmit sets the MAC header where it starts.
    if networkHeaderSet, networkHeader - start == 14, Self.ethernetDevices.contains(deviceType) { return .ethernet }
    return .user0
  }
}
