import BTF
import SwtraceSyntax

/// Packet facts that are not plain `struct sk_buff` members but are computed from them,
/// the way network people think of a packet rather than how the kernel stores it.
enum DerivedField: String, CaseIterable {
  case gsoType = "gso_type"
  case gsoSize = "gso_size"
  case gsoSegs = "gso_segs"
  case ifname
  case ifindex
  case netns
  /// `skb->protocol` in host order, printed by name (`ip`, `ipv6`, `arp`...); `skb->protocol`
  /// is still the member as the kernel stores it, in network order.
  case `protocol`
}

extension ClauseContext {
  mutating func derivedField(_ field: DerivedField, range: SourceRange) -> Reference? {
    switch field {
    case .gsoType, .gsoSize, .gsoSegs:
      guard let shinfo = sharedInfo(range: range),
        let shinfoStruct = types.structure("skb_shared_info"),
        let member = types.member(field.rawValue, of: shinfoStruct)
      else { return missing(field, range: range) }
      let place = Place(
        base: shinfo, offset: member.byteOffset, type: member.type, bitfield: nil, range: range)
      guard var value = read(place) else { return nil }
      if field == .gsoType {
        let flags = types.enumerators(withPrefix: "SKB_GSO_").map {
          FlagNames.Flag(
            name: $0.name.dropFirst("SKB_GSO_".count).lowercased(), value: UInt64(bitPattern: $0.value) & 0xffff_ffff)
        }
        value = value.retyped(.flags(FlagNames(flags: flags)))
      }
      return .value(value)
    case .ifname, .ifindex, .netns:
      let names =
        switch field {
        case .ifname: ["name"]
        case .ifindex: ["ifindex"]
        default: ["nd_net", "net", "ns", "inum"]
        }
      guard let handOver else { return path(["dev"] + names, field: field, range: range) }
      // After the hand-over, the device the tracepoint recorded.
      guard let device = handOverArgument(handOver.deviceArgument, range: range),
        let recordedPlace = path(names, field: field, range: range, from: device),
        let recorded = value(of: recordedPlace)
      else { return nil }
      if onlyAfterHandOver { return .value(recorded) }
      let place = unguarded { $0.path(["dev"] + names, field: field, range: range) }
      guard let place, let value = unguarded({ $0.value(of: place) }) else { return nil }
      return .value(recordedAfterHandOver(recorded, otherwise: value))
    case .protocol:
      guard let members = SkbHeaderMembers(types) else { return missing(field, range: range) }
      let raw = TypedExpr(
        .load(base: skbValue(range), offset: members.protocol, size: 2, bitfield: nil), type: .integer(bytes: 2, signed: false),
        range: range)
      let value = TypedExpr(.networkToHost(raw, bits: 16), type: .enumeration(etherTypeNames), range: range)
      return guardedPacketRead(value, field.rawValue).map(Reference.value)
    }
  }

  /// `skb_shinfo(skb)`: the `struct skb_shared_info` at `skb->head + skb->end`. On kernels
  /// where `end` is a pointer rather than an offset, it is `skb->end` itself.
  mutating func sharedInfo(range: SourceRange) -> TypedExpr? {
    guard let skbStruct = types.structure("sk_buff"),
      let shinfoStruct = types.structure("skb_shared_info"),
      let end = types.member("end", of: skbStruct),
      let head = types.member("head", of: skbStruct)
    else { return nil }
    let pointerType = ValueType.pointer(pointee: shinfoStruct, description: "struct skb_shared_info *")
    let skb = skbValue(range)
    let endSize = types.size(of: end.type) ?? 4
    let endValue = TypedExpr(
      .load(base: skb, offset: end.byteOffset, size: endSize, bitfield: nil), type: .u64, range: range)
    if case .pointer = types.type(types.resolved(end.type)) {
      var pointer = endValue
      pointer.type = pointerType
      return pointer
    }
    let headValue = TypedExpr(
      .load(base: skb, offset: head.byteOffset, size: 8, bitfield: nil), type: .u64, range: range)
    return TypedExpr(.binary(.add, headValue, endValue), type: pointerType, range: range)
  }

  /// A reference's value: a place is read.
  mutating func value(of reference: Reference) -> TypedExpr? {
    switch reference {
    case .value(let value): value
    case .place(let place): read(place)
    }
  }

  /// Follows member names from the skb (or `start`), reading pointers on the way.
  mutating func path(_ names: [String], field: DerivedField, range: SourceRange, from start: Reference? = nil) -> Reference? {
    var current: Reference = start ?? .value(skbValue(range))
    for name in names {
      // Probe quietly first, so a kernel without the member gets one message about the field.
      guard memberExists(name, in: current) else { return missing(field, range: range) }
      guard let next = member(name, of: current, range: range, nameRange: range) else { return nil }
      current = next
    }
    return current
  }

  func memberExists(_ name: String, in reference: Reference) -> Bool {
    let typeID: BTFTypeID
    switch reference {
    case .value(let value):
      guard case .pointer(let pointee, _) = value.type else { return false }
      typeID = pointee
    case .place(let place):
      let resolved = types.resolved(place.type)
      if case .pointer(let pointee) = types.type(resolved) { typeID = pointee } else { typeID = resolved }
    }
    return types.member(name, of: types.resolved(typeID)) != nil
  }

  mutating func missing(_ field: DerivedField, range: SourceRange) -> Reference? {
    diagnostics.append(
      Diagnostic(
        "derived-field-unavailable",
        "'\(field.rawValue)' cannot be computed on \(types.origin): the kernel structures it is read from are missing",
        at: range))
    return nil
  }
}
