/// A pcapng file as swtrace writes it (the format of the IETF draft "PCAP Next Generation
/// (pcapng) Capture File Format", which Wireshark and tshark read): one section header, then
/// an interface description per probe and link type, each before its first packet, and an
/// enhanced packet block per packet with the event's metadata as its comment. Every block is
/// in this machine's byte order (the section header's byte-order magic says which) and padded
/// to 32 bits; timestamps are wall-clock nanoseconds (`if_tsresol` 9).
public struct PcapngWriter: Sendable {
  /// Bytes written since the last `take()`.
  public private(set) var pending: [UInt8] = []
  /// Interface ids by probe and link type, in the order their blocks were written.
  private var interfaces: [InterfaceKey: UInt32] = [:]
  private let snaplen: Int
  /// Wall-clock nanoseconds minus monotonic nanoseconds (`EventFormatter.wallClockOffset`).
  private let wallClockOffset: Int64

  struct InterfaceKey: Hashable {
    var probe: String
    var linkType: LinkType
  }

  enum BlockType: UInt32 {
    case sectionHeader = 0x0A0D_0D0A
    case interfaceDescription = 0x0000_0001
    case enhancedPacket = 0x0000_0006
  }

  enum OptionCode: UInt16 {
    case endOfOptions = 0
    case comment = 1
    /// In a section header: shb_os; in an interface description: if_description.
    case osOrDescription = 3
    /// In a section header: shb_userappl; in an interface description: if_name is 2.
    case application = 4
    case interfaceName = 2
    case timestampResolution = 9
  }

  /// Starts a file: the section header, naming `application` and `system`.
  public init(application: String, system: String, snaplen: Int, wallClockOffset: Int64) {
    self.snaplen = snaplen
    self.wallClockOffset = wallClockOffset
    var body: [UInt8] = []
    body.appendNumber(UInt32(0x1A2B_3C4D))  // byte-order magic
    body.appendNumber(UInt16(1))  // major version
    body.appendNumber(UInt16(0))  // minor version
    body.appendNumber(UInt64.max)  // section length: not given
    body += Self.options([(.osOrDescription, Array(system.utf8)), (.application, Array(application.utf8))])
    appendBlock(.sectionHeader, body)
  }

  /// How many interface blocks the file has so far.
  public var interfaceCount: Int { interfaces.count }

  /// Appends `packet`, after an interface block for its probe and link type if it is the
  /// first of them.
  public mutating func write(_ packet: CapturedPacket) {
    let key = InterfaceKey(probe: packet.probe, linkType: packet.linkType)
    let interface: UInt32
    if let known = interfaces[key] {
      interface = known
    } else {
      interface = UInt32(interfaces.count)
      interfaces[key] = interface
      var body: [UInt8] = []
      body.appendNumber(packet.linkType.rawValue)
      body.appendNumber(UInt16(0))  // reserved
      body.appendNumber(UInt32(snaplen))
      body += Self.options([
        (.interfaceName, Array(packet.probe.utf8)),
        (.osOrDescription, Array("swtrace probe \(packet.probe): \(packet.linkType.description)".utf8)),
        (.timestampResolution, [9]),  // 10^-9 s
      ])
      appendBlock(.interfaceDescription, body)
    }
    let nanoseconds = UInt64(bitPattern: Int64(bitPattern: packet.timestamp) &+ wallClockOffset)
    var body: [UInt8] = []
    body.appendNumber(interface)
    body.appendNumber(UInt32(truncatingIfNeeded: nanoseconds >> 32))
    body.appendNumber(UInt32(truncatingIfNeeded: nanoseconds))
    body.appendNumber(UInt32(packet.bytes.count))
    body.appendNumber(UInt32(clamping: max(packet.originalLength, packet.bytes.count)))
    body += packet.bytes
    body.padTo32Bits()
    body += Self.options([(.comment, Array(packet.commentText.utf8))])
    appendBlock(.enhancedPacket, body)
  }

  /// The bytes written since the last call.
  public mutating func take() -> [UInt8] {
    defer { pending.removeAll(keepingCapacity: true) }
    return pending
  }

  /// Type, total length, body, total length again.
  private mutating func appendBlock(_ type: BlockType, _ body: [UInt8]) {
    let total = UInt32(12 + body.count)
    pending.appendNumber(type.rawValue)
    pending.appendNumber(total)
    pending += body
    pending.appendNumber(total)
  }

  /// Options, each code, length and value padded to 32 bits, then the end of options. An
  /// option longer than a length field holds is cut (a comment can be long with a deep stack).
  static func options(_ list: [(OptionCode, [UInt8])]) -> [UInt8] {
    var out: [UInt8] = []
    for (code, value) in list {
      let kept = Array(value.prefix(Int(UInt16.max) - 3))
      out.appendNumber(code.rawValue)
      out.appendNumber(UInt16(kept.count))
      out += kept
      out.padTo32Bits()
    }
    out.appendNumber(OptionCode.endOfOptions.rawValue)
    out.appendNumber(UInt16(0))
    return out
  }
}

extension [UInt8] {
  /// Appends `value` in this machine's byte order, which the section header announces.
  mutating func appendNumber<T: FixedWidthInteger>(_ value: T) {
    Swift.withUnsafeBytes(of: value) { append(contentsOf: $0) }
  }

  mutating func padTo32Bits() {
    while count % 4 != 0 { append(0) }
  }
}
