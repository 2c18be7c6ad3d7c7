import CodeGen
public import Output
public import Runtime
import Synchronization

/// Reads a running `TraceSession`'s maps for a scrape. Safe to call from any thread: the
/// maps are read with bpf() syscalls, which need no coordination with the thread polling the
/// ring buffer, and a lock keeps every read ahead of `close()`, after which the session's
/// maps may be freed.
public final class SessionMetrics: Sendable {
  private let session: Mutex<TraceSession?>
  /// The size of the last rendering.
  private let lastSize = Atomic<Int>(0)
  public let printer: MapPrinter
  public let renderer: MetricsRenderer

  public init(session: TraceSession, host: String) {
    self.session = Mutex(session)
    self.printer = MapPrinter(compiled: session.compiled, format: .text)
    self.renderer = MetricsRenderer(maps: session.compiled.userMaps, host: host)
  }

  /// The maps as they are in the kernel now, or nil once `close()` was called.
  public func snapshot() -> MetricsSnapshot? {
    session.withLock { session -> MetricsSnapshot? in
      guard let session else { return nil }
      let maps = session.compiled.userMaps.indices.map { index in
        printer.entries(index, raw: Self.unique(session.userMapEntries(index)))
      }
      return MetricsSnapshot(maps: maps, lostEvents: session.lostEvents, fullMaps: session.fullMapCounts())
    }
  }

  /// The exposition text of a scrape now, or nil once closed.
  public func scrape() -> [UInt8]? {
    guard let snapshot = snapshot() else { return nil }
    let text = renderer.render(snapshot, capacity: lastSize.load(ordering: .relaxed))
    lastSize.store(text.count, ordering: .relaxed)
    return text
  }

  /// Waits for a scrape in progress, then stops reading the session for good.
  public func close() {
    session.withLock { $0 = nil }
  }

  /// Walking a hash map while another thread deletes from it (an interval clause's
  /// `clear()`) can restart the walk and return a key twice; keep each key once.
  static func unique(_ raw: [(key: [UInt8], value: [UInt8])]) -> [(key: [UInt8], value: [UInt8])] {
    var seen = Set<[UInt8]>()
    seen.reserveCapacity(raw.count)
    return raw.filter { seen.insert($0.key).inserted }
  }
}
