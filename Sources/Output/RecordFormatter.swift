public import CodeGen
import Sema
import SwtraceSyntax

/// The event path at full rate: formats a `print` record straight from the ring buffer's
/// bytes into a byte buffer the caller reuses, with no `DecodedEvent` and no String per
/// event. Its lines are byte for byte those of `EventFormatter.line(decoder.decode(record))`:
/// the fixed parts (probe names, labels, host) are rendered once, by the same code, and
/// a value it has no shortcut for (a name, an IPv6 address, a string that is not plain
/// ASCII) goes through `ValueDecoder` and `EventFormatter` as before. `printf` records, and
/// the packet-path formats, use the general path.
public final class RecordFormatter: Sendable {
  private let decoder: EventDecoder
  private let formatter: EventFormatter
  private let isJSON: Bool
  /// Per probe: its name as the line shows it (quoted and escaped for JSON).
  private let probes: [[UInt8]]
  /// Per layout: how each field is written, or nil when the layout takes the general path.
  private let plans: [LayoutPlan?]
  /// JSON's fields after `cpu` and before `values`: `wall_ts` (its number is per event),
  /// then the host.
  private let hostPart: [UInt8]

  private final class LayoutPlan: Sendable {
    let size: Int
    /// Every field's prefix, one after the other.
    let prefixes: [UInt8]
    /// Plain values only, so that going through them retains nothing.
    let fields: [FieldPlan]
    let layout: EventLayout
    init(size: Int, prefixes: [UInt8], fields: [FieldPlan], layout: EventLayout) {
      self.size = size
      self.prefixes = prefixes
      self.fields = fields
      self.layout = layout
    }
  }

  /// How one field is written: `prefix` (the separator and label, `len: ` or `"len": `),
  /// then its value as `kind` says, from `offset`.
  private struct FieldPlan: Sendable {
    /// The prefix is `prefixes[prefixStart..<prefixEnd]` of the layout's plan.
    var prefixStart: Int
    var prefixEnd: Int
    var kind: Kind
    var offset: Int
    var size: Int
    /// Where the presence byte is, or -1 for a value that always exists.
    var presence: Int
    /// The field's index in its layout.
    var index: Int
  }

  private enum Kind: Sendable {
    case integer(signed: Bool)
    case bool, ipv4, ipAddress, pointer, string
    /// Through `ValueDecoder` and `EventFormatter`.
    case general
  }

  /// nil when `formatter`'s format is one this path does not write (the packet paths).
  public init?(decoder: EventDecoder, formatter: EventFormatter) {
    guard formatter.format == .text || formatter.format == .json else { return nil }
    self.decoder = decoder
    self.formatter = formatter
    let isJSON = formatter.format == .json
    self.isJSON = isJSON
    probes = decoder.compiled.probeNames.map { Array((isJSON ? JSON.string($0) : $0).utf8) }
    plans = decoder.compiled.layouts.map { layout in
      guard layout.format == nil else { return nil }
      var prefixes: [UInt8] = []
      var plans: [FieldPlan] = []
      for (index, field) in layout.fields.enumerated() {
        let separator = index == 0 ? "" : (isJSON ? ", " : " ")
        let label = isJSON ? JSON.string(field.label) + ": " : field.label + ": "
        let kind: Kind =
          switch field.type {
          case .integer(_, let signed) where field.size <= 8: .integer(signed: signed)
          case .bool: .bool
          case .ipv4: .ipv4
          case .ipAddress where field.size >= 24: .ipAddress
          case .pointer: .pointer
          case .string: .string
          default: .general
          }
        let start = prefixes.count
        prefixes += Array((separator + label).utf8)
        plans.append(
          FieldPlan(
            prefixStart: start, prefixEnd: prefixes.count, kind: kind, offset: field.offset, size: field.size,
            presence: field.presenceOffset ?? -1, index: index))
      }
      return LayoutPlan(size: layout.size, prefixes: prefixes, fields: plans, layout: layout)
    }
    hostPart = Array((formatter.host.map { ", \"host\": " + JSON.string($0) } ?? "").utf8)
  }

  /// What became of one record.
  public enum Outcome {
    /// Its line (and newline) were appended.
    case formatted
    /// Not an event this spec makes: nothing appended, as `EventDecoder.decode` gives nil.
    case notAnEvent
    /// A record this path does not write (a `printf`): decode and format it the general way.
    case general
  }

  /// Appends the line of `record` and its newline to `line`.
  public func append(_ record: UnsafeRawBufferPointer, to line: inout [UInt8]) -> Outcome {
    guard record.count >= EventHeader.size else { return .notAnEvent }
    let layoutID = Int(Self.load(record, EventHeader.layoutOffset, 4))
    let probeID = Int(Self.load(record, EventHeader.probeOffset, 4))
    guard layoutID < plans.count, probeID < probes.count else { return .notAnEvent }
    guard let plan = plans[layoutID] else {
      return record.count >= decoder.compiled.layouts[layoutID].size ? .general : .notAnEvent
    }
    guard record.count >= plan.size else { return .notAnEvent }
    let timestamp = Self.load(record, EventHeader.timestampOffset, 8)
    let cpu = Self.load(record, EventHeader.cpuOffset, 4)
    if isJSON {
      Self.append(#"{"probe": "#, to: &line)
      line.append(contentsOf: probes[probeID])
      Self.append(#", "ts": "#, to: &line)
      DecimalText.append(timestamp, to: &line)
      Self.append(#", "cpu": "#, to: &line)
      DecimalText.append(cpu, to: &line)
      if let offset = formatter.wallClockOffset {
        Self.append(#", "wall_ts": "#, to: &line)
        DecimalText.append(Int64(bitPattern: timestamp) &+ offset, to: &line)
      }
      line.append(contentsOf: hostPart)
      Self.append(#", "values": {"#, to: &line)
    } else {
      DecimalText.append(timestamp, to: &line)
      line.append(UInt8(ascii: " "))
      DecimalText.append(cpu, to: &line)
      line.append(UInt8(ascii: " "))
      line.append(contentsOf: probes[probeID])
      Self.append(" (", to: &line)
    }
    plan.prefixes.withUnsafeBufferPointer { prefixes in
      plan.fields.withUnsafeBufferPointer { fields in
        for field in fields {
          line.append(contentsOf: UnsafeBufferPointer(rebasing: prefixes[field.prefixStart..<field.prefixEnd]))
          appendValue(field, of: plan, record, to: &line)
        }
      }
    }
    Self.append(isJSON ? "}}\n" : ")\n", to: &line)
    return .formatted
  }

  /// One value as `EventFormatter` writes it: directly for numbers, IPv4 addresses, pointers,
  /// booleans and plain ASCII strings, through `DecodedValue` for the rest.
  private func appendValue(
    _ plan: FieldPlan, of layout: LayoutPlan, _ record: UnsafeRawBufferPointer, to line: inout [UInt8]) {
    if plan.presence >= 0, plan.presence < record.count, record[plan.presence] == 0 {
      Self.append(isJSON ? "null" : "-", to: &line)
      return
    }
    let quote = UInt8(ascii: "\"")
    switch plan.kind {
    case .integer(let signed):
      StoredNumber(bits: Self.load(record, plan.offset, plan.size), width: plan.size, isSigned: signed)
        .appendDecimal(to: &line)
      return
    case .bool:
      Self.append(Self.load(record, plan.offset, plan.size) != 0 ? "true" : "false", to: &line)
      return
    case .ipv4:
      if isJSON { line.append(quote) }
      IPAddressText.appendIPv4(UInt32(truncatingIfNeeded: Self.load(record, plan.offset, plan.size)), to: &line)
      if isJSON { line.append(quote) }
      return
    case .ipAddress where record[plan.offset + 16] == 4:
      if isJSON { line.append(quote) }
      IPAddressText.appendIPv4(UInt32(truncatingIfNeeded: Self.load(record, plan.offset, 4)), to: &line)
      if isJSON { line.append(quote) }
      return
    case .pointer:
      if isJSON { line.append(quote) }
      Self.append("0x", to: &line)
      DecimalText.appendHex(Self.load(record, plan.offset, plan.size), to: &line)
      if isJSON { line.append(quote) }
      return
    case .string:
      // Printable ASCII reads the same in text, and in JSON but for `"` and `\`; anything
      // else (UTF-8, control characters, bytes that are not text) is escaped the general way.
      let start = plan.offset
      var end = start
      var plain = true
      while end < start + plan.size, record[end] != 0 {
        let byte = record[end]
        if byte < 0x20 || byte >= 0x7f || (isJSON && (byte == quote || byte == UInt8(ascii: "\\"))) {
          plain = false
          break
        }
        end += 1
      }
      if plain {
        if isJSON { line.append(quote) }
        line.append(contentsOf: UnsafeRawBufferPointer(rebasing: record[start..<end]))
        if isJSON { line.append(quote) }
        return
      }
    case .ipAddress, .general:
      break
    }
    let value = decoder.decode(layout.layout.fields[plan.index], record)
    line.append(contentsOf: (isJSON ? formatter.json(value) : formatter.text(value)).utf8)
  }

  /// Appends a literal's bytes without going through String.
  @inline(__always)
  static func append(_ literal: StaticString, to line: inout [UInt8]) {
    line.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
  }

  /// `width` little-endian bytes at `offset`, as `StoredNumber` reads them (the record's
  /// length was checked against the layout's).
  @inline(__always)
  static func load(_ record: UnsafeRawBufferPointer, _ offset: Int, _ width: Int) -> UInt64 {
    switch width {
    case 8: return record.loadUnaligned(fromByteOffset: offset, as: UInt64.self).littleEndian
    case 4: return UInt64(record.loadUnaligned(fromByteOffset: offset, as: UInt32.self).littleEndian)
    case 2: return UInt64(record.loadUnaligned(fromByteOffset: offset, as: UInt16.self).littleEndian)
    case 1: return UInt64(record[offset])
    default: return StoredNumber(record, at: offset, width: width).bits
    }
  }
}

/// Decimal and hexadecimal digits appended as ASCII, for the event path's byte buffers.
enum DecimalText {
  static func append(_ value: UInt64, to text: inout [UInt8]) {
    guard value >= 10 else {
      text.append(0x30 + UInt8(value))
      return
    }
    var digits: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)  // 32 bytes: room for 20 digits
    var count = 0
    var rest = value
    withUnsafeMutableBytes(of: &digits) { buffer in
      while rest > 0 {
        buffer[31 - count] = 0x30 + UInt8(rest % 10)
        rest /= 10
        count += 1
      }
      text.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[(32 - count)...]))
    }
  }

  static func append(_ value: Int64, to text: inout [UInt8]) {
    if value < 0 { text.append(UInt8(ascii: "-")) }
    append(value.magnitude, to: &text)
  }

  /// Lowercase hexadecimal without leading zeros, as `String(value, radix: 16)`.
  static func appendHex(_ value: UInt64, to text: inout [UInt8]) {
    var shift = max(0, (64 - value.leadingZeroBitCount + 3) / 4 * 4 - 4)
    while shift >= 0 {
      let digit = UInt8(truncatingIfNeeded: value >> UInt64(shift)) & 0xf
      text.append(digit < 10 ? 0x30 + digit : 0x57 + digit)
      shift -= 4
    }
  }
}
