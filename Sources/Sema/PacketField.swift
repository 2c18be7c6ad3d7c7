import BTF
import SwtraceSyntax

/// Header fields read from the packet itself: `ip.saddr`, `tcp.dport`, and the shortcuts
/// `saddr daddr sport dport proto`. They are read at `skb->head + skb->network_header`, the
/// transport header found from the IP header (IPv4 IHL, or right after a fixed IPv6 header),
/// and converted to host byte order. A field of a header the packet does not have reads as 0
/// (the documented value), so filters such as `dport == 53` simply do not match.
enum PacketHeader: String, CaseIterable {
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

  /// IP protocol number of a transport header.
  var protocolNumber: UInt64? {
    switch self {
    case .tcp: 6
    case .udp: 17
    case .icmp: 1
    default: nil
    }
  }
}

let tcpFlags = FlagNames(flags: [
  .init(name: "fin", value: 0x01), .init(name: "syn", value: 0x02), .init(name: "rst", value: 0x04),
  .init(name: "psh", value: 0x08), .init(name: "ack", value: 0x10), .init(name: "urg", value: 0x20),
  .init(name: "ece", value: 0x40), .init(name: "cwr", value: 0x80),
])

extension ClauseContext {
  /// Shortcut names for the most used header fields.
  static let packetShortcuts: [String: [(PacketHeader, String)]] = [
    "saddr": [(.ip, "saddr")], "daddr": [(.ip, "daddr")], "proto": [(.ip, "proto")],
    "sport": [(.tcp, "sport"), (.udp, "sport")], "dport": [(.tcp, "dport"), (.udp, "dport")],
  ]

  mutating func packetShortcut(_ name: String, range: SourceRange) -> TypedExpr? {
    guard let choices = Self.packetShortcuts[name] else { return nil }
    var result: TypedExpr?
    for (header, field) in choices.reversed() {
      guard let value = packetField(header, field, range: range) else { return nil }
      if let otherwise = result, case .select(let condition, let read, _) = value.kind {
        result = TypedExpr(.select(condition: condition, value: read, otherwise: otherwise), type: value.type, range: range)
      } else {
        result = value
      }
    }
    return result
  }

  /// A header field, or a diagnostic naming the fields the header has.
  mutating func packetField(_ header: PacketHeader, _ name: String, range: SourceRange) -> TypedExpr? {
    guard let spec = header.fields[name] else {
      var diagnostic = Diagnostic(
        "unknown-packet-field", "the \(header.rawValue) header has no field '\(name)'", at: range,
        notes: [.init(.help, "its fields are: \(header.fields.keys.sorted().joined(separator: ", "))")])
      if let best = closestName(to: name, among: header.fields.keys) {
        diagnostic.notes.insert(.init(.help, "did you mean '\(header.rawValue).\(best)'?"), at: 0)
      }
      diagnostics.append(diagnostic)
      return nil
    }
    guard let skbStruct = types.structure("sk_buff"),
      let head = types.member("head", of: skbStruct),
      let networkHeader = types.member("network_header", of: skbStruct),
      let protocolMember = types.member("protocol", of: skbStruct)
    else {
      diagnostics.append(
        Diagnostic("derived-field-unavailable", "packet headers cannot be located on \(types.origin)", at: range))
      return nil
    }
    let skb = skbValue(range)
    func load(_ base: TypedExpr, _ offset: Int, _ size: Int) -> TypedExpr {
      TypedExpr(.load(base: base, offset: offset, size: size, bitfield: nil), type: .integer(bytes: size, signed: false), range: range)
    }
    func constant(_ value: UInt64) -> TypedExpr { TypedExpr(.integer(value), type: .u64, range: range) }
    func equal(_ a: TypedExpr, _ b: UInt64) -> TypedExpr {
      TypedExpr(.binary(.equal, a, constant(b)), type: .bool, range: range)
    }
    func and(_ a: TypedExpr, _ b: TypedExpr) -> TypedExpr {
      TypedExpr(.binary(.and, a, b), type: .bool, range: range)
    }
    func add(_ a: TypedExpr, _ b: TypedExpr) -> TypedExpr {
      TypedExpr(.binary(.add, a, b), type: .u64, range: range)
    }
    // skb->protocol is the EtherType in network order, read as a little-endian u16.
    let ethertype = load(skb, protocolMember.byteOffset, 2)
    let isIPv4 = equal(ethertype, 0x0008)
    let isIPv6 = equal(ethertype, 0xdd86)
    let networkStart = add(load(skb, head.byteOffset, 8), load(skb, networkHeader.byteOffset, 2))

    func read(at base: TypedExpr) -> TypedExpr {
      if spec.size == 16 {
        return TypedExpr(.load(base: base, offset: spec.offset, size: 16, bitfield: nil), type: spec.type, range: range)
      }
      var value = load(base, spec.offset, spec.size)
      if spec.networkOrder {
        value = TypedExpr(.networkToHost(value, bits: spec.size * 8), type: .integer(bytes: spec.size, signed: false), range: range)
      }
      value.type = spec.type
      return value
    }
    let zero = TypedExpr(.integer(0), type: spec.type, range: range)
    switch header {
    case .ip:
      return TypedExpr(.select(condition: isIPv4, value: read(at: networkStart), otherwise: zero), type: spec.type, range: range)
    case .ip6:
      return TypedExpr(.select(condition: isIPv6, value: read(at: networkStart), otherwise: zero), type: spec.type, range: range)
    case .tcp, .udp, .icmp:
      let number = header.protocolNumber!
      // IPv4: the transport header follows the options, IHL 32-bit words from the start.
      let ihlWords = TypedExpr(.binary(.bitAnd, load(networkStart, 0, 1), constant(0x0f)), type: .u64, range: range)
      let ipv4Transport = add(networkStart, TypedExpr(.binary(.multiply, ihlWords, constant(4)), type: .u64, range: range))
      let overIPv4 = and(isIPv4, equal(load(networkStart, 9, 1), number))
      // IPv6 without extension headers.
      let ipv6Number = header == .icmp ? 58 : number
      let overIPv6 = and(isIPv6, equal(load(networkStart, 6, 1), ipv6Number))
      let ipv6Transport = add(networkStart, constant(40))
      let viaIPv6 = TypedExpr(.select(condition: overIPv6, value: read(at: ipv6Transport), otherwise: zero), type: spec.type, range: range)
      return TypedExpr(.select(condition: overIPv4, value: read(at: ipv4Transport), otherwise: viaIPv6), type: spec.type, range: range)
    }
  }
}
