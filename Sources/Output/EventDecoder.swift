public import CodeGen
import Sema
import SwtraceSyntax

/// A printed value decoded from an event record.
public enum DecodedValue: Hashable, Sendable {
  case unsigned(UInt64)
  case signed(Int64)
  case bool(Bool)
  case text(String)
  /// A name from BTF: an enumerator, flags, a probe name.
  case name(String)
  case pointer(UInt64)
  case ipv4(UInt32)
  case ipv6([UInt8])
  case kernelStack(KernelStack)
  /// A field that may be absent, and is: a packet without the header it belongs to.
  case absent
}

/// One event: where and when it happened, and the values of its `print`.
public struct DecodedEvent: Hashable, Sendable {
  public var timestamp: UInt64
  public var cpu: UInt32
  public var probe: String
  /// The skb's kernel address in skb clauses (0 otherwise): it identifies the packet.
  public var skb: UInt64 = 0
  public var values: [(label: String, value: DecodedValue)]
  /// The formatted text of a `printf` event; nil for `print`.
  public var text: String? = nil
  /// The stack `--stack` adds to a `printf` event, printed after its text.
  public var stackAfterText: KernelStack? = nil

  public static func == (a: DecodedEvent, b: DecodedEvent) -> Bool {
    a.timestamp == b.timestamp && a.cpu == b.cpu && a.probe == b.probe && a.text == b.text
      && a.values.map(\.label) == b.values.map(\.label) && a.values.map(\.value) == b.values.map(\.value)
  }
  public func hash(into hasher: inout Hasher) {
    hasher.combine(timestamp)
    hasher.combine(probe)
  }
}

/// Turns ring buffer records into `DecodedEvent`s using the layouts code generation made.
public struct EventDecoder: Sendable {
  public let compiled: CompiledSpec
  /// Where `kstack` values are read from; nil when the spec has none.
  public let stacks: KernelStackTable?

  public init(compiled: CompiledSpec, stacks: KernelStackTable? = nil) {
    self.compiled = compiled
    self.stacks = stacks
  }

  /// Whether a record is the spec's `exit()` asking swtrace to stop.
  public func isExitRequest(_ bytes: UnsafeRawBufferPointer) -> Bool {
    bytes.count >= EventHeader.size && Self.header(bytes, EventHeader.layoutOffset, 4) == UInt64(exitRequestLayoutID)
  }

  /// The event in one ring buffer record, or nil when the record is not one this spec makes.
  public func decode(_ bytes: UnsafeRawBufferPointer) -> DecodedEvent? {
    guard bytes.count >= EventHeader.size else { return nil }
    let layoutID = Int(Self.header(bytes, EventHeader.layoutOffset, 4))
    let probeID = Int(Self.header(bytes, EventHeader.probeOffset, 4))
    guard layoutID < compiled.layouts.count, probeID < compiled.probeNames.count else { return nil }
    let layout = compiled.layouts[layoutID]
    guard bytes.count >= layout.size else { return nil }
    var event = DecodedEvent(
      timestamp: Self.header(bytes, EventHeader.timestampOffset, 8),
      cpu: UInt32(truncatingIfNeeded: Self.header(bytes, EventHeader.cpuOffset, 4)),
      probe: compiled.probeNames[probeID],
      skb: Self.header(bytes, EventHeader.skbOffset, 8),
      values: layout.fields.map { ($0.label, decode($0, bytes)) })
    if let format = layout.format {
      event.text = PrintfRenderer.render(format, fields: layout.fields, probeNames: compiled.probeNames, stacks: stacks) {
        bytes.bytes(at: $0.offset, count: $0.size)
      }
      // A value after the format's own arguments is the stack `--stack` added.
      if layout.fields.count > format.conversions.count, case .kernelStack(let stack) = event.values.last?.value {
        event.stackAfterText = stack
      }
    }
    return event
  }

  /// An unsigned field of the record header.
  static func header(_ bytes: UnsafeRawBufferPointer, _ offset: Int, _ width: Int) -> UInt64 {
    StoredNumber(bytes, at: offset, width: width).bits
  }

  func decode(_ field: EventField, _ bytes: UnsafeRawBufferPointer) -> DecodedValue {
    if let presence = field.presenceOffset, bytes.bytes(at: presence, count: 1) == [0] { return .absent }
    return ValueDecoder.decode(
      type: field.type, size: field.size, probeNames: compiled.probeNames,
      bytes: bytes.bytes(at: field.offset, count: field.size), stacks: stacks)
  }
}

extension UnsafeRawBufferPointer {
  /// A copy of `length` bytes at `offset`; empty when the record is too short for them.
  func bytes(at offset: Int, count length: Int) -> [UInt8] {
    guard offset >= 0, length >= 0, offset + length <= count else { return [] }
    return Array(self[offset..<offset + length])
  }
}

/// Turns the little-endian bytes of one value into a `DecodedValue`; shared by events and maps.
public enum ValueDecoder {
  /// `stacks` resolves `kstack` values; without it they read as unavailable.
  public static func decode(
    type: ValueType, size: Int, probeNames: [String], bytes raw: [UInt8], stacks: KernelStackTable? = nil
  ) -> DecodedValue {
    let number = StoredNumber(raw, width: size, as: type)
    func unsigned() -> UInt64 { number.bits }
    switch type {
    case .integer:
      return number.decoded
    case .bool:
      return .bool(unsigned() != 0)
    case .string:
      // Kernel strings need not be UTF-8: a byte that is not stays visible as `\xNN`.
      // Control characters are kept here and escaped by whoever prints (`DecodedValue.text`
      // for text, `JSON.string` for JSON).
      let end = raw.firstIndex(of: 0) ?? raw.count
      return .text(TerminalText.decoding(raw[..<end], escapingControls: false))
    case .enumeration(let names):
      // Enumerators are keyed by their values as BTF gives them, extended as the enum's type
      // says: sign-extended for signed enums.
      return .name(names.render(number.signedValue))
    case .flags(let names):
      return .name(names.render(unsigned()))
    case .pointer:
      return .pointer(unsigned())
    case .kernelSymbol:
      return .name(KernelSymbols.shared.describe(unsigned()))
    case .probe:
      let id = Int(unsigned())
      return .name(id < probeNames.count ? probeNames[id] : String(id))
    case .ipv4:
      // Addresses travel in host order, as the program compares them.
      return .ipv4(UInt32(truncatingIfNeeded: unsigned()))
    case .ipv6:
      return .ipv6(Array(raw.prefix(16)))
    case .macAddress:
      return .text(raw.prefix(6).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":"))
    case .ipAddress:
      // The family follows the 16 address bytes; an IPv4 address is a host-order u32.
      guard raw.count >= 24 else { return .unsigned(0) }
      if raw[16] == 4 {
        return .ipv4(UInt32(raw[0]) | UInt32(raw[1]) << 8 | UInt32(raw[2]) << 16 | UInt32(raw[3]) << 24)
      }
      return .ipv6(Array(raw.prefix(16)))
    case .kernelStack:
      let id = number.signedValue
      return .kernelStack(stacks?.stack(id) ?? KernelStack(frames: [], unavailable: "stack \(id) cannot be read here"))
    case .wallTime(let format):
      return .text(WallTime.format(nanoseconds: unsigned(), format))
    case .buffer:
      return .text(BufferText.escaped(raw))
    case .byteArray:
      return .text("[" + raw.map(String.init).joined(separator: ",") + "]")
    case .void:
      return .unsigned(0)
    }
  }
}
