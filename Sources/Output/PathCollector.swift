import CodeGen

/// Groups events by packet for `-f paths`: one block per skb, from its first hop to the
/// point where the kernel frees it. A freed skb's address can be reused at once by another
/// packet, so a free ends the path and the next event at that address starts a new one.
public final class PathCollector {
  public struct Path: Sendable {
    public var skb: UInt64
    public var hops: [DecodedEvent]
  }

  private var open: [UInt64: Path] = [:]
  /// Order in which open paths started, so unfinished ones print oldest first.
  private var order: [UInt64] = []
  private let json: Bool

  public init(json: Bool) { self.json = json }

  /// Adds an event; returns the text of a path it completes, if any.
  public func add(_ event: DecodedEvent) -> String? {
    if open[event.skb] == nil {
      open[event.skb] = Path(skb: event.skb, hops: [])
      order.append(event.skb)
    }
    open[event.skb]!.hops.append(event)
    guard skbFreePoints.contains(event.probe) else { return nil }
    let path = open.removeValue(forKey: event.skb)!
    order.removeAll { $0 == event.skb }
    return render(path, complete: true)
  }

  /// Paths whose packet was not freed while tracing, oldest first.
  public func finish() -> [String] {
    defer {
      open.removeAll()
      order.removeAll()
    }
    return order.compactMap { open[$0] }.map { render($0, complete: false) }
  }

  func render(_ path: Path, complete: Bool) -> String {
    let start = path.hops.first?.timestamp ?? 0
    let text = EventFormatter(format: json ? .json : .text)
    // Each hop's time since the previous one: where the packet spent its time.
    let previous = [start] + path.hops.dropLast().map(\.timestamp)
    if json {
      let hops = zip(path.hops, previous).map { hop, before -> String in
        let values = hop.values.map { "\(JSON.string($0.label)): \(text.json($0.value))" }.joined(separator: ", ")
        // A printf hop carries its formatted text, as a printf event of -f json does.
        let printed = hop.text.map { ", \"text\": \(JSON.string($0))" } ?? ""
        return "{\"probe\": \(JSON.string(hop.probe)), \"dt_ns\": \(hop.timestamp &- start), \"dt_prev_ns\": \(Self.delta(hop.timestamp, since: before)), \"cpu\": \(hop.cpu)\(printed), \"values\": {\(values)}}"
      }
      return "{\"skb\": \"0x\(String(path.skb, radix: 16))\", \"ts\": \(start), \"complete\": \(complete), \"hops\": [\(hops.joined(separator: ", "))]}"
    }
    var out = "packet skb 0x\(String(path.skb, radix: 16)) at \(start) (\(path.hops.count) hop\(path.hops.count == 1 ? "" : "s")\(complete ? "" : ", not freed while tracing")):"
    for (hop, before) in zip(path.hops, previous) {
      let delta = Double(hop.timestamp &- start) / 1000
      let step = Double(Self.delta(hop.timestamp, since: before)) / 1000
      out += "\n  +\(formatMicroseconds(delta))us (+\(formatMicroseconds(step))us) cpu \(hop.cpu) \(hop.probe)"
      if let printed = hop.text {
        // A printf hop is its formatted text, as in -f text, on the hop's line.
        var line = printed
        while line.hasSuffix("\n") { line.removeLast() }
        out += ": " + line.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: " ")
      } else {
        out += " (" + hop.values.map { "\($0.label): \(text.text($0.value))" }.joined(separator: " ") + ")"
      }
    }
    return out
  }

  /// Nanoseconds from `before` to `timestamp`. Events of one packet on different CPUs can
  /// arrive slightly out of order (each CPU's clock reading is taken before its record is
  /// reserved): a hop read before its predecessor counts as 0, never as a huge number.
  static func delta(_ timestamp: UInt64, since before: UInt64) -> UInt64 {
    timestamp >= before ? timestamp - before : 0
  }

  private func formatMicroseconds(_ value: Double) -> String {
    let scaled = (value * 10).rounded() / 10
    return String(scaled)
  }
}
