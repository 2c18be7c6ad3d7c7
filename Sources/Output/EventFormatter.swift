/// The output formats of `-o`.
public enum OutputFormat: String, Sendable, CaseIterable {
  case text, json
  /// Events grouped per packet, printed when the packet is freed.
  case paths
  case pathsJSON = "paths-json"

  public var isJSON: Bool { self == .json || self == .pathsJSON }
  public var groupsByPacket: Bool { self == .paths || self == .pathsJSON }
}

/// Renders decoded events as lines: ipftrace-style text or one JSON object per line.
public struct EventFormatter: Sendable {
  public var format: OutputFormat

  public init(format: OutputFormat) { self.format = format }

  public func line(_ event: DecodedEvent) -> String {
    switch format {
    case .text, .paths:
      let values = event.values.map { "\($0.label): \(text($0.value))" }.joined(separator: " ")
      return "\(event.timestamp) \(event.cpu) \(event.probe) (\(values))"
    case .json, .pathsJSON:
      let values = event.values.map { "\(JSON.string($0.label)): \(json($0.value))" }.joined(separator: ", ")
      return "{\"probe\": \(JSON.string(event.probe)), \"ts\": \(event.timestamp), \"cpu\": \(event.cpu), \"values\": {\(values)}}"
    }
  }

  func text(_ value: DecodedValue) -> String {
    switch value {
    case .unsigned(let v): String(v)
    case .signed(let v): String(v)
    case .bool(let v): v ? "true" : "false"
    case .text(let v): v
    case .name(let v): v
    case .pointer(let v): "0x" + String(v, radix: 16)
    case .ipv4(let v): IPFormat.ipv4(v)
    case .ipv6(let v): IPFormat.ipv6(v)
    }
  }

  func json(_ value: DecodedValue) -> String {
    switch value {
    case .unsigned(let v): String(v)
    case .signed(let v): String(v)
    case .bool(let v): v ? "true" : "false"
    default: JSON.string(text(value))
    }
  }
}

/// Minimal JSON string escaping, so output stays valid for any kernel string.
public enum JSON {
  public static func string(_ value: String) -> String {
    var out = "\""
    for scalar in value.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      case let c where c.value < 0x20:
        out += "\\u" + String(repeating: "0", count: 4 - String(c.value, radix: 16).count) + String(c.value, radix: 16)
      default: out.unicodeScalars.append(scalar)
      }
    }
    return out + "\""
  }
}

public enum IPFormat {
  public static func ipv4(_ address: UInt32) -> String {
    "\(address >> 24).\((address >> 16) & 0xff).\((address >> 8) & 0xff).\(address & 0xff)"
  }

  /// RFC 5952 text: lower-case hex, the longest run of zero groups shortened to `::`.
  public static func ipv6(_ bytes: [UInt8]) -> String {
    guard bytes.count == 16 else { return "?" }
    let groups = (0..<8).map { UInt16(bytes[2 * $0]) << 8 | UInt16(bytes[2 * $0 + 1]) }
    var bestStart = -1
    var bestLength = 0
    var index = 0
    while index < 8 {
      if groups[index] == 0 {
        var end = index
        while end < 8, groups[end] == 0 { end += 1 }
        if end - index > bestLength, end - index > 1 {
          bestStart = index
          bestLength = end - index
        }
        index = end
      } else {
        index += 1
      }
    }
    func hex(_ range: Range<Int>) -> String { groups[range].map { String($0, radix: 16) }.joined(separator: ":") }
    if bestStart < 0 { return hex(0..<8) }
    return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
  }
}
