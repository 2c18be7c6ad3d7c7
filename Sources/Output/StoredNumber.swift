public import Sema

/// A number as the kernel stores it in an event record, a map key or a map value: `width`
/// little-endian bytes (at most 8), read the way its type reads them. The one reader of
/// numbers from kernel bytes: event headers and fields, printf, map keys, values and
/// histogram buckets, and the runtime's per-CPU counters all go through it.
public struct StoredNumber: Hashable, Sendable {
  /// The stored bytes, zero-extended to 64 bits.
  public var bits: UInt64
  /// Bytes stored, 1 to 8.
  public var width: Int
  public var isSigned: Bool

  /// The number in the `width` bytes at `offset` (fewer where `bytes` ends before them).
  public init<Bytes: Collection<UInt8>>(_ bytes: Bytes, at offset: Int = 0, width: Int, isSigned: Bool = false) {
    var bits: UInt64 = 0
    var shift: UInt64 = 0
    for byte in bytes.dropFirst(offset).prefix(min(max(width, 0), 8)) {
      bits |= UInt64(byte) << shift
      shift += 8
    }
    self.bits = bits
    self.width = min(max(width, 1), 8)
    self.isSigned = isSigned
  }

  /// The number stored in `width` bytes as a value of `type` is: its signedness from the type.
  public init<Bytes: Collection<UInt8>>(_ bytes: Bytes, at offset: Int = 0, width: Int, as type: ValueType) {
    self.init(bytes, at: offset, width: width, isSigned: type.isSigned)
  }

  /// A number already read: `bits` zero-extended from `width` bytes.
  public init(bits: UInt64, width: Int, isSigned: Bool) {
    self.bits = bits
    self.width = min(max(width, 1), 8)
    self.isSigned = isSigned
  }

  /// The value in a 64-bit register: sign-extended from its width when signed.
  public var extended: UInt64 {
    guard isSigned, width < 8 else { return bits }
    let shift = UInt64(64 - 8 * width)
    return UInt64(bitPattern: Int64(bitPattern: bits << shift) >> Int64(shift))
  }

  public var signedValue: Int64 { Int64(bitPattern: extended) }

  /// The number as printed: negative only when its type is signed.
  public var decoded: DecodedValue { isSigned ? .signed(signedValue) : .unsigned(bits) }

  /// Appends the number as printed, in decimal ASCII (text and JSON write numbers alike).
  public func appendDecimal(to text: inout [UInt8]) {
    if isSigned { DecimalText.append(signedValue, to: &text) } else { DecimalText.append(bits, to: &text) }
  }
}
