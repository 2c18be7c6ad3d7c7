public import CodeGen
import Sema

/// One map entry after merging CPUs.
public struct MapEntry: Sendable {
  public var keys: [DecodedValue]
  public var value: MergedValue
}

/// A map value with every CPU's share added up.
public enum MergedValue: Sendable, Equatable {
  case number(Int64)
  case unsigned(UInt64)
  /// count and total; the average is total / count.
  case stats(count: UInt64, total: Int64)
  case missing
  /// Bucket index -> count.
  case histogram([UInt64: UInt64])
  case stored(DecodedValue)
}

/// Decodes and prints the spec's maps: at exit, and from interval clauses.
public struct MapPrinter: Sendable {
  public let compiled: CompiledSpec
  public var format: OutputFormat
  /// Where `kstack` keys are read from; nil when the spec has none.
  public let stacks: KernelStackTable?

  public init(compiled: CompiledSpec, format: OutputFormat, stacks: KernelStackTable? = nil) {
    self.compiled = compiled
    self.format = format
    self.stacks = stacks
  }

  /// Entries of map `index` from raw kernel bytes, CPUs merged, histogram buckets grouped by key.
  public func entries(_ index: Int, raw: [(key: [UInt8], value: [UInt8])]) -> [MapEntry] {
    let map = compiled.userMaps[index]
    let perCPU = MapLayout.isPerCPU(map)
    let valueSize = MapLayout.valueSize(map)
    let stride = (valueSize + 7) / 8 * 8
    func slots(_ value: [UInt8]) -> [[UInt8]] {
      guard perCPU else { return [value] }
      return Swift.stride(from: 0, to: value.count - stride + 1, by: stride).map { Array(value[$0..<$0 + valueSize]) }
    }
    func u64(_ bytes: [UInt8], _ offset: Int) -> UInt64 { StoredNumber(bytes, at: offset, width: 8).bits }
    func keys(_ key: [UInt8]) -> [DecodedValue] {
      var offset = 0
      return map.keys.map { key_ in
        let size = key_.type.mapSlotSize
        defer { offset += key_.slotSize }
        if key_.optional, u64(key, offset + size) == 0 { return .absent }
        return ValueDecoder.decode(
          type: key_.type, size: size, probeNames: compiled.probeNames, bytes: Array(key[offset..<offset + size]),
          stacks: stacks)
      }
    }
    let signed = map.valueType.isSigned
    if map.aggregation.isHistogram {
      var grouped: [[UInt8]: [UInt64: UInt64]] = [:]
      for (key, value) in raw {
        let bucket = u64(key, key.count - 8)
        let count = slots(value).reduce(UInt64(0)) { $0 &+ u64($1, 0) }
        grouped[Array(key.dropLast(8)), default: [:]][bucket, default: 0] += count
      }
      return grouped.map { MapEntry(keys: keys($0.key), value: .histogram($0.value)) }
    }
    return raw.map { key, value in
      let parts = slots(value)
      let merged: MergedValue
      switch map.aggregation {
      case .count:
        merged = .unsigned(parts.reduce(0) { $0 &+ u64($1, 0) })
      case .sum:
        let total = parts.reduce(UInt64(0)) { $0 &+ u64($1, 0) }
        merged = signed ? .number(Int64(bitPattern: total)) : .unsigned(total)
      case .average, .stats:
        merged = .stats(
          count: parts.reduce(0) { $0 &+ u64($1, 0) },
          total: Int64(bitPattern: parts.reduce(UInt64(0)) { $0 &+ u64($1, 8) }))
      case .minimum, .maximum:
        let present = parts.filter { u64($0, 8) != 0 }.map { u64($0, 0) }
        if present.isEmpty {
          merged = .missing
        } else if signed {
          let values = present.map { Int64(bitPattern: $0) }
          merged = .number(map.aggregation == .minimum ? values.min()! : values.max()!)
        } else {
          merged = .unsigned(map.aggregation == .minimum ? present.min()! : present.max()!)
        }
      case .value:
        merged = .stored(
          ValueDecoder.decode(type: map.valueType, size: valueSize, probeNames: compiled.probeNames, bytes: value))
      case .histogram, .linearHistogram:
        merged = .missing
      }
      return MapEntry(keys: keys(key), value: merged)
    }
  }

  /// The text or JSON of one map, sorted by value, largest last, like bpftrace; entries with
  /// the same value by their keys' text, so that a map prints the same way every time (the
  /// kernel's hash order is not).
  public func render(_ index: Int, entries unsorted: [MapEntry]) -> String {
    let map = compiled.userMaps[index]
    let formatter = EventFormatter(format: .text)
    let entries = unsorted.map { (entry: $0, value: sortKey($0.value), keys: $0.keys.map { formatter.text($0) }) }
      .sorted { $0.value != $1.value ? $0.value < $1.value : $0.keys.lexicographicallyPrecedes($1.keys) }
      .map(\.entry)
    return format.isJSON ? renderJSON(map, entries) : renderText(map, entries)
  }

  /// The `count` entries with the largest values (`print(@m, N)`), ties by their keys' text.
  public func largest(_ index: Int, entries: [MapEntry], count: Int) -> [MapEntry] {
    let formatter = EventFormatter(format: .text)
    let ranked = entries.map { (entry: $0, value: sortKey($0.value), keys: $0.keys.map { formatter.text($0) }) }
      .sorted { $0.value != $1.value ? $0.value > $1.value : $0.keys.lexicographicallyPrecedes($1.keys) }
    return ranked.prefix(count).map(\.entry)
  }

  func sortKey(_ value: MergedValue) -> Double {
    switch value {
    case .number(let v): Double(v)
    case .unsigned(let v): Double(v)
    case .stats(let count, let total): count == 0 ? 0 : Double(total) / Double(count)
    case .histogram(let buckets): Double(buckets.values.reduce(0, +))
    case .missing, .stored: 0
    }
  }

  func keyText(_ map: MapDeclaration, _ entry: MapEntry) -> String {
    guard !entry.keys.isEmpty else { return map.displayName }
    let formatter = EventFormatter(format: .text)
    return map.displayName + "[" + entry.keys.map { formatter.text($0) }.joined(separator: ", ") + "]"
  }

  func renderText(_ map: MapDeclaration, _ entries: [MapEntry]) -> String {
    if entries.isEmpty { return "\(map.displayName): (empty)\n" }
    var out = ""
    for entry in entries {
      switch entry.value {
      case .histogram(let buckets):
        out += keyText(map, entry) + ":\n" + histogramText(map, buckets)
      case .stats(let count, let total):
        let average = count == 0 ? 0 : total / Int64(count)
        if map.aggregation == .average {
          out += "\(keyText(map, entry)): \(average)\n"
        } else {
          out += "\(keyText(map, entry)): count \(count), average \(average), total \(total)\n"
        }
      case .number(let v): out += "\(keyText(map, entry)): \(v)\n"
      case .unsigned(let v): out += "\(keyText(map, entry)): \(v)\n"
      case .missing: out += "\(keyText(map, entry)): (none)\n"
      case .stored(let v): out += "\(keyText(map, entry)): \(EventFormatter(format: .text).text(v))\n"
      }
    }
    return out
  }

  /// Bars scaled to the largest bucket, with each bucket's range; empty buckets between the
  /// first and last used ones are shown so the shape reads right.
  func histogramText(_ map: MapDeclaration, _ buckets: [UInt64: UInt64]) -> String {
    guard let first = buckets.keys.min(), let last = buckets.keys.max() else { return "" }
    let largest = max(1, buckets.values.max() ?? 1)
    let width = 52
    var out = ""
    for index in first...last {
      let count = buckets[index] ?? 0
      let label = bucketLabel(index, map.aggregation)
      let bar = String(repeating: "@", count: Int((count * UInt64(width) + largest - 1) / largest))
      out += label.rightPadded(to: 20) + String(count).leftPadded(to: 8) + " |" + bar.rightPadded(to: width) + "|\n"
    }
    return out
  }

  func bucketLabel(_ index: UInt64, _ aggregation: Aggregation) -> String {
    let (low, high) = Buckets.range(of: index, for: aggregation)
    // The buckets of 0 and of 1 hold one value each: bpftrace 0.17 labels them [0] and [1].
    if case .histogram = aggregation, index == 1 || index == 2 { return index == 1 ? "[0]" : "[1]" }
    switch (low, high) {
    case (nil, let high?): return "(..., \(humanize(high)))"
    case (let low?, nil): return "[\(humanize(low)), ...)"
    case (let low?, let high?): return "[\(humanize(low)), \(humanize(high)))"
    default: return "?"
    }
  }

  /// 1024 -> 1K, 1048576 -> 1M: powers of two print the way people say them.
  func humanize(_ value: Int64) -> String {
    let units: [(Int64, String)] = [(1 << 60, "E"), (1 << 50, "P"), (1 << 40, "T"), (1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")]
    for (unit, suffix) in units where value >= unit && value % unit == 0 {
      return "\(value / unit)\(suffix)"
    }
    return String(value)
  }

  func renderJSON(_ map: MapDeclaration, _ entries: [MapEntry]) -> String {
    let formatter = EventFormatter(format: .json)
    let rows = entries.map { entry -> String in
      let keys = zip(map.keys, entry.keys).map { "\(JSON.string($0.0.label)): \(formatter.json($0.1))" }
        .joined(separator: ", ")
      let value: String
      switch entry.value {
      case .number(let v): value = "\"value\": \(v)"
      case .unsigned(let v): value = "\"value\": \(v)"
      case .missing: value = "\"value\": null"
      case .stored(let v): value = "\"value\": \(formatter.json(v))"
      case .stats(let count, let total):
        value = "\"count\": \(count), \"average\": \(count == 0 ? 0 : total / Int64(count)), \"total\": \(total)"
      case .histogram(let buckets):
        let list = buckets.keys.sorted().map { index -> String in
          let (low, high) = Buckets.range(of: index, for: map.aggregation)
          return "{\"min\": \(low.map(String.init) ?? "null"), \"max\": \(high.map(String.init) ?? "null"), \"count\": \(buckets[index]!)}"
        }
        value = "\"buckets\": [\(list.joined(separator: ", "))]"
      }
      return "{\"keys\": {\(keys)}, \(value)}"
    }
    return "{\"map\": \(JSON.string(map.displayName)), \"aggregation\": \(JSON.string(map.aggregation.callName.isEmpty ? "value" : map.aggregation.callName)), \"entries\": [\(rows.joined(separator: ", "))]}\n"
  }
}

extension String {
  func leftPadded(to width: Int) -> String {
    count >= width ? self : String(repeating: " ", count: width - count) + self
  }
  func rightPadded(to width: Int) -> String {
    count >= width ? self : self + String(repeating: " ", count: width - count)
  }
}
