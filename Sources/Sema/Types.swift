public import BTF
public import SwtraceSyntax

/// Names of the bits of a flags value, such as the `SKB_GSO_*` flags of `gso_type`.
public struct FlagNames: Hashable, Sendable {
  public var flags: [Flag]
  public struct Flag: Hashable, Sendable {
    public var name: String
    public var value: UInt64
  }
  public init(flags: [Flag]) { self.flags = flags }

  /// `tcpv4|dodgy`, or `none` when no bit is set; unnamed bits print in hex.
  public func render(_ value: UInt64) -> String {
    if value == 0 { return "none" }
    var remaining = value
    var parts: [String] = []
    for flag in flags where flag.value != 0 && value & flag.value == flag.value {
      parts.append(flag.name)
      remaining &= ~flag.value
    }
    if remaining != 0 { parts.append("0x" + String(remaining, radix: 16)) }
    return parts.joined(separator: "|")
  }
}

/// Enumerator names of an enum type, for printing values by name, and the enum's own width and
/// signedness from BTF: `enum netns_bpf_attach_type` is a signed 4-byte number whose
/// `NETNS_BPF_INVALID` is -1.
public struct EnumNames: Hashable, Sendable {
  public var typeName: String
  /// Enumerator values as BTF gives them: sign-extended for signed enums, zero-extended (as a
  /// bit pattern for 64-bit ones) for unsigned enums.
  public var names: [Int64: String]
  public var representation: IntegerRepresentation
  /// Values without a name print in hex (`0x88b5`): EtherTypes are known that way, not in
  /// decimal.
  public var unnamedInHex: Bool
  public init(
    typeName: String, names: [Int64: String], representation: IntegerRepresentation, unnamedInHex: Bool = false
  ) {
    self.typeName = typeName
    self.names = names
    self.representation = representation
    self.unnamedInHex = unnamedInHex
  }
  public func render(_ value: Int64) -> String {
    if let name = names[value] { return name }
    return unnamedInHex ? "0x" + String(UInt64(bitPattern: value), radix: 16) : String(value)
  }
}

/// How a number is held: its width in bytes and whether it is signed. Sema decides it once per
/// value (from BTF, a cast, or the operator that computed it) and carries it on the value's
/// type; constant folding, the code generator (comparisons, shifts, sign extension of loads,
/// map aggregations) and every decoder of the kernel's bytes read it from there.
public struct IntegerRepresentation: Hashable, Sendable {
  public var bytes: Int
  public var isSigned: Bool
  public init(bytes: Int, isSigned: Bool) {
    self.bytes = bytes
    self.isSigned = isSigned
  }
}

/// The type of a value in a checked spec.
public indirect enum ValueType: Hashable, Sendable, CustomStringConvertible {
  case integer(bytes: Int, signed: Bool)
  case bool
  /// A NUL-terminated string of at most `capacity` bytes including the terminator.
  case string(capacity: Int)
  case ipv4
  case ipv6
  /// An IPv4 or IPv6 address (`saddr`, `daddr`): 16 address bytes (IPv4 in the first 4),
  /// then the family (4 or 6) as a u64.
  case ipAddress
  /// An Ethernet address (`inner.eth.src`), 6 bytes as on the wire.
  case macAddress
  case enumeration(EnumNames)
  case flags(FlagNames)
  /// A kernel pointer; `pointee` is the BTF type pointed to.
  case pointer(pointee: BTFTypeID, description: String)
  /// The attach point that fired, printed by name.
  case probe
  /// A kernel code address, printed as `symbol+0xoffset` (`ksym(location)`).
  case kernelSymbol
  /// The kernel stack where the probe fired (`kstack`): an id into the stack map, printed as
  /// the symbolized frames it stands for.
  case kernelStack
  /// A `CLOCK_MONOTONIC` time in nanoseconds, printed as the wall-clock time it was, with
  /// `format` (`strftime`'s conversions): `strftime("%H:%M:%S", nsecs)`.
  case wallTime(format: String)
  /// Bytes printed as text, each byte outside printable ASCII as `\xNN` (`buf(p, n)`).
  case buffer(capacity: Int)
  /// An array of `count` bytes that is not text (`__u8 saddr[4]`), printed as `[1,2,3,4]`.
  case byteArray(count: Int)
  case void

  public static let u64 = ValueType.integer(bytes: 8, signed: false)
  public static let u32 = ValueType.integer(bytes: 4, signed: false)
  public static let s64 = ValueType.integer(bytes: 8, signed: true)

  public var description: String {
    switch self {
    case .integer(let bytes, let signed): "\(signed ? "s" : "u")\(bytes * 8)"
    case .bool: "bool"
    case .string: "string"
    case .ipv4: "IPv4 address"
    case .ipv6: "IPv6 address"
    case .ipAddress: "IP address"
    case .macAddress: "MAC address"
    case .enumeration(let names): "enum \(names.typeName)"
    case .flags: "flags"
    case .pointer(_, let description): description
    case .probe: "probe"
    case .kernelSymbol: "kernel symbol"
    case .kernelStack: "kernel stack"
    case .wallTime: "time"
    case .buffer(let capacity): "buffer of \(capacity) bytes"
    case .byteArray(let count): "u8[\(count)]"
    case .void: "void"
    }
  }

  /// The value's width and signedness as a number, or nil for values that are not numbers
  /// (strings, IPv6 addresses). Registers hold every number extended to 64 bits by this.
  public var integerRepresentation: IntegerRepresentation? {
    switch self {
    case .integer(let bytes, let signed): IntegerRepresentation(bytes: bytes, isSigned: signed)
    case .enumeration(let names): names.representation
    case .bool: IntegerRepresentation(bytes: 1, isSigned: false)
    case .flags, .pointer, .kernelSymbol, .wallTime: IntegerRepresentation(bytes: 8, isSigned: false)
    case .ipv4, .probe: IntegerRepresentation(bytes: 4, isSigned: false)
    // bpf_get_stackid's result: an id, or a negative error number.
    case .kernelStack: IntegerRepresentation(bytes: 8, isSigned: true)
    case .string, .ipv6, .ipAddress, .macAddress, .buffer, .byteArray, .void: nil
    }
  }

  /// Whether the value is a signed number: ordering comparisons, `>>`, the result type of
  /// arithmetic, sign extension and decoding follow it.
  public var isSigned: Bool { integerRepresentation?.isSigned ?? false }

  /// Whether arithmetic and ordering comparisons apply.
  public var isNumeric: Bool {
    switch self {
    case .integer, .bool, .enumeration, .flags: true
    default: false
    }
  }

  /// Bytes the value takes in an event record or map key.
  public var storageSize: Int {
    switch self {
    case .integer(let bytes, _): bytes
    case .bool: 1
    case .string(let capacity): capacity
    case .ipv4: 4
    case .ipv6: 16
    case .ipAddress: 24
    case .macAddress: 6
    case .enumeration, .flags: 8
    case .pointer: 8
    case .probe: 4
    case .kernelSymbol: 8
    case .kernelStack: 8
    case .wallTime: 8
    case .buffer(let capacity): capacity
    case .byteArray(let count): count
    case .void: 0
    }
  }

  /// Whether the value is more bytes than a register holds: copied, never computed with.
  public var isWide: Bool {
    switch self {
    case .string, .ipv6, .ipAddress, .macAddress, .buffer, .byteArray: true
    default: false
    }
  }
}

/// Values every clause can read.
public enum Builtin: String, Hashable, Sendable, CaseIterable {
  case probe, ts, cpu, pid, tid, comm, kstack
  /// bpftrace's names: `nsecs` is `ts`; `elapsed` the nanoseconds since swtrace started the
  /// trace; `func` the probed function (the attach point's name, like `probe`).
  case nsecs, elapsed, uid, gid, cgroup, ppid
  case function = "func"
  /// The current task, a `struct task_struct *` (typed by the checker from BTF).
  case curtask

  public var type: ValueType {
    switch self {
    case .probe, .function: .probe
    case .ts, .nsecs, .elapsed, .cgroup, .curtask: .u64
    case .cpu, .pid, .tid, .uid, .gid, .ppid: .u32
    case .comm: .string(capacity: 16)
    case .kstack: .kernelStack
    }
  }
}

/// A typed expression: what a spec expression means once names are resolved against BTF.
public struct TypedExpr: Hashable, Sendable {
  public indirect enum Kind: Hashable, Sendable {
    case integer(UInt64)
    case string(String)
    case builtin(Builtin)
    /// The `struct sk_buff *` argument of the attach point that fired.
    case skb
    /// A probe argument by name; each attach point knows its position.
    case argument(String)
    /// The return value in `kretprobe:`/`fexit:` clauses.
    case returnValue
    /// Reads `size` bytes at `base + offset` from kernel memory. `base` is a pointer value.
    case load(base: TypedExpr, offset: Int, size: Int, bitfield: Bitfield?)
    /// Reads a NUL-terminated string of at most `capacity` bytes at `base + offset`.
    case loadString(base: TypedExpr, offset: Int, capacity: Int)
    case unary(UnaryOperator, TypedExpr)
    case binary(BinaryOperator, TypedExpr, TypedExpr)
    /// `condition ? value : otherwise`, for packet fields that exist only for some packets.
    case select(condition: TypedExpr, value: TypedExpr, otherwise: TypedExpr)
    /// Network to host byte order of the low `bits` bits.
    case networkToHost(TypedExpr, bits: Int)
    /// The value stored in a plain value map under `keys`, 0 when absent.
    case mapLookup(map: Int, keys: [TypedExpr])
    /// The clause variable `slot` (an index into `CheckedClause.variables`).
    case variable(slot: Int)
    /// A constant wider than a register, such as an IPv6 address literal (network order).
    case bytes([UInt8])
    /// Whether the IPv6 address `address` lies in `network/prefixLength`.
    case prefixMatch(TypedExpr, network: [UInt8], prefixLength: Int)
    /// An integer cast: truncated to `bytes`, then zero- or sign-extended back to 64 bits.
    case convert(TypedExpr, bytes: Int, signed: Bool)
    /// A fact about the packet's headers, found by walking them once per program run.
    case packet(PacketFact)
    /// A value that exists only when `present` holds, such as `udp.dport` (no UDP header,
    /// no port): printed as `-` (JSON `null`), a key of its own in maps. Comparisons with
    /// it are false when it is absent; where a number is needed regardless, it reads as 0.
    case optional(present: TypedExpr, value: TypedExpr)
    /// `saddr`/`daddr`: the IPv4 address `v4` when `isIPv4` holds, else the IPv6 address `v6`
    /// (both `.optional` packet fields), as one `.ipAddress` value.
    case eitherFamily(isIPv4: TypedExpr, v4: TypedExpr, v6: TypedExpr)
    /// 1 at attach points that fire after the skb was handed on (`HandOver`), else 0;
    /// replaced by its value for each attach point before code generation
    /// (`CheckedClause.specialized(for:)`).
    case afterHandOver
    /// The record a classic tracepoint program gets (`struct trace_event_raw_<class>`): its
    /// address, for the fields `args.NAME` reads.
    case record
    /// A kprobe's argument register `argN`, as a 64-bit number.
    case registerArgument(Int)
    /// Whether map `map` has an entry under `keys`.
    case mapHasKey(map: Int, keys: [TypedExpr])
  }
  /// A bitfield inside the loaded bytes: shift right by `bitOffset`, keep `bitCount` bits.
  public struct Bitfield: Hashable, Sendable {
    public var bitOffset: Int
    public var bitCount: Int
  }

  public var kind: Kind
  public var type: ValueType
  public var range: SourceRange

  public init(_ kind: Kind, type: ValueType, range: SourceRange) {
    self.kind = kind
    self.type = type
    self.range = range
  }

  /// The expressions this one computes its value from, in evaluation order.
  public var operands: [TypedExpr] {
    switch kind {
    case .load(let base, _, _, _), .loadString(let base, _, _): [base]
    case .unary(_, let operand), .networkToHost(let operand, _), .convert(let operand, _, _),
      .prefixMatch(let operand, _, _):
      [operand]
    case .binary(_, let lhs, let rhs): [lhs, rhs]
    case .select(let condition, let value, let otherwise): [condition, value, otherwise]
    case .mapLookup(_, let keys), .mapHasKey(_, let keys): keys
    case .optional(let present, let value): [present, value]
    case .eitherFamily(let isIPv4, let v4, let v6): [isIPv4, v4, v6]
    case .integer, .string, .builtin, .skb, .argument, .returnValue, .variable, .bytes, .packet, .afterHandOver,
      .record, .registerArgument:
      []
    }
  }

  /// This expression with its operands (in `operands` order) replaced.
  public func withOperands(_ new: [TypedExpr]) -> TypedExpr {
    var result = self
    switch kind {
    case .load(_, let offset, let size, let bitfield): result.kind = .load(base: new[0], offset: offset, size: size, bitfield: bitfield)
    case .loadString(_, let offset, let capacity): result.kind = .loadString(base: new[0], offset: offset, capacity: capacity)
    case .unary(let op, _): result.kind = .unary(op, new[0])
    case .networkToHost(_, let bits): result.kind = .networkToHost(new[0], bits: bits)
    case .convert(_, let bytes, let signed): result.kind = .convert(new[0], bytes: bytes, signed: signed)
    case .prefixMatch(_, let network, let length): result.kind = .prefixMatch(new[0], network: network, prefixLength: length)
    case .binary(let op, _, _): result.kind = .binary(op, new[0], new[1])
    case .select: result.kind = .select(condition: new[0], value: new[1], otherwise: new[2])
    case .mapLookup(let map, _): result.kind = .mapLookup(map: map, keys: new)
    case .mapHasKey(let map, _): result.kind = .mapHasKey(map: map, keys: new)
    case .optional: result.kind = .optional(present: new[0], value: new[1])
    case .eitherFamily: result.kind = .eitherFamily(isIPv4: new[0], v4: new[1], v6: new[2])
    case .integer, .string, .builtin, .skb, .argument, .returnValue, .variable, .bytes, .packet, .afterHandOver,
      .record, .registerArgument:
      break
    }
    return result
  }

  /// The condition under which this value exists; nil when it always does.
  public var presence: TypedExpr? {
    if case .optional(let present, _) = kind { return present }
    return nil
  }

  /// The same value as another type; a value that may be absent keeps its presence.
  public func retyped(_ type: ValueType) -> TypedExpr {
    var result = self
    result.type = type
    if case .optional(let present, var value) = kind {
      value.type = type
      result.kind = .optional(present: present, value: value)
    }
    return result
  }

  /// The value without its presence condition.
  public var unwrapped: TypedExpr {
    if case .optional(_, let value) = kind { return value }
    return self
  }
}

/// What the header walk of a packet finds (see `PacketField.swift` for the rules). Each is a
/// number; addresses are kernel addresses in the packet's linear data.
public struct PacketFact: Hashable, Sendable {
  public enum Value: String, Hashable, Sendable, CaseIterable {
    /// Where the network header starts.
    case network
    /// Where the datagram's bytes end: the linear data's end, or sooner when the IP header's
    /// length says so (frames padded to the minimum size).
    case end
    /// 4 or 6 when a valid IP header of that version lies within the data, else 0.
    case version
    /// The upper-layer protocol after the IPv6 extension headers (IPv4: the protocol
    /// field); `PacketFact.unknownProtocol` when the walk could not reach it.
    case upper
    /// Where the transport header starts; 0 when the packet has none (a later fragment, an
    /// extension-header chain too long or cut short).
    case transport
    /// Where the inner packet's Ethernet header starts, after a VXLAN or Geneve header
    /// (layer 1 only); 0 when the packet carries none.
    case link
  }
  public var value: Value
  /// 0 for the packet itself, 1 for the Ethernet frame inside a VXLAN (UDP port 4789) or
  /// Geneve (UDP port 6081, protocol 0x6558) tunnel.
  public var layer: Int

  public init(_ value: Value, layer: Int = 0) {
    self.value = value
    self.layer = layer
  }

  public static let unknownProtocol: UInt64 = 0x100
  public static let vxlanPort: UInt64 = 4789
  public static let genevePort: UInt64 = 6081
  /// IPv6 extension headers walked over, at most: a longer chain has no transport header.
  public static let maximumExtensionHeaders = 8
}

/// One value of a `print(...)`: its label is the argument's source text.
public struct PrintedValue: Hashable, Sendable {
  public var label: String
  public var value: TypedExpr
  public init(label: String, value: TypedExpr) {
    self.label = label
    self.value = value
  }
}

/// A `$name` of a clause: its type is fixed by the first assignment.
public struct VariableDeclaration: Hashable, Sendable {
  public var name: String
  public var type: ValueType
  /// The first assignment, for "first assigned here" notes.
  public var range: SourceRange
  /// For a variable first assigned a value that may be absent (`$p = udp.dport`): the slot of
  /// the bool that says whether it is present. Reading the variable gives a value that may
  /// be absent, as the field was.
  public var presenceSlot: Int? = nil

  /// Bytes of its stack slot: registers take 8, wider values their size rounded to 8.
  public var slotSize: Int { max(8, (type.storageSize + 7) / 8 * 8) }
}

/// What a clause does when its probe fires and its filter holds.
public indirect enum Action: Hashable, Sendable {
  case print([PrintedValue], range: SourceRange)
  /// Like `print`, but swtrace formats the values with `format` instead of labelling them.
  case printf(FormatString, [PrintedValue], range: SourceRange)
  /// `$name = value`; `value` already has the variable's type.
  case assignVariable(slot: Int, value: TypedExpr, range: SourceRange)
  case conditional(TypedExpr, then: [Action], else: [Action])
  /// Adds `value` to (or stores it in) map `map` under `keys`; `value` is nil for `count()`.
  case mapUpdate(map: Int, keys: [TypedExpr], value: TypedExpr?, range: SourceRange)
  case mapDelete(map: Int, keys: [TypedExpr], range: SourceRange)
  /// Adds the skb to the set of tracked packets: every skb clause fires for it from now on,
  /// whatever its filter says, until the kernel frees it.
  case track(range: SourceRange)
  case exit(range: SourceRange)
  /// `-w`: the packet's bytes with what its comment says, written after the print at `range`
  /// (added by `Desugaring`).
  case capture(PacketCapture, range: SourceRange)
  /// A loop, unrolled: see `Loop`.
  case loop(Loop)
  /// `break`, `continue` (of the innermost loop) or `return` (from the clause).
  case jump(JumpKind, range: SourceRange)

  /// The expressions the action itself evaluates (a conditional: its condition).
  public var expressions: [TypedExpr] {
    switch self {
    case .print(let values, _), .printf(_, let values, _): values.map(\.value)
    case .capture(let capture, _):
      capture.comment.map(\.value) + capture.probeComment.keys.sorted().flatMap { capture.probeComment[$0]!.map(\.value) }
        + capture.geometry.values
    case .assignVariable(_, let value, _): [value]
    case .conditional(let condition, _, _): [condition]
    case .mapUpdate(_, let keys, let value, _): keys + (value.map { [$0] } ?? [])
    case .mapDelete(_, let keys, _): keys
    case .loop(let loop): loop.condition.map { [$0] } ?? []
    case .track, .exit, .jump: []
    }
  }

  /// The actions of a conditional's two branches or a loop's body; none for other actions.
  public var nestedActions: [Action] {
    switch self {
    case .conditional(_, let then, let otherwise): then + otherwise
    case .loop(let loop): loop.body
    default: []
    }
  }

  /// The same action with its nested actions (`nestedActions` order) rewritten by `transform`.
  public func mappingNested(_ transform: ([Action]) -> [Action]) -> Action {
    switch self {
    case .conditional(let condition, let then, let otherwise):
      return .conditional(condition, then: transform(then), else: transform(otherwise))
    case .loop(var loop):
      loop.body = transform(loop.body)
      return .loop(loop)
    default:
      return self
    }
  }
}

/// A loop whose number of iterations is known when the spec is compiled: `for ($i : 0..10)`,
/// or a `while` whose condition the checker proved false after `iterations` runs of the body.
/// Code generation unrolls it: `iterations` copies of the body, each behind the condition.
public struct Loop: Hashable, Sendable {
  /// Checked before each iteration (`while`); nil for `for`, whose range decides.
  public var condition: TypedExpr?
  public var body: [Action]
  public var iterations: Int
  /// `for`'s variable: its slot, set to `start + k` before iteration k.
  public var counter: (slot: Int, start: UInt64)? {
    get { counterSlot.map { ($0, counterStart) } }
    set {
      counterSlot = newValue?.slot
      counterStart = newValue?.start ?? 0
    }
  }
  var counterSlot: Int?
  var counterStart: UInt64 = 0
  public var range: SourceRange

  public init(condition: TypedExpr?, body: [Action], iterations: Int, counter: (slot: Int, start: UInt64)?, range: SourceRange) {
    self.condition = condition
    self.body = body
    self.iterations = iterations
    self.range = range
    self.counter = counter
  }
}

/// What the desugaring step adds to a checked spec (see `Desugaring`).
public struct DesugaringOptions: Hashable, Sendable {
  /// `--track`: a clause whose filter matches also tracks the packet.
  public var trackFilteredPackets = false
  /// `-f paths`: every print of an skb clause also records the device and namespace, and
  /// events carry the skb's address so they can be grouped per packet.
  public var groupsEventsByPacket = false
  /// `-p PID`: every kernel clause runs only when `pid` (the current task's process id) is
  /// this one, as if its filter began with `pid == PID &&`.
  public var processID: UInt32? = nil
  /// `-w`: every print of an skb clause also writes the packet (`Action.capture`).
  public var capturesPackets = false
  /// `--stack`: every print also records the kernel stack (`kstack`).
  public var recordsStacks = false
  public init(
    trackFilteredPackets: Bool = false, groupsEventsByPacket: Bool = false, processID: UInt32? = nil,
    capturesPackets: Bool = false, recordsStacks: Bool = false
  ) {
    self.trackFilteredPackets = trackFilteredPackets
    self.groupsEventsByPacket = groupsEventsByPacket
    self.processID = processID
    self.capturesPackets = capturesPackets
    self.recordsStacks = recordsStacks
  }
}

/// What `-w` writes for one event: the values its packet comment shows, and the skb fields
/// that locate the packet's bytes, all typed like any value the spec reads.
public struct PacketCapture: Hashable, Sendable {
  /// Labelled values for the comment: mark, device, namespace, drop reason and location where
  /// the probe has them, the stack with `--stack`.
  public var comment: [PrintedValue]
  /// Values only some attach points of the clause have (kfree_skb's drop reason and location
  /// among the other `skb:*` tracepoints), by `AttachPoint.qualifiedName`: added after
  /// `comment` in that attach point's program.
  public var probeComment: [String: [PrintedValue]]
  public var geometry: PacketGeometry
  public init(comment: [PrintedValue], probeComment: [String: [PrintedValue]] = [:], geometry: PacketGeometry) {
    self.comment = comment
    self.probeComment = probeComment
    self.geometry = geometry
  }

  /// The comment's values in the program of the attach point `qualifiedName` names.
  public func comment(at qualifiedName: String) -> [PrintedValue] {
    comment + (probeComment[qualifiedName] ?? [])
  }

  /// The capture with `transform` applied to every value.
  public func mapValues(_ transform: (TypedExpr) -> TypedExpr) -> PacketCapture {
    func each(_ values: [PrintedValue]) -> [PrintedValue] {
      values.map { PrintedValue(label: $0.label, value: transform($0.value)) }
    }
    let parts = geometry
    return PacketCapture(
      comment: each(comment), probeComment: probeComment.mapValues(each),
      geometry: PacketGeometry(
        length: transform(parts.length), pagedLength: transform(parts.pagedLength),
        macHeader: transform(parts.macHeader), networkHeader: transform(parts.networkHeader),
        head: transform(parts.head), data: transform(parts.data), deviceType: parts.deviceType.map(transform)))
  }
}

/// The skb fields that say where a packet's bytes are: the capture starts at the MAC header
/// when there is one in reach, else at the network header, else at `data`.
public struct PacketGeometry: Hashable, Sendable {
  /// `skb->len`: bytes from `data`, linear and paged.
  public var length: TypedExpr
  /// `skb->data_len`: the paged part of `length`.
  public var pagedLength: TypedExpr
  /// Offsets from `head` (16 bits, `0xffff` when unset for the MAC header).
  public var macHeader: TypedExpr
  public var networkHeader: TypedExpr
  public var head: TypedExpr
  public var data: TypedExpr
  /// `skb->dev->type` (an `ARPHRD_*`), 0 without a device: it says what the MAC header is.
  public var deviceType: TypedExpr?

  public init(
    length: TypedExpr, pagedLength: TypedExpr, macHeader: TypedExpr, networkHeader: TypedExpr, head: TypedExpr,
    data: TypedExpr, deviceType: TypedExpr?
  ) {
    self.length = length
    self.pagedLength = pagedLength
    self.macHeader = macHeader
    self.networkHeader = networkHeader
    self.head = head
    self.data = data
    self.deviceType = deviceType
  }

  /// Every value, in the order they are stored.
  public var values: [TypedExpr] {
    [length, pagedLength, macHeader, networkHeader, head, data] + (deviceType.map { [$0] } ?? [])
  }
}
