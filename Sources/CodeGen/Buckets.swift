public import Sema

/// Histogram bucket numbering shared by the generated code and the printer.
///
/// `hist`: bucket 0 holds negative values, 1 holds 0, and bucket k >= 2 holds
/// [2^(k-2), 2^(k-1)). `lhist(min, max, step)`: bucket 0 is below `min`, bucket
/// 1 + (v - min) / step holds [min + i*step, min + (i+1)*step), and the last bucket is `max` and above.
public enum Buckets {
  public static func log2Index(_ value: Int64, signed: Bool) -> UInt64 {
    if signed, value < 0 { return 0 }
    let magnitude = UInt64(bitPattern: value)
    if magnitude == 0 { return 1 }
    return UInt64(2 + (63 - magnitude.leadingZeroBitCount))
  }

  public static func linearIndex(_ value: Int64, min: Int64, max: Int64, step: Int64) -> UInt64 {
    if value < min { return 0 }
    if value >= max { return UInt64(linearCount(min: min, max: max, step: step) + 1) }
    return UInt64(1 + (value &- min) / step)
  }

  /// Buckets strictly inside [min, max) (Sema keeps `max - min` within Int64).
  public static func linearCount(min: Int64, max: Int64, step: Int64) -> Int64 {
    let span = max &- min
    return span / step + (span % step == 0 ? 0 : 1)
  }

  /// The range a bucket covers, for printing: nil bounds mean unbounded.
  public static func range(of index: UInt64, for aggregation: Aggregation) -> (low: Int64?, high: Int64?) {
    switch aggregation {
    case .linearHistogram(let min, let max, let step):
      let count = UInt64(linearCount(min: min, max: max, step: step))
      if index == 0 { return (nil, min) }
      if index > count { return (max, nil) }
      let low = min &+ Int64(index - 1) &* step
      let (high, overflows) = low.addingReportingOverflow(step)
      return (low, overflows ? max : Swift.min(high, max))
    default:
      if index == 0 { return (nil, 0) }
      if index == 1 { return (0, 1) }
      let low = Int64(bitPattern: UInt64(1) << (index - 2))
      return (low, index - 1 >= 63 ? nil : Int64(bitPattern: UInt64(1) << (index - 1)))
    }
  }
}

/// Sizes of map keys and values as the generated code lays them out.
public enum MapLayout {
  /// Key bytes: each key in its own 8-byte-aligned slot, then the bucket index for histograms.
  public static func keySize(_ map: MapDeclaration) -> Int {
    let keys = map.keys.reduce(0) { $0 + $1.slotSize }
    let total = keys + (map.aggregation.isHistogram ? 8 : 0)
    return max(total, 8)
  }

  public static func slotSize(_ type: ValueType) -> Int { type.mapSlotSize }

  /// Value bytes per CPU (or in total for plain value maps).
  public static func valueSize(_ map: MapDeclaration) -> Int {
    switch map.aggregation {
    case .count, .sum, .histogram, .linearHistogram: 8
    // (count, total) for averages, (value, present) for minimum and maximum.
    case .average, .stats, .minimum, .maximum: 16
    case .value: slotSize(map.valueType)
    }
  }

  public static func isPerCPU(_ map: MapDeclaration) -> Bool { map.aggregation != .value }

  /// Entries of a per-CPU array that can hold `map` indexed by bucket, or nil when it needs a
  /// hash map. Key-less counts and histograms qualify: their keys are small numbers, every
  /// entry exists from the start (no create-on-first-use), and the kernel inlines lookups in
  /// per-CPU arrays, so an update costs no helper call. A zero entry reads as no entry.
  public static func directIndexEntries(_ map: MapDeclaration) -> Int? {
    guard map.keys.isEmpty else { return nil }
    switch map.aggregation {
    case .count: return 1
    // Buckets 0 (negative), 1 (zero) and 2...65 (one per bit position).
    case .histogram: return 66
    case .linearHistogram(let min, let max, let step):
      let entries = Buckets.linearCount(min: min, max: max, step: step) + 2
      return entries <= 4096 ? Int(entries) : nil
    default: return nil
    }
  }
}
