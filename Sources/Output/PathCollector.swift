import CodeGen

/// How much `-f paths` may hold: paths are kept in memory until the kernel frees their skb,
/// and a packet whose free is never seen (its free point not traced, the trace stopped
/// first) must not keep memory forever.
public struct PathLimits: Sendable, Hashable {
  /// Open paths at most (`--paths-max`): beyond, the oldest is printed as it is.
  public var maxOpenPaths: Int
  /// Nanoseconds a path may stay open (`--paths-max-age`): older ones are printed as they
  /// are. nil: no limit.
  public var maxAgeNanoseconds: UInt64?
  /// Hops one path may hold: a path that reaches it is printed, cut, and the packet's next
  /// hops start a new path.
  public var maxHopsPerPath: Int
  /// Hops all open paths may hold together: beyond, the oldest paths are printed.
  public var maxHeldHops: Int

  public init(
    maxOpenPaths: Int = 10_000, maxAgeNanoseconds: UInt64? = 10_000_000_000, maxHopsPerPath: Int = 1_000,
    maxHeldHops: Int = 250_000
  ) {
    self.maxOpenPaths = maxOpenPaths
    self.maxAgeNanoseconds = maxAgeNanoseconds
    self.maxHopsPerPath = maxHopsPerPath
    self.maxHeldHops = maxHeldHops
  }
}

/// Paths printed before their packet was freed, by why.
public struct PathEvictions: Sendable, Hashable {
  /// The oldest open path made room for a new one (`maxOpenPaths`, `maxHeldHops`).
  public var full = 0
  /// Open longer than `maxAgeNanoseconds`.
  public var aged = 0
  /// Reached `maxHopsPerPath`.
  public var cut = 0
  /// Ended because the skb's address came back at a point the path had passed already: the
  /// kernel freed the packet where no probe looks, and reused the memory for a new one.
  public var reused = 0

  /// Paths printed before their packet's free was seen.
  public var total: Int { full + aged + cut + reused }

  public init() {}
}

/// Groups events by packet for `-f paths`: one block per skb, from its first hop to the
/// point where the kernel frees it. A freed skb's address can be reused at once by another
/// packet, so a free ends the path and the next event at that address starts a new one.
/// Memory is bounded by `PathLimits`; what they make it print early is counted in
/// `evictions`.
public final class PathCollector {
  public struct Path: Sendable {
    public var skb: UInt64
    public var hops: [DecodedEvent]
  }

  /// A path printed, and how many events it carries.
  public typealias Printed = (text: String, events: Int)

  private struct OpenPath {
    var serial: Int
    var path: Path
    /// The tracepoint hops seen, by probe, device and namespace.
    var points: Set<HopPoint> = []
  }

  /// Where a hop happened: its probe, and the device and namespace it printed.
  private struct HopPoint: Hashable {
    var probe: String
    var ifname: DecodedValue?
    var netns: DecodedValue?

    init(_ event: DecodedEvent) {
      probe = event.probe
      ifname = event.values.first { $0.label == "ifname" }?.value
      netns = event.values.first { $0.label == "netns" }?.value
    }
  }

  private enum Ending {
    case freed, unfinished, cut, reused
  }

  private var open: [UInt64: OpenPath] = [:]
  /// Open paths in the order they started, oldest from `orderHead` on; entries whose serial
  /// no longer matches an open path are skipped (they ended meanwhile).
  private var order: [(skb: UInt64, serial: Int)] = []
  private var orderHead = 0
  private var nextSerial = 0
  private var heldHops = 0
  private let json: Bool
  public let limits: PathLimits
  /// Probes a packet passes once at a given device and namespace (tracepoints): an skb seen
  /// there again is a new packet at a reused address. Kernel functions are left out: a packet
  /// meets `skb_push` and the like many times on one device.
  private let passedOnce: Set<String>
  public private(set) var evictions = PathEvictions()

  public init(json: Bool, limits: PathLimits = PathLimits(), passedOnce: Set<String> = []) {
    self.json = json
    self.limits = limits
    self.passedOnce = passedOnce
  }

  /// Paths open now.
  public var openCount: Int { open.count }

  /// Adds an event; returns the paths it completes, cuts or pushes out, oldest first.
  public func add(_ event: DecodedEvent) -> [Printed] {
    var printed: [Printed] = []
    // Where the kernel frees an skb without a tracepoint (a deferred or cached free), the
    // free is not seen; the address's next packet shows itself by passing a point again.
    let point = passedOnce.contains(event.probe) ? HopPoint(event) : nil
    if let point, open[event.skb]?.points.contains(point) == true {
      evictions.reused += 1
      printed.append(close(event.skb, .reused))
    }
    if open[event.skb] == nil {
      open[event.skb] = OpenPath(serial: nextSerial, path: Path(skb: event.skb, hops: []))
      order.append((event.skb, nextSerial))
      nextSerial += 1
    }
    open[event.skb]!.path.hops.append(event)
    if let point { open[event.skb]!.points.insert(point) }
    heldHops += 1
    let hops = open[event.skb]!.path.hops.count
    if skbFreePoints.contains(event.probe) {
      printed.append(close(event.skb, .freed))
    } else if hops >= limits.maxHopsPerPath {
      evictions.cut += 1
      printed.append(close(event.skb, .cut))
    }
    while open.count > limits.maxOpenPaths || heldHops > limits.maxHeldHops, let oldest = oldestOpen() {
      evictions.full += 1
      printed.append(close(oldest, .unfinished))
    }
    compactOrder()
    return printed
  }

  /// Paths that started more than the age limit before `now` (kernel monotonic nanoseconds,
  /// the clock of event timestamps), oldest first.
  public func expire(now: UInt64) -> [Printed] {
    guard let maxAge = limits.maxAgeNanoseconds else { return [] }
    var printed: [Printed] = []
    while let oldest = oldestOpen(), let start = open[oldest]?.path.hops.first?.timestamp, now > start,
      now - start > maxAge
    {
      evictions.aged += 1
      printed.append(close(oldest, .unfinished))
    }
    compactOrder()
    return printed
  }

  /// Paths whose packet was not freed while tracing, oldest first.
  public func finish() -> [Printed] {
    var printed: [Printed] = []
    while let oldest = oldestOpen() { printed.append(close(oldest, .unfinished)) }
    order.removeAll()
    orderHead = 0
    return printed
  }

  /// The skb of the oldest open path, skipping order entries of paths that ended.
  private func oldestOpen() -> UInt64? {
    while orderHead < order.count {
      let entry = order[orderHead]
      if open[entry.skb]?.serial == entry.serial { return entry.skb }
      orderHead += 1
    }
    return nil
  }

  /// Keeps `order` in proportion to the open paths: ended entries are dropped once they are
  /// the larger part.
  private func compactOrder() {
    guard order.count > 1024, order.count > 2 * (open.count + 1) else { return }
    order = order[orderHead...].filter { open[$0.skb]?.serial == $0.serial }
    orderHead = 0
  }

  private func close(_ skb: UInt64, _ ending: Ending) -> Printed {
    let path = open.removeValue(forKey: skb)!.path
    heldHops -= path.hops.count
    return (render(path, ending), path.hops.count)
  }

  private func render(_ path: Path, _ ending: Ending) -> String {
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
      let cut = ending == .cut ? ", \"cut\": true" : ending == .reused ? ", \"reused\": true" : ""
      return "{\"skb\": \"0x\(String(path.skb, radix: 16))\", \"ts\": \(start), \"complete\": \(ending == .freed)\(cut), \"hops\": [\(hops.joined(separator: ", "))]}"
    }
    let note =
      switch ending {
      case .freed: ""
      case .unfinished: ", not freed while tracing"
      case .cut: ", cut at \(limits.maxHopsPerPath) hops: the packet's next hops start a new path"
      case .reused: ", freed where no probe looks: its address was reused by the next packet"
      }
    var out = "packet skb 0x\(String(path.skb, radix: 16)) at \(start) (\(path.hops.count) hop\(path.hops.count == 1 ? "" : "s")\(note)):"
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
