public import Sema

/// Prometheus names for the spec's maps: `@drops` becomes `swtrace_drops_total` for counters,
/// and map keys become labels named after their key expressions.
public enum MetricNames {
  /// The prefix of every metric swtrace exports.
  public static let prefix = "swtrace_"

  /// The metrics swtrace exports besides the spec's maps.
  public static let eventsLost = "swtrace_events_lost_total"
  public static let mapFull = "swtrace_map_full_total"

  /// The label every series carries: the node the numbers come from.
  public static let hostLabel = "host"

  /// Characters Prometheus allows in metric and label names are [a-zA-Z0-9_] (and `:` in
  /// metric names, which swtrace leaves to recording rules). Every run of other characters
  /// becomes one `_`, and underscores at either end are dropped: `skb->dev->mtu` reads
  /// `skb_dev_mtu`, `ip.saddr` reads `ip_saddr`. A leading digit gets a `_` in front.
  public static func sanitize(_ text: String) -> String {
    var out = ""
    var pendingUnderscore = false
    for character in text {
      if character.isASCII, character.isLetter || character.isNumber || character == "_" {
        if pendingUnderscore, !out.isEmpty { out.append("_") }
        pendingUnderscore = false
        out.append(character)
      } else {
        pendingUnderscore = true
      }
    }
    while out.hasPrefix("_") { out.removeFirst() }
    while out.hasSuffix("_") { out.removeLast() }
    if let first = out.first, first.isNumber { out = "_" + out }
    return out
  }

  /// The metric base name of a map, before any suffix: `@pkts` -> `swtrace_pkts`; the
  /// nameless map `@` is `swtrace_map`.
  public static func baseName(for map: MapDeclaration) -> String {
    let name = sanitize(map.name)
    return prefix + (name.isEmpty ? "map" : name)
  }

  /// The name of a map's main metric, without collision handling (see `MetricFamilies`).
  public static func metricName(for map: MapDeclaration) -> String {
    MapMetricKind(map).mainName(base: baseName(for: map))
  }

  /// Label names of a map's keys, made unique and kept clear of `reserved` (such as `host`
  /// and a histogram's `le`): `@b[ifname, proto]` -> ["ifname", "proto"]. A key whose text
  /// leaves nothing usable (`@x[1 + 2]` leaves "1_2", which is fine; `@x["-"]` leaves "")
  /// is called `key<position>`.
  public static func labelNames(for map: MapDeclaration, reserved: Set<String> = [hostLabel]) -> [String] {
    var taken = reserved
    return map.keys.enumerated().map { index, key in
      var name = sanitize(key.label)
      if name.isEmpty { name = "key\(index)" }
      // Names starting with `__` are reserved for Prometheus itself.
      while name.hasPrefix("__") { name.removeFirst() }
      var candidate = name
      var serial = 2
      while taken.contains(candidate) {
        candidate = "\(name)_\(serial)"
        serial += 1
      }
      taken.insert(candidate)
      return candidate
    }
  }
}

/// How one map is exported: which Prometheus metric type(s) it becomes.
public enum MapMetricKind: Sendable, Equatable {
  /// `count()`, `sum()` of unsigned values: `<base>_total`.
  case counter
  /// `avg`, `min`, `max`, plain numeric values, `sum()` of signed values (it can go down).
  case gauge
  /// `stats()`: `<base>_count` and `<base>_sum` counters (the sum a gauge for signed
  /// values) and a `<base>_avg` gauge.
  case stats(signedSum: Bool)
  /// `hist` and `lhist`: `<base>_bucket{le=...}`, `<base>_count`.
  case histogram
  /// Plain values that are not numbers (strings, addresses, enum names): an info-style
  /// gauge `<base>{..., value="text"} 1`.
  case info

  public init(_ map: MapDeclaration) {
    let signed = map.valueType.isSigned
    switch map.aggregation {
    case .count: self = .counter
    case .sum: self = signed ? .gauge : .counter
    case .average, .minimum, .maximum: self = .gauge
    case .stats: self = .stats(signedSum: signed)
    case .histogram, .linearHistogram: self = .histogram
    case .value:
      switch map.valueType {
      case .integer, .bool: self = .gauge
      default: self = .info
      }
    }
  }

  /// The name the map's main series carry.
  public func mainName(base: String) -> String {
    switch self {
    case .counter: base + "_total"
    case .stats: base + "_count"
    case .gauge, .histogram, .info: base
    }
  }

  /// Every series name the kind uses: two maps must not share any of them.
  public func seriesNames(base: String) -> [String] {
    switch self {
    case .counter: [base + "_total"]
    case .gauge, .info: [base]
    case .stats: [base + "_count", base + "_sum", base + "_avg"]
    // The family name itself and the names a histogram's series use.
    case .histogram: [base, base + "_bucket", base + "_count", base + "_sum"]
    }
  }

  /// Label names the kind adds itself, which keys must not take.
  public var ownLabels: Set<String> {
    switch self {
    case .histogram: ["le"]
    case .info: ["value"]
    default: []
    }
  }
}

/// The metric names and label names of every map of a spec, fixed once at start so that no
/// two maps (or a map and swtrace's own metrics) ever export the same name.
public struct MetricFamilies: Sendable {
  public struct Family: Sendable {
    public var map: MapDeclaration
    public var kind: MapMetricKind
    /// `swtrace_<name>`, or `swtrace_<name>_2`... when another map already uses a name.
    public var base: String
    public var labels: [String]
    /// The main series name, for messages and documentation.
    public var name: String { kind.mainName(base: base) }
    /// True when `base` is not the plain `swtrace_<name>` because of a collision.
    public var renamed: Bool
  }

  public let families: [Family]

  public init(maps: [MapDeclaration]) {
    var used: Set<String> = [MetricNames.eventsLost, MetricNames.mapFull]
    var families: [Family] = []
    for map in maps {
      let kind = MapMetricKind(map)
      let plain = MetricNames.baseName(for: map)
      var base = plain
      var serial = 2
      while kind.seriesNames(base: base).contains(where: used.contains) {
        base = "\(plain)_\(serial)"
        serial += 1
      }
      used.formUnion(kind.seriesNames(base: base))
      let labels = MetricNames.labelNames(for: map, reserved: kind.ownLabels.union([MetricNames.hostLabel]))
      families.append(Family(map: map, kind: kind, base: base, labels: labels, renamed: base != plain))
    }
    self.families = families
  }
}
