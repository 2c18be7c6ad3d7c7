import Glibc
import SwtraceSyntax

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
  /// Added to JSON events so lines from many nodes can be merged by a log pipeline.
  public var host: String?
  /// Wall-clock nanoseconds minus monotonic nanoseconds, measured at start: event
  /// timestamps are `bpf_ktime_get_ns()` (monotonic), JSON also carries the wall-clock time.
  public var wallClockOffset: Int64?

  public init(format: OutputFormat, host: String? = nil, wallClockOffset: Int64? = nil) {
    self.format = format
    self.host = host
    self.wallClockOffset = wallClockOffset
  }

  /// The offset between CLOCK_REALTIME and CLOCK_MONOTONIC now, in nanoseconds.
  public static func currentWallClockOffset() -> Int64 {
    var realtime = timespec()
    var monotonic = timespec()
    clock_gettime(CLOCK_REALTIME, &realtime)
    clock_gettime(CLOCK_MONOTONIC, &monotonic)
    let real = Int64(realtime.tv_sec) * 1_000_000_000 + Int64(realtime.tv_nsec)
    let mono = Int64(monotonic.tv_sec) * 1_000_000_000 + Int64(monotonic.tv_nsec)
    return real - mono
  }

  /// CLOCK_MONOTONIC now in nanoseconds: the clock of `bpf_ktime_get_ns()`, which stamps events.
  public static func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
  }

  public func line(_ event: DecodedEvent) -> String {
    switch format {
    case .text where event.text != nil:
      // printf output is the user's own line; its final newline is the line's end.
      var text = event.text!
      // The stack --stack adds comes after the text, in its own lines.
      if let stack = event.stackAfterText { text = (text.hasSuffix("\n") ? String(text.dropLast()) : text) + stack.text }
      return text.hasSuffix("\n") ? String(text.dropLast()) : text
    case .text, .paths:
      let values = event.values.map { "\($0.label): \(text($0.value))" }.joined(separator: " ")
      return "\(event.timestamp) \(event.cpu) \(event.probe) (\(values))"
    case .json, .pathsJSON:
      let values = event.values.map { "\(JSON.string($0.label)): \(json($0.value))" }.joined(separator: ", ")
      var extra = ""
      if let wallClockOffset { extra += ", \"wall_ts\": \(Int64(bitPattern: event.timestamp) &+ wallClockOffset)" }
      if let host { extra += ", \"host\": \(JSON.string(host))" }
      if let text = event.text { extra += ", \"text\": \(JSON.string(text))" }
      return "{\"probe\": \(JSON.string(event.probe)), \"ts\": \(event.timestamp), \"cpu\": \(event.cpu)\(extra), \"values\": {\(values)}}"
    }
  }

  func text(_ value: DecodedValue) -> String { value.text }

  func json(_ value: DecodedValue) -> String {
    switch value {
    case .unsigned(let v): String(v)
    case .signed(let v): String(v)
    case .bool(let v): v ? "true" : "false"
    // An array of frames; empty when the kernel recorded none (the reason is counted and
    // reported at exit).
    case .kernelStack(let stack): "[" + stack.frames.map(JSON.string).joined(separator: ", ") + "]"
    // JSON escapes control characters its own way.
    case .text(let v): JSON.string(v)
    case .absent: "null"
    default: JSON.string(text(value))
    }
  }
}

/// JSON string escaping, so output stays valid for any kernel string: every control
/// character (C0, DEL and C1, which a terminal showing the JSON would act on) as `\uXXXX`.
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
      case let c where TerminalText.isControl(c):
        out += "\\u" + String(repeating: "0", count: 4 - String(c.value, radix: 16).count) + String(c.value, radix: 16)
      default: out.unicodeScalars.append(scalar)
      }
    }
    return out + "\""
  }
}

extension DecodedValue {
  /// The value as swtrace prints it: numbers in decimal, enums and probes by name, IPv4
  /// dotted, IPv6 in RFC 5952 form, strings as text, pointers in hex.
  public var text: String {
    switch self {
    case .unsigned(let v): String(v)
    case .signed(let v): String(v)
    case .bool(let v): v ? "true" : "false"
    // Strings come from anywhere (a process names itself): never raw to a terminal.
    case .text(let v): TerminalText.escaped(v)
    case .name(let v): v
    case .pointer(let v): "0x" + String(v, radix: 16)
    case .ipv4(let v): IPAddressText.formatIPv4(v)
    case .ipv6(let v): IPAddressText.formatIPv6(v)
    case .kernelStack(let v): v.text
    case .absent: "-"
    }
  }
}
