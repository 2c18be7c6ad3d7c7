import CodeGen
public import Sema

/// The `le` bounds of a `hist` or `lhist` map, and the cumulative counts Prometheus wants.
///
/// swtrace's buckets are half-open, [low, high), and every value swtrace aggregates is an
/// integer. Prometheus's `le` means "less than or equal". So a bucket that holds `low...high-1`
/// is exported as `le="high - 1"`, and the count at that bound is exact: every value
/// counted at or below it really is <= it, and every value above it really is greater. (With
/// `le="high"` a value equal to `high` would be counted in the next bucket while Prometheus
/// would assume it below the bound.)
///
/// - `hist`: bucket 0 (negative values, only for signed types) is `le="-1"`, bucket 1 (the
///   value 0) is `le="0"`, bucket k >= 2 holds [2^(k-2), 2^(k-1)) and is `le="2^(k-1) - 1"`:
///   0, 1, 3, 7, 15, ..., 255, 511, ... The bounds run up to the largest value the type of
///   the histogram's argument can hold (33 finite bounds for a u32 such as `len`), so every
///   series of a map has the same bounds from the first scrape on, and `rate()` and
///   `histogram_quantile()` never see a bucket appear halfway.
/// - `lhist(min, max, step)`: the bucket below `min` is `le="min - 1"`, bucket i is
///   `le="min + i*step - 1"` (the last inner one `le="max - 1"`), and the bucket at `max` and
///   above is counted in `le="+Inf"` only.
public struct HistogramBounds: Sendable, Equatable {
  /// (bucket index, inclusive upper bound), ascending.
  public let bounds: [(index: UInt64, le: Int64)]

  public static func == (a: HistogramBounds, b: HistogramBounds) -> Bool {
    a.bounds.map(\.index) == b.bounds.map(\.index) && a.bounds.map(\.le) == b.bounds.map(\.le)
  }

  public init(_ map: MapDeclaration) {
    var bounds: [(UInt64, Int64)] = []
    switch map.aggregation {
    case .linearHistogram(let min, let max, let step):
      let inner = UInt64(Buckets.linearCount(min: min, max: max, step: step))
      for index in 0...inner {
        if let high = Buckets.range(of: index, for: map.aggregation).high {
          let (le, overflow) = high.subtractingReportingOverflow(1)
          if !overflow { bounds.append((index, le)) }
        }
      }
    default:
      // The width and signedness the code generator buckets the values by.
      let representation = map.valueType.integerRepresentation ?? IntegerRepresentation(bytes: 8, isSigned: false)
      let (bytes, signed) = (Swift.max(1, Swift.min(representation.bytes, 8)), representation.isSigned)
      // The bucket of the largest value the type holds: 2 + floor(log2(max)).
      let bits = bytes * 8 - (signed ? 1 : 0)
      let top = UInt64(2 + bits - 1)
      for index in UInt64(signed ? 0 : 1)...top {
        guard let high = Buckets.range(of: index, for: map.aggregation).high, high > 0 || index <= 1 else { break }
        bounds.append((index, high - 1))
      }
    }
    self.bounds = bounds
  }

  /// Cumulative counts at each bound, then the total (the `+Inf` bucket and `_count`).
  public func cumulative(_ buckets: [UInt64: UInt64]) -> (counts: [UInt64], total: UInt64) {
    let sorted = buckets.sorted { $0.key < $1.key }
    var counts: [UInt64] = []
    counts.reserveCapacity(bounds.count)
    var position = 0
    var running: UInt64 = 0
    for bound in bounds {
      while position < sorted.count, sorted[position].key <= bound.index {
        running &+= sorted[position].value
        position += 1
      }
      counts.append(running)
    }
    let total = buckets.values.reduce(UInt64(0), &+)
    return (counts, total)
  }
}
