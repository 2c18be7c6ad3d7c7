public import Output
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
/// Written straight into one byte buffer: a scrape of a map with 10,240 histogram keys is
/// some 350,000 lines, and the server sends the same bytes to every scraper that asks within
/// the cache interval (`MetricsServer`). Families come in a fixed order (swtrace's own
/// metrics, then the maps as the spec declares them) and each family's series sorted, so
/// two scrapes diff well. swtrace's histograms hold no sum of the values, so they have no
/// `_sum` series (Prometheus does not need one for `histogram_quantile()`); see
/// `HistogramBounds` for the `le` bounds.
public struct MetricsRenderer: Sendable {
  public let families: MetricFamilies
  public let host: String

  public init(maps: [MapDeclaration], host: String) {
    self.families = MetricFamilies(maps: maps)
    self.host = host
  }

  /// The content type of the text format.
  public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

  /// `capacity`: the size of the last rendering, so that a large one is built in one
  /// allocation instead of growing (and briefly doubling) as it is written.
  public func render(_ snapshot: MetricsSnapshot, capacity: Int = 0) -> [UInt8] {
    var out = ExpositionWriter()
    out.bytes.reserveCapacity(capacity + capacity / 8)
    let hostLabel = [(MetricNames.hostLabel, host)]
    out.family(
      MetricNames.eventsLost, type: "counter",
      help: "Events the kernel could not write because the ring buffer was full.",
      series: [out.line(MetricNames.eventsLost, hostLabel, .unsigned(snapshot.lostEvents))])
    out.family(
      MetricNames.mapFull, type: "counter",
      help: "Map updates refused because the map was full (raise --map-entries).",
      series: families.families.indices.map { index in
        out.line(
          MetricNames.mapFull, [("map", families.families[index].map.displayName)] + hostLabel,
          .unsigned(index < snapshot.fullMaps.count ? snapshot.fullMaps[index] : 0))
      })
    for (index, family) in families.families.enumerated() {
      let entries = index < snapshot.maps.count ? snapshot.maps[index] : []
      if family.kind == .histogram {
        writeHistogram(family, entries, into: &out)
      } else {
        writeSeries(family, entries, into: &out)
      }
    }
    return out.bytes
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

  /// Counter and gauge families of a map (three for `stats()`), each with its series sorted.
  func writeSeries(_ family: MetricFamilies.Family, _ entries: [MapEntry], into out: inout ExpositionWriter) {
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
    let base = family.base
    // (name, type, help) of each family the map becomes, and its lines.
    var headers: [(String, String, String)] = []
    var lines: [String: [[UInt8]]] = [:]
    func add(_ name: String, _ type: String, _ help: String, _ line: [UInt8]) {
      if lines[name] == nil { headers.append((name, type, help)) }
      lines[name, default: []].append(line)
    }
    let help = help(family)
    for (keys, value) in series {
      let labels = labels(family, keys)
      switch (family.kind, value) {
      case (.counter, .unsigned(let value)):
        add(base + "_total", "counter", help, out.line(base + "_total", labels, .unsigned(value)))
      case (.counter, .number(let value)):
        add(base + "_total", "counter", help, out.line(base + "_total", labels, .unsigned(UInt64(clamping: value))))
      case (.stats(let signedSum), .stats(let count, let total)):
        add(base + "_count", "counter", help + ": number of values", out.line(base + "_count", labels, .unsigned(count)))
        if signedSum {
          add(base + "_sum", "gauge", help + ": sum of values", out.line(base + "_sum", labels, .signed(total)))
        } else {
          add(
            base + "_sum", "counter", help + ": sum of values",
            out.line(base + "_sum", labels, .unsigned(UInt64(bitPattern: total))))
        }
        if count > 0 {
          add(
            base + "_avg", "gauge", help + ": average",
            out.line(base + "_avg", labels, .double(Double(total) / Double(count))))
        }
      case (.gauge, .stats(let count, let total)):
        // avg(): the mean of every value seen, not rounded as the text output rounds it.
        if count > 0 { add(base, "gauge", help, out.line(base, labels, .double(Double(total) / Double(count)))) }
      case (.gauge, .number(let value)):
        add(base, "gauge", help, out.line(base, labels, .signed(value)))
      case (.gauge, .unsigned(let value)):
        add(base, "gauge", help, out.line(base, labels, .unsigned(value)))
      case (.gauge, .stored(let stored)):
        if let number = LabelValue.sampleValue(stored) { add(base, "gauge", help, out.line(base, labels, number)) }
      case (.info, .stored(let stored)):
        add(base, "gauge", help, out.line(base, labels + [("value", LabelValue.text(stored))], .unsigned(1)))
      default:
        // `.missing`: min() or max() on CPUs that saw nothing yet; no series.
        break
      }
    }
    // The order of `seriesNames`: _count, _sum, _avg for stats().
    let order = family.kind.seriesNames(base: base)
    for (name, type, help) in headers.sorted(by: { (order.firstIndex(of: $0.0) ?? 0) < (order.firstIndex(of: $1.0) ?? 0) }) {
      out.family(name, type: type, help: help, series: lines[name] ?? [])
    }
  }

  /// One histogram family: `_bucket` series with cumulative counts at every bound, `+Inf`,
  /// and `_count`.
  func writeHistogram(_ family: MetricFamilies.Family, _ entries: [MapEntry], into out: inout ExpositionWriter) {
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
    out.header(family.base, type: "histogram", help: help(family))
    let bucketName = Array((family.base + "_bucket{").utf8)
    let countName = Array((family.base + "_count{").utf8)
    // The bounds as text once, not once per series.
    let les = bounds.bounds.map { Array(",le=\"\($0.le)\"} ".utf8) }
    let infinity = Array(",le=\"+Inf\"} ".utf8)
    for values in order.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
      var labels: [UInt8] = []
      for (name, value) in zip(family.labels, values) {
        ExpositionWriter.appendLabel(name, value, to: &labels)
        labels.append(UInt8(ascii: ","))
      }
      ExpositionWriter.appendLabel(MetricNames.hostLabel, host, to: &labels)
      let (counts, total) = bounds.cumulative(series[values] ?? [:])
      for (le, count) in zip(les, counts) {
        out.bytes += bucketName
        out.bytes += labels
        out.bytes += le
        out.append(count)
      }
      out.bytes += bucketName
      out.bytes += labels
      out.bytes += infinity
      out.append(total)
      out.bytes += countName
      out.bytes += labels
      out.bytes += [UInt8(ascii: "}"), UInt8(ascii: " ")]
      out.append(total)
    }
  }
}

/// A sample's value as the text format writes it.
public enum SampleValue: Sendable, Equatable {
  case unsigned(UInt64)
  case signed(Int64)
  case double(Double)
}

/// Builds exposition text in one byte buffer.
struct ExpositionWriter {
  var bytes: [UInt8] = []

  /// `# HELP` and `# TYPE` lines of a family.
  mutating func header(_ name: String, type: String, help: String) {
    bytes += Array("# HELP \(name) \(Exposition.escapeHelp(help))\n# TYPE \(name) \(type)\n".utf8)
  }

  /// A family's header and its series, sorted.
  mutating func family(_ name: String, type: String, help: String, series: [[UInt8]]) {
    header(name, type: type, help: help)
    for line in series.sorted(by: { $0.lexicographicallyPrecedes($1) }) { bytes += line }
  }

  /// One sample line, `name{a="x",b="y"} value` and a line feed.
  func line(_ name: String, _ labels: [(String, String)], _ value: SampleValue) -> [UInt8] {
    var line = Array(name.utf8)
    if !labels.isEmpty {
      line.append(UInt8(ascii: "{"))
      for (index, (label, text)) in labels.enumerated() {
        if index > 0 { line.append(UInt8(ascii: ",")) }
        Self.appendLabel(label, text, to: &line)
      }
      line.append(UInt8(ascii: "}"))
    }
    line.append(UInt8(ascii: " "))
    line.append(contentsOf: Self.text(value).utf8)
    line.append(UInt8(ascii: "\n"))
    return line
  }

  /// A count and a line feed.
  mutating func append(_ count: UInt64) {
    bytes.append(contentsOf: String(count).utf8)
    bytes.append(UInt8(ascii: "\n"))
  }

  static func appendLabel(_ name: String, _ value: String, to line: inout [UInt8]) {
    line.append(contentsOf: name.utf8)
    line += [UInt8(ascii: "="), UInt8(ascii: "\"")]
    line.append(contentsOf: Exposition.escapeLabelValue(value).utf8)
    line.append(UInt8(ascii: "\""))
  }

  /// Integers exactly; other numbers as Swift's shortest round-tripping decimal, with the
  /// format's spellings of infinity and NaN.
  static func text(_ value: SampleValue) -> String {
    switch value {
    case .unsigned(let value): String(value)
    case .signed(let value): String(value)
    case .double(let value):
      if value.isNaN {
        "NaN"
      } else if value.isInfinite {
        value > 0 ? "+Inf" : "-Inf"
      } else {
        "\(value)"
      }
    }
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

  /// A stored value as a gauge's value, when it is a number.
  public static func sampleValue(_ value: DecodedValue) -> SampleValue? {
    switch value {
    case .unsigned(let v): .unsigned(v)
    case .signed(let v): .signed(v)
    case .bool(let v): .unsigned(v ? 1 : 0)
    default: nil
    }
  }
}
