import Dispatch
import FlyingFox
import FlyingSocks
import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Where `--metrics` listens: an IPv4 address, an IPv6 address in brackets, or `localhost`,
/// then a port. `127.0.0.1:9464`, `0.0.0.0:9464`, `[::]:9464`, `:9464` (every IPv4 address).
public struct MetricsEndpoint: Sendable, Equatable, CustomStringConvertible {
  /// The numeric address to bind.
  public var address: String
  public var port: UInt16
  public var isIPv6: Bool { address.contains(":") }

  public init(address: String, port: UInt16) {
    self.address = address
    self.port = port
  }

  /// Parses `ADDR:PORT`; the error says what is wrong, in words for the command line.
  public static func parse(_ text: String) -> Result<MetricsEndpoint, MetricsEndpointError> {
    guard let colon = text.lastIndex(of: ":") else {
      return .failure(.init("'\(text)' is not ADDR:PORT, such as 127.0.0.1:9464 or [::]:9464"))
    }
    var host = String(text[..<colon])
    let portText = text[text.index(after: colon)...]
    guard let port = UInt16(portText) else {
      return .failure(.init("'\(portText)' is not a port number (0-65535) in '\(text)'"))
    }
    if host.hasPrefix("[") && host.hasSuffix("]") {
      host = String(host.dropFirst().dropLast())
      guard isNumeric(host, family: AF_INET6) else {
        return .failure(.init("'\(host)' is not an IPv6 address in '\(text)'"))
      }
      return .success(MetricsEndpoint(address: host, port: port))
    }
    if host.isEmpty { host = "0.0.0.0" }
    if host == "localhost" { host = "127.0.0.1" }
    guard isNumeric(host, family: AF_INET) else {
      if host.contains(":") {
        return .failure(.init("write an IPv6 address in brackets: [\(host)]:\(port)"))
      }
      return .failure(.init("'\(host)' is not an IP address; give the address to listen on, such as 0.0.0.0 or 127.0.0.1"))
    }
    return .success(MetricsEndpoint(address: host, port: port))
  }

  static func isNumeric(_ host: String, family: Int32) -> Bool {
    var buffer = [UInt8](repeating: 0, count: 16)
    return inet_pton(family, host, &buffer) == 1
  }

  /// `127.0.0.1:9464`, `[::1]:9464`.
  public var description: String { isIPv6 ? "[\(address)]:\(port)" : "\(address):\(port)" }
  public var url: String { "http://\(description)/metrics" }
}

public struct MetricsEndpointError: Error, Sendable, CustomStringConvertible {
  public let description: String
  init(_ description: String) { self.description = description }
}

/// Why the metrics server could not start.
public struct MetricsServerError: Error, Sendable, CustomStringConvertible {
  public let description: String
}

/// A FlyingFox HTTP server that answers `GET /metrics` with whatever `scrape` returns at the
/// time of the request. It runs on Swift concurrency's threads; `start()` and `stop()` block
/// the calling thread (swtrace's main thread, which polls the ring buffer) until done.
public final class MetricsServer: Sendable {
  public let endpoint: MetricsEndpoint
  private let server: HTTPServer
  private let state = StateBox()

  private final class StateBox: Sendable {
    let mutex = Mutex(State())
    func withLock<R: Sendable>(_ body: (inout State) -> R) -> R { mutex.withLock { body(&$0) } }
  }

  private struct State: Sendable {
    var task: Task<Void, Never>?
    var started = false
    var finished = false
    var failure: String?
  }

  /// `scrape` returns the exposition text, or nil when swtrace is shutting down (503).
  public init(endpoint: MetricsEndpoint, scrape: @escaping @Sendable () -> String?) throws(MetricsServerError) {
    self.endpoint = endpoint
    let address: any SocketAddress
    do {
      if endpoint.isIPv6 {
        address = try sockaddr_in6.inet6(ip6: endpoint.address, port: endpoint.port)
      } else {
        address = try sockaddr_in.inet(ip4: endpoint.address, port: endpoint.port)
      }
    } catch {
      throw MetricsServerError(description: "cannot listen on \(endpoint) (\(Self.describe(error)))")
    }
    server = HTTPServer(
      config: HTTPServer.Configuration(address: address, timeout: 30, logger: SilentLogger()),
      handler: MetricsHandler(scrape: scrape))
  }

  /// Binds and starts serving; returns the port it listens on (the one asked for, or the one
  /// the kernel chose for port 0). Throws when it cannot bind within `timeout` seconds.
  @discardableResult
  public func start(timeout: Double = 5) throws(MetricsServerError) -> UInt16 {
    let server = self.server
    let state = self.state
    let task = Task.detached {
      do {
        try await server.run()
      } catch {
        let started = state.withLock { state in
          state.failure = Self.describe(error)
          return state.started && state.task != nil
        }
        // A failure after start (not a stop() asked for) is worth a line; one before is
        // reported by start().
        if started {
          FileHandle.standardError.write(Data("swtrace: the metrics server stopped: \(Self.describe(error))\n".utf8))
        }
      }
      state.withLock { $0.finished = true }
    }
    state.withLock { $0.task = task }
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
      let (finished, failure) = state.withLock { ($0.finished, $0.failure) }
      if finished {
        throw MetricsServerError(
          description: "cannot listen on \(endpoint) (\(failure ?? "the server stopped at once"))")
      }
      let port = blocking(seconds: 2) { () -> UInt16? in
        guard await server.isListening else { return nil }
        switch await server.listeningAddress {
        case .ip4(_, let port)?, .ip6(_, let port)?: return port
        default: return nil
        }
      }
      if let port = port ?? nil {
        state.withLock { $0.started = true }
        return port
      }
      usleep(10_000)
    }
    stop()
    throw MetricsServerError(description: "cannot listen on \(endpoint) (the server did not start within \(Int(timeout)) s)")
  }

  /// Closes the listening socket, lets requests in progress finish (at most `timeout`
  /// seconds), and waits for the server task to end. Safe to call more than once.
  public func stop(timeout: Double = 2) {
    guard let task = state.withLock({ state -> Task<Void, Never>? in
      defer { state.task = nil }
      return state.task
    }) else { return }
    let server = self.server
    _ = blocking(seconds: timeout + 3) { () -> Bool in
      await server.stop(timeout: timeout)
      task.cancel()
      await task.value
      return true
    }
  }

  static func describe(_ error: any Error) -> String {
    if let socketError = error as? SocketError {
      switch socketError {
      case .failed(_, _, let message): return message
      default: return "\(socketError)"
      }
    }
    return "\(error)"
  }
}

/// Runs `body` on Swift concurrency's threads and waits for it, at most `seconds`; nil when
/// it did not finish in time. Only for threads outside the concurrency pool (swtrace's main
/// thread), which may block.
func blocking<T: Sendable>(seconds: Double, _ body: @escaping @Sendable () async -> T) -> T? {
  let result = Mutex<T?>(nil)
  let done = DispatchSemaphore(value: 0)
  Task.detached {
    let value = await body()
    result.withLock { $0 = value }
    done.signal()
  }
  guard done.wait(timeout: .now() + seconds) == .success else { return nil }
  return result.withLock { $0 }
}

/// `GET /metrics`: the scrape; `GET /`: a pointer to it; anything else 404.
struct MetricsHandler: HTTPHandler {
  let scrape: @Sendable () -> String?

  func handleRequest(_ request: HTTPRequest) async throws -> HTTPResponse {
    guard request.method == .GET || request.method == .HEAD else {
      return HTTPResponse(statusCode: .methodNotAllowed, headers: HTTPHeaders([HTTPHeader("Allow"): "GET, HEAD"]))
    }
    switch request.path {
    case "/metrics":
      guard let text = scrape() else {
        return HTTPResponse(
          statusCode: .serviceUnavailable, headers: HTTPHeaders([.contentType: "text/plain; charset=utf-8"]),
          body: Data("swtrace is stopping\n".utf8))
      }
      return HTTPResponse(
        statusCode: .ok, headers: HTTPHeaders([.contentType: MetricsRenderer.contentType]),
        body: request.method == .HEAD ? Data() : Data(text.utf8))
    case "/":
      return HTTPResponse(
        statusCode: .ok, headers: HTTPHeaders([.contentType: "text/html; charset=utf-8"]),
        body: Data("<html><body><a href=\"/metrics\">swtrace metrics</a></body></html>\n".utf8))
    default:
      return HTTPResponse(statusCode: .notFound)
    }
  }
}

/// FlyingFox's default logger prints every connection to stdout, which is swtrace's output.
/// A client that hangs up is nothing to report, and a server that fails is reported by
/// `MetricsServer` itself.
struct SilentLogger: Logging {
  func logDebug(_ debug: @autoclosure () -> String) {}
  func logInfo(_ info: @autoclosure () -> String) {}
  func logWarning(_ warning: @autoclosure () -> String) {}
  func logError(_ error: @autoclosure () -> String) {}
  func logCritical(_ critical: @autoclosure () -> String) {}
}
