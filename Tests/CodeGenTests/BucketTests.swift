import CodeGen
import Sema
import Testing

/// The obvious, slow definition of the power-of-two buckets, to check `Buckets` against.
private func referenceLog2Bucket(_ value: Int64, signed: Bool) -> UInt64 {
  if signed && value < 0 { return 0 }
  let v = UInt64(bitPattern: value)
  if v == 0 { return 1 }
  var k: UInt64 = 2
  var low: UInt64 = 1
  while low <= v / 2 {
    low *= 2
    k += 1
  }
  return k
}

@Suite struct BucketTests {
  static let boundaries: [Int64] = {
    var values: [Int64] = [0, 1, 2, 3, -1, -2, Int64.min, Int64.max]
    for shift in 1..<63 {
      let power = Int64(1) << Int64(shift)
      values += [power - 1, power, power + 1]
    }
    return values
  }()

  @Test func log2BucketsMatchTheReferenceAtEveryBoundary() {
    for value in Self.boundaries {
      #expect(Buckets.log2Index(value, signed: true) == referenceLog2Bucket(value, signed: true), "signed \(value)")
      #expect(Buckets.log2Index(value, signed: false) == referenceLog2Bucket(value, signed: false), "unsigned \(value)")
    }
    // u64 max: the top bucket.
    #expect(Buckets.log2Index(-1, signed: false) == 65)
  }

  @Test func log2BucketRangesContainTheirValues() {
    for value in Self.boundaries where value >= 0 {
      let index = Buckets.log2Index(value, signed: true)
      let (low, high) = Buckets.range(of: index, for: .histogram)
      #expect(low.map { $0 <= value } ?? true, "\(value) below bucket \(index)")
      #expect(high.map { value < $0 } ?? true, "\(value) above bucket \(index)")
    }
  }

  @Test func linearBucketsAtTheirEdges() {
    let (min, max, step): (Int64, Int64, Int64) = (0, 1500, 250)
    #expect(Buckets.linearCount(min: min, max: max, step: step) == 6)
    let cases: [(Int64, UInt64)] = [(-1, 0), (0, 1), (249, 1), (250, 2), (1499, 6), (1500, 7), (Int64.max, 7)]
    for (value, expected) in cases {
      #expect(Buckets.linearIndex(value, min: min, max: max, step: step) == expected, "\(value)")
    }
    let aggregation = Aggregation.linearHistogram(min: min, max: max, step: step)
    #expect(Buckets.range(of: 0, for: aggregation) == (nil, 0))
    #expect(Buckets.range(of: 2, for: aggregation) == (250, 500))
    #expect(Buckets.range(of: 7, for: aggregation) == (1500, nil))
  }
}
