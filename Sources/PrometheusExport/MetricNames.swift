public import Sema

/// Prometheus names for the spec's maps: `@drops` becomes `swtrace_drops_total` for counters,
/// and map keys become labels named after their key expressions.
public enum MetricNames {
  /// Characters Prometheus allows in metric and label names are [a-zA-Z0-9_]; others become `_`.
  public static func sanitize(_ text: String) -> String {
    var out = String(text.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") ? $0 : "_" })
    if let first = out.first, first.isNumber { out = "_" + out }
    return out
  }

  public static func metricName(for map: MapDeclaration) -> String {
    let base = "swtrace_" + (map.name.isEmpty ? "map" : sanitize(map.name))
    switch map.aggregation {
    case .count, .sum: return base + "_total"
    default: return base
    }
  }

  /// Label names of a map's keys, made unique: `@b[ifname, proto]` -> ["ifname", "proto"].
  public static func labelNames(for map: MapDeclaration) -> [String] {
    var seen: [String: Int] = [:]
    return map.keys.enumerated().map { index, key in
      var name = sanitize(key.label)
      if name.isEmpty || name == "_" { name = "key\(index)" }
      seen[name, default: 0] += 1
      return seen[name]! > 1 ? "\(name)_\(seen[name]!)" : name
    }
  }
}
