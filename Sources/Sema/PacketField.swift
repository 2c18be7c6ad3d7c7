public import BTF
import SwtraceSyntax

/// Header fields read from the packet itself: `ip.saddr`, `tcp.dport`, and the shortcuts
/// `saddr daddr sport dport proto`, in host byte order.
///
/// Where each header is comes from one walk over the packet's headers per program run (see
/// `PacketFact`): the network header at `skb->head + skb->network_header`, for the IP
/// version `skb->protocol` names; the datagram's end, bounded by the linear data
/// (`skb->tail`) and by the IP header's own length; IPv4's transport header after its
/// options, in a first fragment only; IPv6's after at most
/// `PacketFact.maximumExtensionHeaders` extension headers (hop-by-hop, routing, fragment,
/// destination options, AH), in a first fragment only. A header is present when all of its
/// fixed part lies before the datagram's end; a field of a header that is not present is
/// absent (`TypedExpr.Kind.optional`), never a number read from elsewhere.
///
/// Inside a VXLAN or Geneve tunnel the same rules find the inner packet's headers
/// (`inner.eth.src`, `inner.ip.saddr`, `inner.tcp.dport`: layer 1), after the outer UDP
/// header, the tunnel's header and the inner Ethernet header, within the outer datagram.
enum PacketHeader: String, CaseIterable {
  /// Only inside a tunnel: `inner.eth`.
  case eth
  case ip, ip6, tcp, udp, icmp
}

struct PacketFieldSpec {
  var offset: Int
  var size: Int
  var type: ValueType
  var networkOrder: Bool
}

extension PacketHeader {
  /// Field name -> where it is in the header.
  var fields: [String: PacketFieldSpec] {
    switch self {
    case .eth:
      [
        "dst": .init(offset: 0, size: 6, type: .macAddress, networkOrder: false),
        "src": .init(offset: 6, size: 6, type: .macAddress, networkOrder: false),
        "type": .init(offset: 12, size: 2, type: .enumeration(etherTypeNames), networkOrder: true),
      ]
    case .ip:
      [
        "tos": .init(offset: 1, size: 1, type: .integer(bytes: 1, signed: false), networkOrder: false),
        "len": .init(offset: 2, size: 2, type: .integer(bytes: 2, signed: false), networkOrder: true),
        "id": .init(offset: 4, size: 2, type: .integer(bytes: 2, signed: false), networkOrder: true),
        "ttl": .init(offset: 8, size: 1, type: .integer(bytes: 1, signed: false), networkOrder: false),
        "proto": .init(offset: 9, size: 1, type: .integer(bytes: 1, signed: false), networkOrder: false),
        "saddr": .init(offset: 12, size: 4, type: .ipv4, networkOrder: true),
        "daddr": .init(offset: 16, size: 4, type: .ipv4, networkOrder: true),
      ]
    case .ip6:
      [
        "len": .init(offset: 4, size: 2, type: .integer(bytes: 2, signed: false), networkOrder: true),
        "nexthdr": .init(offset: 6, size: 1, type: .integer(bytes: 1, signed: false), networkOrder: false),
        "hoplimit": .init(offset: 7, size: 1, type: .integer(bytes: 1, signed: false), networkOrder: false),
        "saddr": .init(offset: 8, size: 16, type: .ipv6, networkOrder: false),
        "daddr": .init(offset: 24, size: 16, type: .ipv6, networkOrder: false),
      ]
    case .tcp:
      [
        "sport": .init(offset: 0, size: 2, type: .integer(bytes: 2, signed: false), networkOrder: true),
        "dport": .init(offset: 2, size: 2, type: .integer(bytes: 2, signed: false), networkOrder: true),
        "seq": .init(offset: 4, size: 4, type: .integer(bytes: 4, signed: false), networkOrder: true),
        "ack": .init(offset: 8, size: 4, type: .integer(bytes: 4, signed: false), networkOrder: true),
        "flags": .init(offset: 13, size: 1, type: .flags(tcpFlags), networkOrder: false),
        "window": .init(offset: 14, size: 2, type: .integer(bytes: 2, signed: false), networkOrder: true),
      ]
    case .udp:
      [
        "sport": .init(offset: 0, size: 2, type: .integer(bytes: 2, signed: false), networkOrder: true),
        "dport": .init(offset: 2, size: 2, type: .integer(bytes: 2, signed: false), networkOrder: true),
        "len": .init(offset: 4, size: 2, type: .integer(bytes: 2, signed: false), networkOrder: true),
      ]
    case .icmp:
      [
        "type": .init(offset: 0, size: 1, type: .integer(bytes: 1, signed: false), networkOrder: false),
        "code": .init(offset: 1, size: 1, type: .integer(bytes: 1, signed: false), networkOrder: false),
        "id": .init(offset: 4, size: 2, type: .integer(bytes: 2, signed: false), networkOrder: true),
        "seq": .init(offset: 6, size: 2, type: .integer(bytes: 2, signed: false), networkOrder: true),
      ]
    }
  }

  /// Bytes of the header's fixed part: it is present only when all of them are in the packet.
  var fixedSize: Int {
    switch self {
    case .eth: 14
    case .ip: 20
    case .ip6: 40
    case .tcp: 20
    case .udp, .icmp: 8
    }
  }
}

let tcpFlags = FlagNames(flags: [
  .init(name: "fin", value: 0x01), .init(name: "syn", value: 0x02), .init(name: "rst", value: 0x04),
  .init(name: "psh", value: 0x08), .init(name: "ack", value: 0x10), .init(name: "urg", value: 0x20),
  .init(name: "ece", value: 0x40), .init(name: "cwr", value: 0x80),
])

/// EtherType names for `protocol` (Linux's `ETH_P_*` in the words network people use).
let etherTypeNames = EnumNames(
  typeName: "ethertype",
  names: [
    0x0800: "ip", 0x0806: "arp", 0x86dd: "ipv6", 0x8100: "vlan", 0x88a8: "qinq", 0x8847: "mpls",
    0x8848: "mpls_mc", 0x8035: "rarp", 0x88cc: "lldp",
  ], representation: IntegerRepresentation(bytes: 2, isSigned: false), unnamedInHex: true)

/// The `struct sk_buff` members the header walk reads, found once in BTF for Sema (which
/// refuses packet fields without them) and CodeGen (which reads them).
public struct SkbHeaderMembers: Hashable, Sendable {
  public var head: Int
  public var networkHeader: Int
  /// `skb->tail`: an offset from `head` (u32) on 64-bit kernels.
  public var tail: Int
  public var tailSize: Int
  public var `protocol`: Int

  public init?(_ types: KernelTypes) {
    guard let skb = types.structure("sk_buff"), let head = types.member("head", of: skb),
      let network = types.member("network_header", of: skb), let tail = types.member("tail", of: skb),
      let proto = types.member("protocol", of: skb), let tailSize = types.size(of: tail.type),
      tailSize == 4 || tailSize == 8
    else { return nil }
    self.head = head.byteOffset
    networkHeader = network.byteOffset
    self.tail = tail.byteOffset
    self.tailSize = tailSize
    self.protocol = proto.byteOffset
  }
}

extension ClauseContext {
  /// Shortcut names for the most used header fields, of either IP version.
  static let packetShortcuts: Set<String> = ["saddr", "daddr", "proto", "sport", "dport"]

  func fact(_ value: PacketFact.Value, _ range: SourceRange, layer: Int = 0) -> TypedExpr {
    TypedExpr(.packet(PacketFact(value, layer: layer)), type: .u64, range: range)
  }

  /// The packet facts' building blocks, all at one source range.
  struct PacketExpressions {
    let range: SourceRange
    func constant(_ value: UInt64) -> TypedExpr { TypedExpr(.integer(value), type: .u64, range: range) }
    func equal(_ a: TypedExpr, _ b: UInt64) -> TypedExpr {
      TypedExpr(.binary(.equal, a, constant(b)), type: .bool, range: range)
    }
    func notEqual(_ a: TypedExpr, _ b: UInt64) -> TypedExpr {
      TypedExpr(.binary(.notEqual, a, constant(b)), type: .bool, range: range)
    }
    func and(_ a: TypedExpr, _ b: TypedExpr) -> TypedExpr { TypedExpr(.binary(.and, a, b), type: .bool, range: range) }
    func or(_ a: TypedExpr, _ b: TypedExpr) -> TypedExpr { TypedExpr(.binary(.or, a, b), type: .bool, range: range) }
    func add(_ a: TypedExpr, _ b: UInt64) -> TypedExpr {
      TypedExpr(.binary(.add, a, constant(b)), type: .u64, range: range)
    }
    func lessEqual(_ a: TypedExpr, _ b: TypedExpr) -> TypedExpr {
      TypedExpr(.binary(.lessEqual, a, b), type: .bool, range: range)
    }
  }

  /// When `header` is in the packet (layer 0) or in the packet inside its tunnel (layer 1).
  func headerPresent(_ header: PacketHeader, _ range: SourceRange, layer: Int = 0) -> TypedExpr {
    let e = PacketExpressions(range: range)
    let version = fact(.version, range, layer: layer)
    let upper = fact(.upper, range, layer: layer)
    let transport = fact(.transport, range, layer: layer)
    // The transport header's fixed part lies within the datagram.
    let fits = e.and(
      e.notEqual(transport, 0), e.lessEqual(e.add(transport, UInt64(header.fixedSize)), fact(.end, range, layer: layer)))
    switch header {
    case .eth:
      // The walk found the inner Ethernet header whole within the outer datagram.
      return e.notEqual(fact(.link, range, layer: layer), 0)
    case .ip: return e.equal(version, 4)
    case .ip6: return e.equal(version, 6)
    case .tcp: return e.and(e.equal(upper, 6), fits)
    case .udp: return e.and(e.equal(upper, 17), fits)
    case .icmp:
      let icmp = e.or(e.and(e.equal(version, 4), e.equal(upper, 1)), e.and(e.equal(version, 6), e.equal(upper, 58)))
      return e.and(icmp, fits)
    }
  }

  mutating func packetShortcut(_ name: String, range: SourceRange) -> TypedExpr? {
    guard requirePacketMembers(range) else { return nil }
    let e = PacketExpressions(range: range)
    let version = fact(.version, range)
    switch name {
    case "saddr", "daddr":
      guard let v4 = packetField(.ip, name, range: range), let v6 = packetField(.ip6, name, range: range) else { return nil }
      let address = TypedExpr(.eitherFamily(isIPv4: e.equal(version, 4), v4: v4, v6: v6), type: .ipAddress, range: range)
      return TypedExpr(.optional(present: e.notEqual(version, 0), value: address), type: .ipAddress, range: range)
    case "proto":
      let upper = fact(.upper, range)
      let present = e.and(e.notEqual(version, 0), e.notEqual(upper, PacketFact.unknownProtocol))
      let type = ValueType.integer(bytes: 1, signed: false)
      return TypedExpr(.optional(present: present, value: TypedExpr(upper.kind, type: type, range: range)), type: type, range: range)
    default:
      // sport, dport: TCP's or UDP's.
      guard let tcp = packetField(.tcp, name, range: range), let udp = packetField(.udp, name, range: range),
        let tcpPresent = tcp.presence, let udpPresent = udp.presence
      else { return nil }
      let value = TypedExpr(.select(condition: tcpPresent, value: tcp.unwrapped, otherwise: udp.unwrapped), type: tcp.type, range: range)
      return TypedExpr(.optional(present: e.or(tcpPresent, udpPresent), value: value), type: tcp.type, range: range)
    }
  }

  /// Whether this kernel's `struct sk_buff` lets the headers be found; a diagnostic if not.
  mutating func requirePacketMembers(_ range: SourceRange) -> Bool {
    if SkbHeaderMembers(types) != nil { return true }
    diagnostics.append(
      Diagnostic("derived-field-unavailable", "packet headers cannot be located on \(types.origin)", at: range))
    return false
  }

  /// A header field, absent when the packet does not have the header, or a diagnostic naming
  /// the fields the header has.
  mutating func packetField(_ header: PacketHeader, _ name: String, range: SourceRange, layer: Int = 0) -> TypedExpr? {
    let prefix = layer == 0 ? header.rawValue : "inner." + header.rawValue
    if header == .eth, layer == 0 {
      diagnostics.append(
        Diagnostic(
          "unknown-packet-field", "eth.\(name) is a field of the Ethernet header inside a tunnel", at: range,
          notes: [.init(.help, "write inner.eth.\(name) (VXLAN and Geneve); the packet's own device is ifname")]))
      return nil
    }
    guard let spec = header.fields[name] else {
      var diagnostic = Diagnostic(
        "unknown-packet-field", "the \(prefix) header has no field '\(name)'", at: range,
        notes: [.init(.help, "its fields are: \(header.fields.keys.sorted().joined(separator: ", "))")])
      if let best = closestName(to: name, among: header.fields.keys) {
        diagnostic.notes.insert(.init(.help, "did you mean '\(prefix).\(best)'?"), at: 0)
      }
      diagnostics.append(diagnostic)
      return nil
    }
    guard requirePacketMembers(range) else { return nil }
    let e = PacketExpressions(range: range)
    let baseFact: PacketFact.Value =
      switch header {
      case .eth: .link
      case .ip, .ip6: .network
      case .tcp, .udp, .icmp: .transport
      }
    let base = fact(baseFact, range, layer: layer)
    var value: TypedExpr
    if spec.size == 16 || spec.size == 6 {
      // Addresses are bytes as on the wire.
      value = TypedExpr(.load(base: base, offset: spec.offset, size: spec.size, bitfield: nil), type: spec.type, range: range)
    } else {
      value = TypedExpr(
        .load(base: base, offset: spec.offset, size: spec.size, bitfield: nil),
        type: .integer(bytes: spec.size, signed: false), range: range)
      if spec.networkOrder {
        value = TypedExpr(.networkToHost(value, bits: spec.size * 8), type: value.type, range: range)
      }
      value.type = spec.type
    }
    var present = headerPresent(header, range, layer: layer)
    if header == .icmp, name == "id" || name == "seq" {
      // Identifier and sequence number exist in echo requests and replies only.
      let type = TypedExpr(.load(base: base, offset: 0, size: 1, bitfield: nil), type: .u64, range: range)
      let version = fact(.version, range, layer: layer)
      let echo4 = e.and(e.equal(version, 4), e.or(e.equal(type, 0), e.equal(type, 8)))
      let echo6 = e.and(e.equal(version, 6), e.or(e.equal(type, 128), e.equal(type, 129)))
      present = e.and(present, e.or(echo4, echo6))
    }
    return TypedExpr(.optional(present: present, value: value), type: spec.type, range: range)
  }
}
