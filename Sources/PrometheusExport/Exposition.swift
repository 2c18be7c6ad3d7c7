public import Output
import Prometheus
public import Sema

/// What one scrape read from the kernel: every map's entries (CPUs merged, keys decoded),
/// and swtrace's own counters.
public struct MetricsSnapshot: Sendable {
  /// Entries of each map, in `CompiledSpec.userMaps` order.
  public var maps: [[MapEntry]]
  public var lostEvents: UInt64
  /// Updates refused because a map was full, per map.
  public var fullMaps: [UInt64]

  public init(maps: [[MapEntry]], lostEvents: UInt64, fullMaps: [UInt64]) {
    self.maps = maps
    self.lostEvents = lostEvents
    self.fullMaps = fullMaps
  }
}

/// Turns a snapshot into the Prometheus text exposition format (version 0.0.4).
///
/// Counters and gauges go through a fresh swift-prometheus `PrometheusCollectorRegistry` per
/// scrape, so every value is the kernel's value at the time of the request. Histograms are
/// written by `writeHistogram` in the same format: swift-prometheus's `Histogram` only takes
/// one observation at a time (`record(_:)`), and the kernel hands swtrace bucket counts, not
/// observations; replaying them would cost one call per packet ever counted. swtrace's
/// histograms hold no sum of the values, so they have no `_sum` series (Prometheus does not
/// need one for `histogram_quantile()`); see `HistogramBounds` for the `le` bounds.
public struct MetricsRenderer: Sendable {
  public let families: MetricFamilies
  public let host: String

  public init(maps: [MapDeclaration], host: String) {
    self.families = MetricFamilies(maps: maps)
    self.host = host
  }

  /// The content type of the text format.
  public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

  public func render(_ snapshot: MetricsSnapshot) -> String {
    let registry = PrometheusCollectorRegistry()
    var histograms: [String: String] = [:]
    let hostLabel = (MetricNames.hostLabel, host)

    let lost = registry.makeCounter(
      descriptor: MetricNameDescriptor(
        metricName: "swtrace_events_lost", unitName: "total",
        helpText: "Events the kernel could not write because the ring buffer was full."),
      labels: [hostLabel])
    increment(lost, by: snapshot.lostEvents)

    for (index, family) in families.families.enumerated() {
      let full = registry.makeCounter(
        descriptor: MetricNameDescriptor(
          metricName: "swtrace_map_full", unitName: "total",
          helpText: "Map updates refused because the map was full (raise --map-entries)."),
        labels: [("map", family.map.displayName), hostLabel])
      increment(full, by: index < snapshot.fullMaps.count ? snapshot.fullMaps[index] : 0)

      let entries = index < snapshot.maps.count ? snapshot.maps[index] : []
      if family.kind == .histogram {
        histograms[family.base] = writeHistogram(family, entries)
      } else {
        add(family, entries, to: registry)
      }
    }
    return ordered(registry.emitToString(), histograms)
  }

  /// The registry keeps families in a dictionary; a scrape reads better (and diffs) in a
  /// fixed order: swtrace's own metrics, then the maps in the order the spec declares them,
  /// each family's series sorted.
  func ordered(_ registryText: String, _ histograms: [String: String]) -> String {
    var blocks: [String: [Substring]] = [:]
    var current: String?
    var headers: [Substring] = []
    for line in registryText.split(separator: "\n") {
      if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
        let name = line.dropFirst(7).prefix { $0 != " " }
        if current != String(name) {
          current = String(name)
          headers = []
        }
        headers.append(line)
        if line.hasPrefix("# TYPE ") { blocks[String(name)] = headers }
      } else if let current {
        blocks[current, default: []].append(line)
      }
    }
    var rank: [String: Int] = [MetricNames.eventsLost: 0, MetricNames.mapFull: 1]
    for (index, family) in families.families.enumerated() {
      for (position, name) in family.kind.seriesNames(base: family.base).enumerated() {
        rank[name] = 2 + index * 8 + position
      }
    }
    var out = ""
    let names = Set(blocks.keys).union(histograms.keys).sorted { (rank[$0] ?? Int.max, $0) < (rank[$1] ?? Int.max, $1) }
    for name in names {
      if let histogram = histograms[name] {
        out += histogram
        continue
      }
      let lines = blocks[name] ?? []
      let header = lines.prefix { $0.hasPrefix("#") }
      for line in header { out += line + "\n" }
      for line in lines.dropFirst(header.count).sorted() { out += line + "\n" }
    }
    return out
  }

  /// Labels of an entry: its keys by name, then `host`.
  func labels(_ family: MetricFamilies.Family, _ keys: [DecodedValue]) -> [(String, String)] {
    zip(family.labels, keys).map { ($0, LabelValue.text($1)) } + [(MetricNames.hostLabel, host)]
  }

  func help(_ family: MetricFamilies.Family) -> String {
    let keys = family.map.keys.isEmpty ? "" : "[" + family.map.keys.map(\.label).joined(separator: ", ") + "]"
    let value = family.map.aggregation == .value ? "a value" : family.map.aggregation.description
    return "swtrace map \(family.map.displayName)\(keys) = \(value)"
  }

  /// Counter and gauge series of a map, created in `registry`.
  func add(_ family: MetricFamilies.Family, _ entries: [MapEntry], to registry: PrometheusCollectorRegistry) {
    let help = help(family)
    func counter(_ name: String, _ labels: [(String, String)], _ helpText: String = help) -> Counter {
      registry.makeCounter(descriptor: descriptor(name, helpText), labels: labels)
    }
    func gauge(_ name: String, _ labels: [(String, String)], _ helpText: String = help) -> Gauge {
      registry.makeGauge(descriptor: descriptor(name, helpText), labels: labels)
    }
    var series = entries.map { (keys: $0.keys, value: $0.value) }
    // A map without keys has one series from the start: 0 until something is counted, so
    // rate() sees the first increase too.
    if series.isEmpty, family.map.keys.isEmpty {
      switch family.kind {
      case .counter: series = [([], .unsigned(0))]
      case .stats: series = [([], .stats(count: 0, total: 0))]
      default: break
      }
    }
    for (keys, value) in series {
      let labels = labels(family, keys)
      switch (family.kind, value) {
      case (.counter, .unsigned(let value)):
        increment(counter(family.base + "_total", labels), by: value)
      case (.counter, .number(let value)):
        increment(counter(family.base + "_total", labels), by: UInt64(clamping: value))
      case (.stats(let signedSum), .stats(let count, let total)):
        increment(counter(family.base + "_count", labels, help + ": number of values"), by: count)
        if signedSum {
          gauge(family.base + "_sum", labels, help + ": sum of values").set(to: Double(total))
        } else {
          increment(
            counter(family.base + "_sum", labels, help + ": sum of values"), by: UInt64(bitPattern: total))
        }
        if count > 0 {
          gauge(family.base + "_avg", labels, help + ": average").set(to: Double(total) / Double(count))
        }
      case (.gauge, .stats(let count, let total)):
        // avg(): the mean of every value seen, not rounded as the text output rounds it.
        if count > 0 { gauge(family.base, labels).set(to: Double(total) / Double(count)) }
      case (.gauge, .number(let value)):
        gauge(family.base, labels).set(to: Double(value))
      case (.gauge, .unsigned(let value)):
        gauge(family.base, labels).set(to: Double(value))
      case (.gauge, .stored(let stored)):
        if let number = LabelValue.number(stored) { gauge(family.base, labels).set(to: number) }
      case (.info, .stored(let stored)):
        gauge(family.base, labels + [("value", LabelValue.text(stored))]).set(to: 1)
      default:
        // `.missing`: min() or max() on CPUs that saw nothing yet; no series.
        break
      }
    }
  }

  func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
    // The registry joins the parts with `_`; the whole name goes in `metricName`.
    MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
  }

  /// Counters take Int64 steps; counts past Int64.max (never in practice) go as a Double.
  func increment(_ counter: Counter, by value: UInt64) {
    if let exact = Int64(exactly: value) {
      counter.increment(by: exact)
    } else {
      counter.increment(by: Double(value))
    }
  }

  /// One histogram family in the text format: `_bucket` series with cumulative counts at
  /// every bound, `+Inf`, and `_count`.
  func writeHistogram(_ family: MetricFamilies.Family, _ entries: [MapEntry]) -> String {
    let bounds = HistogramBounds(family.map)
    // Entries whose keys print alike (two kernel strings that differ only in invalid UTF-8)
    // are one series; their buckets add up.
    var series: [[String]: [UInt64: UInt64]] = [:]
    var order: [[String]] = []
    for entry in entries {
      guard case .histogram(let buckets) = entry.value else { continue }
      let values = entry.keys.map(LabelValue.text)
      if series[values] == nil { order.append(values) }
      series[values, default: [:]].merge(buckets, uniquingKeysWith: &+)
    }
    if order.isEmpty, family.map.keys.isEmpty {
      order = [[]]
      series[[]] = [:]
    }
    var out = "# HELP \(family.base) \(Exposition.escapeHelp(help(family)))\n# TYPE \(family.base) histogram\n"
    for values in order.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
      let labels = zip(family.labels, values).map { "\($0)=\"\(Exposition.escapeLabelValue($1))\"," }.joined()
        + "\(MetricNames.hostLabel)=\"\(Exposition.escapeLabelValue(host))\""
      let (counts, total) = bounds.cumulative(series[values] ?? [:])
      for (bound, count) in zip(bounds.bounds, counts) {
        out += "\(family.base)_bucket{\(labels),le=\"\(bound.le)\"} \(count)\n"
      }
      out += "\(family.base)_bucket{\(labels),le=\"+Inf\"} \(total)\n"
      out += "\(family.base)_count{\(labels)} \(total)\n"
    }
    return out
  }
}

/// Escaping rules of the text exposition format.
public enum Exposition {
  /// Label values: backslash, double quote and line feed are escaped; nothing else is.
  public static func escapeLabelValue(_ value: String) -> String {
    guard value.contains(where: { $0 == "\\" || $0 == "\"" || $0 == "\n" || $0 == "\r\n" }) else { return value }
    var out = ""
    for scalar in value.unicodeScalars {
      switch scalar {
      case "\\": out += "\\\\"
      case "\"": out += "\\\""
      case "\n": out += "\\n"
      default: out.unicodeScalars.append(scalar)
      }
    }
    return out
  }

  /// HELP text: backslash and line feed are escaped.
  public static func escapeHelp(_ value: String) -> String {
    var out = ""
    for scalar in value.unicodeScalars {
      switch scalar {
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      default: out.unicodeScalars.append(scalar)
      }
    }
    return out
  }
}

/// Map keys and stored values as label text, the way swtrace prints them: numbers in
/// decimal, enums and probes by name, IPv4 dotted, IPv6 in RFC 5952 form, strings as text.
public enum LabelValue {
  public static func text(_ value: DecodedValue) -> String { value.text }

  /// A stored value as a gauge value, when it is a number.
  public static func number(_ value: DecodedValue) -> Double? {
    switch value {
    case .unsigned(let v): Double(v)
    case .signed(let v): Double(v)
    case .bool(let v): v ? 1 : 0
    default: nil
    }
  }
}
