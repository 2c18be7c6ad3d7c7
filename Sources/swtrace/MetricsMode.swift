import ArgumentParser
import FoundationEssentials
import Glibc
import PrometheusExport
import Runtime

/// `--metrics ADDR:PORT`: the spec's maps served in the Prometheus text format at
/// `http://ADDR:PORT/metrics`, read from the kernel on every request.
///
/// The HTTP server runs on a thread of its own while the main thread keeps polling the ring
/// buffer; scrapes read the maps with bpf() syscalls under `SessionMetrics`' lock, and
/// `stop()` closes that lock and the server before the session frees its maps. When the
/// server stops on its own (`failure`), the run ends with status 2, so that a service manager
/// restarts swtrace rather than leave it tracing with nobody able to read the numbers.
final class MetricsMode {
  let endpoint: MetricsEndpoint
  private let metrics: SessionMetrics
  private let server: MetricsServer

  /// The `host` label, and the `host` of JSON events: `$SWTRACE_HOST` when set (a DaemonSet
  /// passes the node's name), else this machine's host name.
  static var hostLabel: String {
    if let host = ProcessInfo.processInfo.environment["SWTRACE_HOST"], !host.isEmpty { return host }
    return ProcessInfo.processInfo.hostName
  }

  /// Parses the value of `--metrics`.
  static func parseEndpoint(_ text: String) throws -> MetricsEndpoint {
    switch MetricsEndpoint.parse(text) {
    case .success(let endpoint): return endpoint
    case .failure(let error): throw ValidationError(error.description)
    }
  }

  /// Starts serving `session`'s maps, and says where on stderr. Throws the system-refused
  /// status when the address cannot be bound.
  init(endpoint requested: MetricsEndpoint, session: TraceSession) throws {
    // A scraper that hangs up mid-response must not kill swtrace.
    signal(SIGPIPE, SIG_IGN)
    metrics = SessionMetrics(session: session, host: Self.hostLabel)
    for family in metrics.renderer.families.families where family.renamed {
      Console.note(
        "\(family.map.displayName) is exported as \(family.name): its plain name is taken by another metric")
    }
    let metrics = self.metrics
    do {
      server = try MetricsServer(endpoint: requested) { metrics.scrape() }
    } catch {
      Console.error("\(error.description); is another program listening there? Pick another --metrics ADDR:PORT")
      throw ExitStatus.systemRefused
    }
    endpoint = server.endpoint
    do {
      try server.start()
    } catch {
      Console.error(error.description)
      throw ExitStatus.systemRefused
    }
    Console.progress("serving metrics on \(endpoint.url)")
  }

  /// Why the server stopped on its own, or nil while it serves.
  var failure: String? { server.failure }

  /// Stops the server and every further read of the session. Safe to call more than once.
  func stop() {
    metrics.close()
    server.stop()
  }

  deinit { stop() }
}
