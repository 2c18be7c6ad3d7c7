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

/// Serves `GET /metrics` with what `scrape` renders, on `HTTPServer`'s thread.
///
/// One rendering serves every request that arrives within `cacheSeconds` of it, or within
/// twice the time it took to make if that is longer: twenty scrapers at once cost one read
/// of the maps, and a client asking in a loop keeps the server busy at most half the time.
public final class MetricsServer: Sendable {
  public let endpoint: MetricsEndpoint
  private let server: HTTPServer

  /// `scrape` returns the exposition text, or nil when swtrace is shutting down (503).
  public init(
    endpoint: MetricsEndpoint, limits: HTTPLimits = HTTPLimits(), cacheSeconds: Double = 1,
    scrape: @escaping @Sendable () -> [UInt8]?
  ) throws(MetricsServerError) {
    let cache = RenderCache(minimumAge: cacheSeconds, scrape: scrape)
    do {
      server = try HTTPServer(address: endpoint.address, port: endpoint.port, limits: limits) { request in
        Self.route(request, cache: cache)
      }
    } catch {
      throw MetricsServerError(description: "cannot listen on \(endpoint) (\(error.description))")
    }
    var bound = endpoint
    bound.port = server.port
    self.endpoint = bound
  }

  /// Starts serving; throws when the server's thread cannot be created.
  public func start() throws(MetricsServerError) {
    do {
      try server.start()
    } catch {
      throw MetricsServerError(description: "cannot serve metrics on \(endpoint) (\(error.description))")
    }
  }

  /// Why the server stopped on its own and cannot go on, or nil while it serves.
  public var failure: String? { server.failure }

  /// Closes every connection and the listening socket's service. Safe to call more than once.
  public func stop() { server.stop() }

  /// `GET /metrics`: the scrape; `GET /`: a pointer to it; anything else 404.
  static func route(_ request: HTTPRequest, cache: RenderCache) -> HTTPResponse {
    switch request.path {
    case "/metrics":
      guard let text = cache.rendering() else { return HTTPResponse(status: 503, text: "swtrace is stopping\n") }
      return HTTPResponse(status: 200, headers: [("Content-Type", MetricsRenderer.contentType)], body: text)
    case "/":
      return HTTPResponse(
        status: 200, headers: [("Content-Type", "text/html; charset=utf-8")],
        body: Array("<html><body><a href=\"/metrics\">swtrace metrics</a></body></html>\n".utf8))
    default:
      return HTTPResponse(status: 404, text: "not found; the metrics are at /metrics\n")
    }
  }
}

/// The last rendering and when it was made; used on the server's thread only.
final class RenderCache: @unchecked Sendable {
  let minimumAge: Double
  let scrape: @Sendable () -> [UInt8]?
  private var text: [UInt8]?
  private var madeAt = -Double.infinity
  private var cost = 0.0

  init(minimumAge: Double, scrape: @escaping @Sendable () -> [UInt8]?) {
    self.minimumAge = minimumAge
    self.scrape = scrape
  }

  func rendering() -> [UInt8]? {
    let now = HTTPServer.now()
    if let text, now - madeAt < max(minimumAge, 2 * cost) { return text }
    text = scrape()
    let done = HTTPServer.now()
    madeAt = done
    cost = done - now
    return text
  }
}
