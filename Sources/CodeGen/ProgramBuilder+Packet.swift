import BPF
import Sema
import SwtraceSyntax

/// The header walk behind `TypedExpr.Kind.packet`: where the network and transport headers
/// are, which IP version and upper-layer protocol the packet has, and where its datagram's
/// bytes end (the rules are in Sema's `PacketField.swift`).
///
/// It runs before the first statement that needs one of these facts (see
/// `ProgramBuilder.action`), and writes all of them to a fixed area of the clause's scratch
/// map; the code emitter's record of what is available on every path
/// tells later uses whether they can read the area or must run the walk again. Every
/// packet byte is read with `bpf_probe_read_kernel` at an address checked against the
/// datagram's end first, and the IPv6 extension-header chain is unrolled to
/// `PacketFact.maximumExtensionHeaders` steps, so the kernel verifier sees no loop.
extension ProgramBuilder {
  /// Stack offsets of the facts within the area, 8 bytes each.
  static func factOffset(_ value: PacketFact.Value) -> Int {
    switch value {
    case .network: 0
    case .end: 8
    case .version: 16
    case .upper: 24
    case .transport: 32
    case .link: 40
    }
  }
  static let factsSize = 48

  /// The area's key in the emitter's record of what is available: no kernel read has a
  /// negative size.
  func factsKey(layer: Int) -> KernelRead {
    KernelRead(
      base: TypedExpr(.packet(PacketFact(.network, layer: layer)), type: .u64, range: SourceRange(0, 0)), offset: 0,
      size: -1)!
  }

  /// The layers whose header facts `action` reads, in its branches too, each with the
  /// place of a read.
  static func packetLayers(in action: Action) -> [Int: SourceRange] {
    var found: [Int: SourceRange] = [:]
    func visit(_ expression: TypedExpr) {
      if case .packet(let fact) = expression.kind, found[fact.layer] == nil { found[fact.layer] = expression.range }
      expression.operands.forEach(visit)
    }
    action.expressions.forEach(visit)
    for nested in action.nestedActions {
      found.merge(packetLayers(in: nested)) { first, _ in first }
    }
    return found
  }

  /// A temporary holding one fact, the walk run first where needed.
  mutating func packetFact(_ fact: PacketFact, range: SourceRange) throws(CodeGenError) -> Temp {
    let area = try packetFacts(layer: fact.layer, range: range)
    let (temp, register) = temps.allocate(&frame, &asm)
    asm.emit(.load(.double, register, at: area + Self.factOffset(fact.value)))
    return temp
  }

  /// The stack area holding the facts of `layer`, valid on every path to here.
  mutating func packetFacts(layer: Int, range: SourceRange) throws(CodeGenError) -> Slot {
    let key = factsKey(layer: layer)
    if let area = asm.slot(of: key) { return area }
    // The inner walk starts from the outer packet's facts: they are found first.
    let outer = layer > 0 ? try packetFacts(layer: layer - 1, range: range) : nil
    let area: Slot
    if let existing = packetFactAreas[layer] {
      // Another path ran the walk into this area: it computes the same facts again.
      area = existing
    } else {
      // Kept for the whole program: later statements and other paths find the facts here.
      // In scratch, like the walk's own state below: the verifier does not follow values in a
      // map, so the offsets and lengths each path computes do not keep its states apart (on
      // the stack, `print(ip.ttl)` cost the kernel 2,136 instructions and the pre-check's
      // model, which counts every compared value as exact, 706,348; in scratch 721 and 750).
      area = frame.allocate(Self.factsSize, inScratch: true, permanent: true)
      packetFactAreas[layer] = area
    }
    try emitHeaderWalk(into: area, outer: outer, range: range)
    asm.remember(key, at: area)
    return area
  }

  /// Stores one 8-byte skb field value (read as `size` bytes) at `slot`.
  mutating func storeSkbField(offset: Int, size: Int, at slot: Slot, range: SourceRange) throws(CodeGenError) {
    let skb = TypedExpr(.skb, type: .u64, range: range)
    let temp = try load(base: skb, offset: offset, size: size, range: range)
    let register = temps.use(temp, &frame, &asm)
    asm.emit(.store(.double, at: slot, register))
    temps.free(temp, &frame)
  }

  /// `bpf_probe_read_kernel(fp + destination, size, [fp + addressSlot])`; jumps to `failed`
  /// when the read fails.
  mutating func readPacket(into destination: Slot, size: Int32, addressAt addressSlot: Slot, failed: Label) {
    pointer(to: destination, in: .r1)
    asm.emit(.mov(.r2, size))
    asm.emit(.load(.double, .r3, at: addressSlot))
    asm.emit(.call(helper: HelperFunction.probeReadKernel.rawValue))
    asm.jump(if: .ne, .r0, .immediate(0), to: failed)
  }

  /// `register = [fp + slot] + add`, then jumps to `target` when it is past the datagram's end.
  mutating func jumpIfPastEnd(_ slot: Slot, plus add: Int32, area: Slot, to target: Label) {
    asm.emit(.load(.double, .r1, at: slot))
    asm.emit(.add(.r1, add))
    asm.emit(.load(.double, .r2, at: area + Self.factOffset(.end)))
    asm.jump(if: .gt, .r1, .register(.r2), to: target)
  }

  /// Lowers the end to `[fp + area.network] + add + register` when that is sooner: the IP
  /// header's length, when it is not 0 (BIG TCP, jumbograms), bounds the datagram.
  mutating func trimEnd(lengthIn register: Register, plus add: Int32, area: Slot) {
    let keep = asm.newLabel()
    asm.jump(if: .eq, register, .immediate(0), to: keep)
    asm.emit(.load(.double, .r4, at: area + Self.factOffset(.network)))
    asm.emit(.alu64(.add, .r4, .register(register)))
    if add != 0 { asm.emit(.add(.r4, add)) }
    asm.emit(.load(.double, .r5, at: area + Self.factOffset(.end)))
    asm.jump(if: .ge, .r4, .register(.r5), to: keep)
    asm.emit(.store(.double, at: area + Self.factOffset(.end), .r4))
    asm.bind(keep)
  }

  /// The walk of the packet's own headers into `area`, or with `outer` (the area of the
  /// packet around it), of the packet inside its VXLAN or Geneve tunnel.
  mutating func emitHeaderWalk(into area: Slot, outer: Slot?, range: SourceRange) throws(CodeGenError) {
    guard let members = SkbHeaderMembers(types) else {
      throw CodeGenError(message: "packet headers cannot be located on this kernel", range: range)
    }
    temps.spillAll(&frame, &asm)
    let network = area + Self.factOffset(.network)
    let version = area + Self.factOffset(.version)
    let upper = area + Self.factOffset(.upper)
    let transport = area + Self.factOffset(.transport)
    let link = area + Self.factOffset(.link)
    if packetScratch == nil { packetScratch = frame.allocate(16, inScratch: true, permanent: true) }
    if packetWalkState == nil { packetWalkState = frame.allocate(24, inScratch: true, permanent: true) }
    let scratch = packetScratch!
    let walk = packetWalkState!
    let (nextHeader, offset, firstFragment) = (walk, walk + 8, walk + 16)
    let done = asm.newLabel()
    asm.emit(.storeImmediate(.double, at: version, 0))
    asm.emit(.storeImmediate(.double, at: upper, Int32(PacketFact.unknownProtocol)))
    asm.emit(.storeImmediate(.double, at: transport, 0))
    asm.emit(.storeImmediate(.double, at: link, 0))
    asm.emit(.storeImmediate(.double, at: network, 0))
    if let outer {
      try emitTunnelStart(area: area, outer: outer, scratch: scratch, address: offset, done: done)
    } else {
      try emitPacketStart(area: area, members: members, scratch: scratch, range: range)
    }
    try emitIPWalk(area: area, scratch: scratch, walk: (nextHeader, offset, firstFragment), done: done)
  }

  /// The packet's own network header and end, and its EtherType (in network order, read
  /// little-endian) in `scratch`.
  mutating func emitPacketStart(area: Slot, members: SkbHeaderMembers, scratch: Slot, range: SourceRange)
    throws(CodeGenError)
  {
    let network = area + Self.factOffset(.network)
    let end = area + Self.factOffset(.end)
    let transport = area + Self.factOffset(.transport)

    // network = head + network_header, end = head + tail.
    try storeSkbField(offset: members.head, size: 8, at: network, range: range)
    if members.tailSize == 4 {
      try storeSkbField(offset: members.tail, size: 4, at: end, range: range)
      asm.emit(.load(.double, .r1, at: network))
      asm.emit(.load(.double, .r2, at: end))
      asm.emit(.alu64(.add, .r2, .register(.r1)))
      asm.emit(.store(.double, at: end, .r2))
    } else {
      try storeSkbField(offset: members.tail, size: 8, at: end, range: range)
    }
    try storeSkbField(offset: members.networkHeader, size: 2, at: transport, range: range)
    asm.emit(.load(.double, .r1, at: network))
    asm.emit(.load(.double, .r2, at: transport))
    asm.emit(.alu64(.add, .r1, .register(.r2)))
    asm.emit(.store(.double, at: network, .r1))
    try storeSkbField(offset: members.protocol, size: 2, at: scratch, range: range)
    temps.spillAll(&frame, &asm)
    asm.emit(.storeImmediate(.double, at: transport, 0))
  }

  /// The inner packet of a VXLAN (UDP port 4789, an 8-byte header) or Geneve (UDP port
  /// 6081, 8 bytes and options, carrying Ethernet: protocol 0x6558) tunnel: its Ethernet
  /// header (`link`) whole within the outer datagram, then its network header and EtherType,
  /// as `emitPacketStart` leaves them. Jumps to `done` when there is no such packet.
  mutating func emitTunnelStart(area: Slot, outer: Slot, scratch: Slot, address: Slot, done: Label)
    throws(CodeGenError)
  {
    let end = area + Self.factOffset(.end)
    asm.emit(.load(.double, .r1, at: outer + Self.factOffset(.end)))
    asm.emit(.store(.double, at: end, .r1))
    asm.emit(.load(.double, .r1, at: outer + Self.factOffset(.upper)))
    asm.jump(if: .ne, .r1, .immediate(17), to: done)
    asm.emit(.load(.double, .r1, at: outer + Self.factOffset(.transport)))
    asm.jump(if: .eq, .r1, .immediate(0), to: done)
    asm.emit(.store(.double, at: address, .r1))
    // The UDP header and the tunnel's 8 bytes.
    jumpIfPastEnd(address, plus: 16, area: area, to: done)
    readPacket(into: scratch, size: 8, addressAt: address, failed: done)
    asm.emit(.load(.half, .r1, at: scratch + 2))
    asm.emit(.endian(.big, .r1, bits: 16))
    let ethernet = asm.newLabel()
    let vxlan = asm.newLabel()
    asm.jump(if: .eq, .r1, .immediate(Int32(PacketFact.vxlanPort)), to: vxlan)
    asm.jump(if: .ne, .r1, .immediate(Int32(PacketFact.genevePort)), to: done)
    asm.emit(.load(.double, .r1, at: address))
    asm.emit(.add(.r1, 8))
    asm.emit(.store(.double, at: address, .r1))
    readPacket(into: scratch, size: 8, addressAt: address, failed: done)
    asm.emit(.load(.half, .r2, at: scratch + 2))
    asm.emit(.endian(.big, .r2, bits: 16))
    asm.jump(if: .ne, .r2, .immediate(0x6558), to: done)
    // Options: 4-byte words, the low 6 bits of the first byte.
    asm.emit(.load(.byte, .r2, at: scratch))
    asm.emit(.alu64(.and, .r2, .immediate(0x3f)))
    asm.emit(.alu64(.lsh, .r2, .immediate(2)))
    asm.emit(.load(.double, .r1, at: address))
    asm.emit(.add(.r1, 8))
    asm.emit(.alu64(.add, .r1, .register(.r2)))
    asm.emit(.store(.double, at: address, .r1))
    asm.jump(to: ethernet)
    asm.bind(vxlan)
    asm.emit(.load(.double, .r1, at: address))
    asm.emit(.add(.r1, 16))
    asm.emit(.store(.double, at: address, .r1))
    asm.bind(ethernet)
    jumpIfPastEnd(address, plus: 14, area: area, to: done)
    asm.emit(.load(.double, .r1, at: address))
    asm.emit(.store(.double, at: area + Self.factOffset(.link), .r1))
    asm.emit(.add(.r1, 14))
    asm.emit(.store(.double, at: area + Self.factOffset(.network), .r1))
    asm.emit(.load(.double, .r1, at: address))
    asm.emit(.add(.r1, 12))
    asm.emit(.store(.double, at: address, .r1))
    asm.emit(.storeImmediate(.double, at: scratch, 0))
    readPacket(into: scratch, size: 2, addressAt: address, failed: done)
  }

  /// From the network header and EtherType: the IP version, the datagram's end, the upper
  /// protocol and the transport header.
  mutating func emitIPWalk(area: Slot, scratch: Slot, walk: (Slot, Slot, Slot), done: Label) throws(CodeGenError) {
    let network = area + Self.factOffset(.network)
    let version = area + Self.factOffset(.version)
    let upper = area + Self.factOffset(.upper)
    let transport = area + Self.factOffset(.transport)
    let (nextHeader, offset, firstFragment) = walk
    let ipv4 = asm.newLabel()
    let ipv6 = asm.newLabel()
    // skb->protocol in network order, read little-endian.
    asm.emit(.load(.double, .r1, at: scratch))
    asm.jump(if: .eq, .r1, .immediate(0x0008), to: ipv4)
    asm.jump(if: .eq, .r1, .immediate(0xdd86), to: ipv6)
    asm.jump(to: done)

    // IPv4: version 4, IHL >= 5, the 20 bytes within the data and the header's own length.
    asm.bind(ipv4)
    jumpIfPastEnd(network, plus: 20, area: area, to: done)
    readPacket(into: scratch, size: 16, addressAt: network, failed: done)
    asm.emit(.load(.byte, .r1, at: scratch))
    asm.emit(.mov(.r2, .r1))
    asm.emit(.alu64(.rsh, .r2, .immediate(4)))
    asm.jump(if: .ne, .r2, .immediate(4), to: done)
    asm.emit(.alu64(.and, .r1, .immediate(0x0f)))
    asm.jump(if: .lt, .r1, .immediate(5), to: done)
    asm.emit(.load(.half, .r3, at: scratch + 2))
    asm.emit(.endian(.big, .r3, bits: 16))
    trimEnd(lengthIn: .r3, plus: 0, area: area)
    jumpIfPastEnd(network, plus: 20, area: area, to: done)
    asm.emit(.storeImmediate(.double, at: version, 4))
    asm.emit(.load(.byte, .r1, at: scratch + 9))
    asm.emit(.store(.double, at: upper, .r1))
    // Only a first fragment (offset 0) carries the transport header.
    asm.emit(.load(.half, .r3, at: scratch + 6))
    asm.emit(.endian(.big, .r3, bits: 16))
    asm.emit(.alu64(.and, .r3, .immediate(0x1fff)))
    asm.jump(if: .ne, .r3, .immediate(0), to: done)
    asm.emit(.load(.byte, .r1, at: scratch))
    asm.emit(.alu64(.and, .r1, .immediate(0x0f)))
    asm.emit(.alu64(.lsh, .r1, .immediate(2)))
    asm.emit(.load(.double, .r2, at: network))
    asm.emit(.alu64(.add, .r1, .register(.r2)))
    asm.emit(.store(.double, at: transport, .r1))
    asm.jump(to: done)

    // IPv6: version 6, the 40 bytes within the data, then the extension headers.
    asm.bind(ipv6)
    jumpIfPastEnd(network, plus: 40, area: area, to: done)
    readPacket(into: scratch, size: 8, addressAt: network, failed: done)
    asm.emit(.load(.byte, .r1, at: scratch))
    asm.emit(.alu64(.rsh, .r1, .immediate(4)))
    asm.jump(if: .ne, .r1, .immediate(6), to: done)
    asm.emit(.load(.half, .r3, at: scratch + 4))
    asm.emit(.endian(.big, .r3, bits: 16))
    trimEnd(lengthIn: .r3, plus: 40, area: area)
    asm.emit(.storeImmediate(.double, at: version, 6))
    asm.emit(.load(.byte, .r1, at: scratch + 6))
    asm.emit(.store(.double, at: nextHeader, .r1))
    asm.emit(.load(.double, .r1, at: network))
    asm.emit(.add(.r1, 40))
    asm.emit(.store(.double, at: offset, .r1))
    asm.emit(.storeImmediate(.double, at: firstFragment, 1))
    let found = asm.newLabel()
    let extensionHeaders: [Int32] = [0, 43, 44, 51, 60]
    for _ in 0..<PacketFact.maximumExtensionHeaders {
      let isExtension = asm.newLabel()
      asm.emit(.load(.double, .r1, at: nextHeader))
      for number in extensionHeaders { asm.jump(if: .eq, .r1, .immediate(number), to: isExtension) }
      asm.jump(to: found)
      asm.bind(isExtension)
      // Every extension header is at least 8 bytes; a chain cut short has no transport header.
      jumpIfPastEnd(offset, plus: 8, area: area, to: done)
      readPacket(into: scratch, size: 8, addressAt: offset, failed: done)
      let advance = asm.newLabel()
      let notFragment = asm.newLabel()
      let notAH = asm.newLabel()
      asm.emit(.load(.double, .r1, at: nextHeader))
      asm.emit(.load(.byte, .r2, at: scratch + 1))
      asm.jump(if: .ne, .r1, .immediate(44), to: notFragment)
      // Fragment header: 8 bytes; a non-zero fragment offset is a later fragment.
      asm.emit(.mov(.r2, 8))
      asm.emit(.load(.half, .r3, at: scratch + 2))
      asm.emit(.endian(.big, .r3, bits: 16))
      asm.emit(.alu64(.and, .r3, .immediate(0xfff8)))
      asm.jump(if: .eq, .r3, .immediate(0), to: advance)
      asm.emit(.storeImmediate(.double, at: firstFragment, 0))
      asm.jump(to: advance)
      asm.bind(notFragment)
      asm.jump(if: .ne, .r1, .immediate(51), to: notAH)
      // AH counts 4-byte words, less 2.
      asm.emit(.add(.r2, 2))
      asm.emit(.alu64(.lsh, .r2, .immediate(2)))
      asm.jump(to: advance)
      asm.bind(notAH)
      // The others count 8-byte units, less 1.
      asm.emit(.add(.r2, 1))
      asm.emit(.alu64(.lsh, .r2, .immediate(3)))
      asm.bind(advance)
      asm.emit(.load(.double, .r1, at: offset))
      asm.emit(.alu64(.add, .r1, .register(.r2)))
      asm.emit(.store(.double, at: offset, .r1))
      asm.emit(.load(.byte, .r1, at: scratch))
      asm.emit(.store(.double, at: nextHeader, .r1))
    }
    // Still an extension header after the last step: the chain is too long to follow.
    asm.emit(.load(.double, .r1, at: nextHeader))
    for number in extensionHeaders { asm.jump(if: .eq, .r1, .immediate(number), to: done) }
    asm.bind(found)
    asm.emit(.load(.double, .r1, at: nextHeader))
    asm.emit(.store(.double, at: upper, .r1))
    asm.emit(.load(.double, .r1, at: firstFragment))
    asm.jump(if: .eq, .r1, .immediate(0), to: done)
    asm.emit(.load(.double, .r1, at: offset))
    asm.emit(.store(.double, at: transport, .r1))
    asm.bind(done)
  }
}
