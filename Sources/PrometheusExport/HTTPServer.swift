internal import CSocketShims
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// What a small HTTP/1.1 server allows a client, in bytes, connections and seconds. Every
/// client is bounded by these, whatever it sends or fails to read.
public struct HTTPLimits: Sendable {
  /// Connections served at once. A new one past the cap closes the connection that has
  /// waited longest for a request; when every connection is busy answering, new ones wait in
  /// the kernel's backlog until one is done.
  public var maxConnections = 64
  /// The request line and headers together; a longer request line is answered 414, longer
  /// headers 431, and the connection is closed.
  public var maxHeadBytes = 8 << 10
  /// A request body (none is expected) is read and dropped up to this size; a longer one is
  /// answered 413 and the connection closed.
  public var maxBodyBytes = 64 << 10
  /// From the first byte of a request (or from connecting) to its last: a slower client is
  /// answered 408 and closed.
  public var requestTimeout = 10.0
  /// A kept-alive connection with no request in progress is closed after this long.
  public var idleTimeout = 60.0
  /// A response the client takes no byte of for this long is abandoned and the connection closed.
  public var writeStallTimeout = 10.0
  /// When accepting fails for want of file descriptors or memory (EMFILE, ENFILE, ENOBUFS,
  /// ENOMEM) and nothing could be freed, accepting pauses this long, doubling up to 1 s.
  public var acceptBackoff = 0.1
  /// Accepting failing for this long without one connection served: the server gives up.
  public var giveUpAfter = 60.0

  public init() {}
}

/// A request as the handler sees it: the method and the path, without the query.
public struct HTTPRequest: Sendable {
  public var method: String
  public var path: String
}

/// A complete response; `body` is shared, not copied, between connections sent the same one.
public struct HTTPResponse: Sendable {
  public var status: Int
  public var headers: [(String, String)]
  public var body: [UInt8]

  public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
    self.status = status
    self.headers = headers
    self.body = body
  }

  public init(status: Int, text: String) {
    self.init(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")], body: Array(text.utf8))
  }

  static func reason(_ status: Int) -> String {
    switch status {
    case 200: "OK"
    case 400: "Bad Request"
    case 404: "Not Found"
    case 405: "Method Not Allowed"
    case 408: "Request Timeout"
    case 413: "Content Too Large"
    case 414: "URI Too Long"
    case 431: "Request Header Fields Too Large"
    case 501: "Not Implemented"
    case 503: "Service Unavailable"
    case 505: "HTTP Version Not Supported"
    default: "Status"
    }
  }
}

/// Why the server could not start or stopped for good.
public struct HTTPServerError: Error, Sendable, CustomStringConvertible {
  public let description: String
}

/// A small HTTP/1.1 server on plain sockets: one thread of its own, non-blocking sockets and
/// poll(2), GET and HEAD only. Each connection has one deadline at a time (see `HTTPLimits`),
/// requests and bodies are bounded, and a shortage of file descriptors closes idle
/// connections and pauses accepting rather than ending the server. The handler runs on the
/// server's thread, one request at a time.
public final class HTTPServer: @unchecked Sendable {
  /// The port it listens on (the kernel's choice when asked for port 0).
  public let port: UInt16
  public let limits: HTTPLimits

  private let listener: Int32
  /// A pipe: `stop()` writes a byte to `wakeWriter`, which ends the thread's poll.
  private let wake: Int32
  private let wakeWriter: Int32
  private let handler: (HTTPRequest) -> HTTPResponse
  private let stopping = Atomic<Bool>(false)
  private let stopped = Atomic<Bool>(false)
  private let failureText = Mutex<String?>(nil)
  private var thread: pthread_t?

  // Owned by the server thread once it runs.
  private var connections: [Connection] = []
  private var nextSerial = 0
  /// A descriptor kept open to be given up when accept() fails with EMFILE: the connection
  /// it then lets in is answered 503 and closed at once, instead of waiting in the backlog.
  private var reserve: Int32 = -1
  private var acceptPausedUntil = 0.0
  private var backoff = 0.0
  private var acceptFailingSince: Double?

  /// Binds and listens; the thread starts with `start()`.
  public init(
    address: String, port: UInt16, limits: HTTPLimits = HTTPLimits(),
    handler: @escaping (HTTPRequest) -> HTTPResponse
  ) throws(HTTPServerError) {
    self.limits = limits
    self.handler = handler
    let (listener, bound) = try Self.listen(address: address, port: port)
    self.listener = listener
    self.port = bound
    var ends: [Int32] = [-1, -1]
    guard pipe(&ends) == 0 else {
      let code = errno
      close(listener)
      throw HTTPServerError(description: "pipe: \(Self.describe(code))")
    }
    for end in ends {
      _ = fcntl(end, F_SETFD, FD_CLOEXEC)
      _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
    }
    wake = ends[0]
    wakeWriter = ends[1]
    reserve = open("/dev/null", O_RDONLY | O_CLOEXEC)
  }

  deinit {
    stop()
    close(listener)
    close(wake)
    close(wakeWriter)
    if reserve >= 0 { close(reserve) }
  }

  /// Starts the server's thread. Its stack is small (the handler's work is on the heap), so
  /// that it starts under a tight address-space limit too; when the thread cannot be
  /// created the error says why.
  public func start() throws(HTTPServerError) {
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setstacksize(&attributes, 1 << 20)
    // The thread takes no signal: the main thread's handlers decide what a signal means.
    var all = sigset_t()
    var previous = sigset_t()
    sigfillset(&all)
    pthread_sigmask(SIG_SETMASK, &all, &previous)
    defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
    var created = pthread_t()
    let context = Unmanaged.passRetained(self).toOpaque()
    let result = pthread_create(
      &created, &attributes,
      { context in
        let server = Unmanaged<HTTPServer>.fromOpaque(context!).takeRetainedValue()
        server.run()
        return nil
      }, context)
    guard result == 0 else {
      Unmanaged<HTTPServer>.fromOpaque(context).release()
      throw HTTPServerError(description: "cannot start the server's thread: \(Self.describe(result))")
    }
    thread = created
  }

  /// Why the server stopped on its own, or nil while it runs (or after `stop()`).
  public var failure: String? { failureText.withLock { $0 } }

  /// Ends the thread (it notices within a request's handling) and closes every connection.
  /// Safe to call more than once.
  public func stop() {
    guard let thread else { return }
    self.thread = nil
    stopping.store(true, ordering: .releasing)
    var byte: UInt8 = 1
    _ = Glibc.write(wakeWriter, &byte, 1)
    pthread_join(thread, nil)
  }

  // MARK: - The loop

  private func run() {
    defer {
      for connection in connections { close(connection.fd) }
      connections.removeAll()
      stopped.store(true, ordering: .releasing)
    }
    var pollSet: [pollfd] = []
    var ENOMEMSince: Double?
    while !stopping.load(ordering: .acquiring) {
      let now = Self.now()
      // At the cap, accept only when a connection waiting for a request can make room.
      let accepting =
        now >= acceptPausedUntil
        && (connections.count < limits.maxConnections || connections.contains { $0.isWaiting })
      pollSet.removeAll(keepingCapacity: true)
      pollSet.append(pollfd(fd: wake, events: Int16(POLLIN), revents: 0))
      pollSet.append(pollfd(fd: accepting ? listener : -1, events: Int16(POLLIN), revents: 0))
      for connection in connections {
        pollSet.append(pollfd(fd: connection.fd, events: Int16(connection.isWriting ? POLLOUT : POLLIN), revents: 0))
      }
      var nextWake = now + 1
      for connection in connections { nextWake = min(nextWake, connection.deadline) }
      if !accepting && acceptPausedUntil > now { nextWake = min(nextWake, acceptPausedUntil) }
      let timeout = Int32(max(0, min(1000, (nextWake - now) * 1000)).rounded(.up))
      let ready = poll(&pollSet, nfds_t(pollSet.count), timeout)
      if ready < 0 {
        let code = errno
        if code == EINTR { continue }
        // Out of kernel memory for the poll set: wait and retry, within the give-up time.
        if code == ENOMEM || code == EAGAIN {
          let since = ENOMEMSince ?? now
          ENOMEMSince = since
          if now - since > limits.giveUpAfter { return fail("poll: \(Self.describe(code)) for \(Int(now - since)) s") }
          usleep(100_000)
          continue
        }
        return fail("poll: \(Self.describe(code))")
      }
      ENOMEMSince = nil
      if pollSet[0].revents != 0 { break }
      // Connections first, so that a full table can be freed before accepting.
      var index = 2
      var closed: Set<Int> = []
      for position in connections.indices {
        let events = pollSet[index].revents
        index += 1
        guard events != 0 else { continue }
        if !service(position, events: events) { closed.insert(position) }
      }
      let after = Self.now()
      for position in connections.indices where !closed.contains(position) && connections[position].deadline <= after {
        expire(position)
        closed.insert(position)
      }
      if !closed.isEmpty {
        for position in closed { close(connections[position].fd) }
        connections = connections.enumerated().filter { !closed.contains($0.offset) }.map(\.element)
      }
      if accepting, pollSet[1].revents != 0, let reason = acceptConnections() {
        return fail(reason)
      }
    }
  }

  private func fail(_ reason: String) {
    failureText.withLock { $0 = reason }
  }

  // MARK: - Accepting

  /// Accepts what is waiting (at most a handful at a time, so one busy listener cannot
  /// starve the connections). Returns a reason to give up, or nil.
  private func acceptConnections() -> String? {
    for _ in 0..<16 {
      let fd = swt_accept_nonblocking(listener)
      if fd >= 0 {
        acceptFailingSince = nil
        backoff = 0
        if connections.count >= limits.maxConnections, !closeOldestWaiting() {
          // Every connection is busy answering: this one is told to come back.
          refuse(fd)
          return nil
        }
        nextSerial += 1
        connections.append(Connection(fd: fd, serial: nextSerial, now: Self.now(), limits: limits))
        continue
      }
      let code = errno
      switch code {
      case EAGAIN, EWOULDBLOCK:
        return nil
      case EINTR, ECONNABORTED, EPROTO, ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP,
        ENETUNREACH, EPERM:
        // The client's trouble, not the server's (accept(2) says to retry these).
        continue
      case EMFILE, ENFILE, ENOBUFS, ENOMEM:
        let now = Self.now()
        let since = acceptFailingSince ?? now
        acceptFailingSince = since
        if now - since > limits.giveUpAfter {
          return "cannot accept connections: \(Self.describe(code)) for \(Int(now - since)) s"
        }
        // Free a descriptor: the oldest connection waiting for a request, else the reserve,
        // spent on telling the waiting client to come back later.
        if closeOldestWaiting() { continue }
        if reserve >= 0 {
          close(reserve)
          reserve = -1
          let refused = swt_accept_nonblocking(listener)
          if refused >= 0 { refuse(refused) }
          reserve = open("/dev/null", O_RDONLY | O_CLOEXEC)
        }
        backoff = min(1, max(limits.acceptBackoff, backoff * 2))
        acceptPausedUntil = now + backoff
        return nil
      default:
        return "accept: \(Self.describe(code))"
      }
    }
    return nil
  }

  /// Closes the connection that has waited longest for a request (none in progress);
  /// false when every connection is in the middle of one.
  private func closeOldestWaiting() -> Bool {
    guard let oldest = connections.indices.filter({ connections[$0].isWaiting })
      .min(by: { connections[$0].serial < connections[$1].serial })
    else { return false }
    close(connections[oldest].fd)
    connections.remove(at: oldest)
    return true
  }

  /// One non-blocking attempt at a 503, then close.
  private func refuse(_ fd: Int32) {
    let response = HTTPResponse(status: 503, text: "swtrace: too many connections, try again\n")
    let bytes = Connection.head(response, keepAlive: false, isHead: false) + response.body
    _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
    close(fd)
  }

  // MARK: - Connections

  /// Reads, answers or writes on a ready connection; false when it is to be closed.
  private func service(_ position: Int, events: Int16) -> Bool {
    if connections[position].isWriting {
      if events & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 && events & Int16(POLLOUT) == 0 { return false }
      guard write(position) else { return false }
      // Done with this response: a pipelined request may already be buffered.
      if connections[position].isWriting || connections[position].isDraining { return true }
      return connections[position].hasBufferedInput ? answer(position) : true
    }
    var chunk = [UInt8](repeating: 0, count: 16 << 10)
    // Read what is there, at most the head limit past what is buffered.
    let got = chunk.withUnsafeMutableBytes { recv(connections[position].fd, $0.baseAddress, $0.count, 0) }
    if got == 0 { return false }
    if got < 0 {
      let code = errno
      return code == EAGAIN || code == EWOULDBLOCK || code == EINTR
    }
    if connections[position].isDraining {
      connections[position].drained += got
      return connections[position].drained < limits.maxBodyBytes
    }
    connections[position].received(chunk[..<got], now: Self.now(), limits: limits)
    return answer(position)
  }

  /// Answers the complete requests buffered (pipelining) one after the other, as long as
  /// each answer goes out at once; false when the connection is to be closed.
  private func answer(_ position: Int) -> Bool {
    while true {
      switch connections[position].parse(limits: limits) {
      case .incomplete:
        return true
      case .failed(let status):
        // The rest of the stream cannot be trusted: answer, then close.
        connections[position].respond(
          HTTPResponse(status: status, text: "\(HTTPResponse.reason(status))\n"), keepAlive: false, isHead: false,
          now: Self.now(), limits: limits)
      case .request(let request, let keepAlive):
        var response: HTTPResponse
        if request.method != "GET" && request.method != "HEAD" {
          response = HTTPResponse(status: 405, text: "only GET and HEAD\n")
          response.headers.append(("Allow", "GET, HEAD"))
        } else {
          response = handler(request)
        }
        connections[position].respond(
          response, keepAlive: keepAlive, isHead: request.method == "HEAD", now: Self.now(), limits: limits)
      }
      guard write(position) else { return false }
      if connections[position].isWriting || connections[position].isDraining { return true }
    }
  }

  /// Sends what the socket takes; false when the connection is to be closed.
  private func write(_ position: Int) -> Bool {
    while let (chunk, offset) = connections[position].pending {
      let sent = chunk.withUnsafeBytes { bytes in
        send(connections[position].fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
      }
      if sent < 0 {
        let code = errno
        if code == EINTR { continue }
        return code == EAGAIN || code == EWOULDBLOCK
      }
      connections[position].sent(sent, now: Self.now(), limits: limits)
    }
    // All sent.
    if connections[position].closesAfterResponse {
      // Lingering close: stop sending, and read (and drop) what the client still sends for
      // a moment, so that closing with unread data does not reset the connection before the
      // client has read the answer.
      shutdown(connections[position].fd, Int32(SHUT_WR))
      connections[position].startDraining(now: Self.now())
      return true
    }
    connections[position].finishedResponse(now: Self.now(), limits: limits)
    return true
  }

  /// A connection past its deadline: a request half-received is answered 408 (one attempt).
  private func expire(_ position: Int) {
    if connections[position].hasPartialRequest {
      let bytes = Connection.head(
        HTTPResponse(status: 408, text: "request timeout\n"), keepAlive: false, isHead: false)
        + Array("request timeout\n".utf8)
      _ = bytes.withUnsafeBytes {
        send(connections[position].fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
      }
    }
  }

  // MARK: - Sockets

  static func listen(address: String, port: UInt16) throws(HTTPServerError) -> (Int32, UInt16) {
    let isIPv6 = address.contains(":")
    let fd = socket(
      isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw HTTPServerError(description: "socket: \(describe(errno))") }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var storage = sockaddr_storage()
    let length: socklen_t
    if isIPv6 {
      var address6 = sockaddr_in6()
      address6.sin6_family = sa_family_t(AF_INET6)
      address6.sin6_port = port.bigEndian
      guard inet_pton(AF_INET6, address, &address6.sin6_addr) == 1 else {
        close(fd)
        throw HTTPServerError(description: "'\(address)' is not an IPv6 address")
      }
      withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address6, as: sockaddr_in6.self) }
      length = socklen_t(MemoryLayout<sockaddr_in6>.size)
    } else {
      var address4 = sockaddr_in()
      address4.sin_family = sa_family_t(AF_INET)
      address4.sin_port = port.bigEndian
      guard inet_pton(AF_INET, address, &address4.sin_addr) == 1 else {
        close(fd)
        throw HTTPServerError(description: "'\(address)' is not an IPv4 address")
      }
      withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address4, as: sockaddr_in.self) }
      length = socklen_t(MemoryLayout<sockaddr_in>.size)
    }
    let bound = withUnsafePointer(to: &storage) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    guard bound == 0, Glibc.listen(fd, 128) == 0 else {
      let code = errno
      close(fd)
      throw HTTPServerError(description: describe(code))
    }
    var actual = sockaddr_storage()
    var actualLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
    _ = withUnsafeMutablePointer(to: &actual) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &actualLength) }
    }
    let boundPort = withUnsafeBytes(of: &actual) { bytes in
      isIPv6
        ? UInt16(bigEndian: bytes.load(as: sockaddr_in6.self).sin6_port)
        : UInt16(bigEndian: bytes.load(as: sockaddr_in.self).sin_port)
    }
    return (fd, boundPort)
  }

  static func describe(_ code: Int32) -> String { String(cString: strerror(code)) }

  /// Seconds on the monotonic clock.
  static func now() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
  }
}

/// One client connection's state: what it sent that is not answered yet, the response being
/// written, and its one deadline.
struct Connection {
  let fd: Int32
  /// Accept order: the oldest waiting connection is the first to go when room is needed.
  let serial: Int
  var input: [UInt8] = []
  /// How far `input` was searched for the end of the head.
  var scanned = 0
  /// When the request in progress started (its first byte, or the connection itself).
  var requestStarted: Double
  var deadline: Double
  /// The response: chunks to send (head, body) and the offset into the first.
  var chunks: [[UInt8]] = []
  var offset = 0
  var closesAfterResponse = false
  var isDraining = false
  var drained = 0
  /// A new connection has not sent its first request yet: it gets the request timeout, not
  /// the idle one.
  var isFresh = true

  init(fd: Int32, serial: Int, now: Double, limits: HTTPLimits) {
    self.fd = fd
    self.serial = serial
    requestStarted = now
    deadline = now + limits.requestTimeout
  }

  var isWriting: Bool { !chunks.isEmpty }
  /// No request in progress and nothing to write: the connection can be closed to make room.
  var isWaiting: Bool { (input.isEmpty && !isWriting) || isDraining }
  var hasPartialRequest: Bool { !input.isEmpty && !isWriting && !isDraining }
  var hasBufferedInput: Bool { !input.isEmpty }
  var pending: ([UInt8], Int)? { chunks.first.map { ($0, offset) } }

  mutating func received(_ bytes: ArraySlice<UInt8>, now: Double, limits: HTTPLimits) {
    if input.isEmpty && !isFresh {
      // The first byte of a new request on a kept-alive connection.
      requestStarted = now
      deadline = now + limits.requestTimeout
    }
    input += bytes
  }

  enum Parsed {
    case incomplete
    case request(HTTPRequest, keepAlive: Bool)
    case failed(status: Int)
  }

  /// The next complete request in `input`, consumed with its body.
  mutating func parse(limits: HTTPLimits) -> Parsed {
    guard let headEnd = findHeadEnd() else {
      if input.count > limits.maxHeadBytes {
        // 414 when even the request line does not fit.
        return .failed(status: input.prefix(limits.maxHeadBytes).contains(UInt8(ascii: "\n")) ? 431 : 414)
      }
      return .incomplete
    }
    if headEnd > limits.maxHeadBytes {
      return .failed(status: input.prefix(limits.maxHeadBytes).contains(UInt8(ascii: "\n")) ? 431 : 414)
    }
    // Lines split on bytes: as Characters, "\r\n" is one grapheme and never equals "\n".
    var lines = input[..<headEnd].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map {
      String(decoding: $0.last == UInt8(ascii: "\r") ? $0.dropLast() : $0, as: UTF8.self)[...]
    }
    while lines.last?.isEmpty == true { lines.removeLast() }
    guard let requestLine = lines.first else { return .failed(status: 400) }
    let words = requestLine.split(separator: " ", omittingEmptySubsequences: false)
    guard words.count == 3, !words[0].isEmpty, words[1].hasPrefix("/") || words[1] == "*" else {
      return .failed(status: 400)
    }
    let version = words[2]
    guard version == "HTTP/1.1" || version == "HTTP/1.0" else {
      return .failed(status: version.hasPrefix("HTTP/") ? 505 : 400)
    }
    var keepAlive = version == "HTTP/1.1"
    var contentLength: Int?
    for line in lines.dropFirst() {
      // Folded header lines are obsolete and a smuggling risk.
      guard let colon = line.firstIndex(of: ":"), line.first != " ", line.first != "\t" else {
        return .failed(status: 400)
      }
      let name = line[..<colon].lowercased()
      let value = line[line.index(after: colon)...].trimmingSpaces().lowercased()
      switch name {
      case "connection":
        let options = value.split(separator: ",").map { $0.trimmingSpaces() }
        if options.contains("close") { keepAlive = false }
        if options.contains("keep-alive") { keepAlive = true }
      case "content-length":
        guard let length = Int(value), length >= 0, contentLength == nil || contentLength == length else {
          return .failed(status: 400)
        }
        contentLength = length
      case "transfer-encoding":
        return .failed(status: 501)
      default:
        break
      }
    }
    let bodyLength = contentLength ?? 0
    if bodyLength > limits.maxBodyBytes { return .failed(status: 413) }
    guard input.count >= headEnd + bodyLength else { return .incomplete }
    let target = words[1]
    let path = String(target.prefix { $0 != "?" && $0 != "#" })
    input.removeFirst(headEnd + bodyLength)
    scanned = 0
    isFresh = false
    return .request(HTTPRequest(method: String(words[0]), path: path), keepAlive: keepAlive)
  }

  /// The end of the head: the first empty line (CRLF CRLF, or LF LF from lenient clients).
  mutating func findHeadEnd() -> Int? {
    var index = max(0, scanned - 3)
    while index < input.count {
      if input[index] == UInt8(ascii: "\n") {
        if index + 1 < input.count, input[index + 1] == UInt8(ascii: "\n") { return index + 2 }
        if index + 2 < input.count, input[index + 1] == UInt8(ascii: "\r"), input[index + 2] == UInt8(ascii: "\n") {
          return index + 3
        }
      }
      index += 1
    }
    scanned = input.count
    return nil
  }

  mutating func respond(_ response: HTTPResponse, keepAlive: Bool, isHead: Bool, now: Double, limits: HTTPLimits) {
    closesAfterResponse = !keepAlive
    chunks = [Self.head(response, keepAlive: keepAlive, isHead: isHead)]
    if !isHead && !response.body.isEmpty { chunks.append(response.body) }
    offset = 0
    deadline = now + limits.writeStallTimeout
    if !keepAlive { input.removeAll() }
  }

  mutating func sent(_ count: Int, now: Double, limits: HTTPLimits) {
    offset += count
    if offset >= chunks[0].count {
      chunks.removeFirst()
      offset = 0
    }
    deadline = now + limits.writeStallTimeout
  }

  mutating func finishedResponse(now: Double, limits: HTTPLimits) {
    requestStarted = now
    deadline = input.isEmpty ? now + limits.idleTimeout : now + limits.requestTimeout
  }

  mutating func startDraining(now: Double) {
    isDraining = true
    input.removeAll()
    deadline = now + 2
  }

  /// The status line and headers of a response.
  static func head(_ response: HTTPResponse, keepAlive: Bool, isHead: Bool) -> [UInt8] {
    var text = "HTTP/1.1 \(response.status) \(HTTPResponse.reason(response.status))\r\n"
    for (name, value) in response.headers { text += "\(name): \(value)\r\n" }
    text += "Content-Length: \(response.body.count)\r\n"
    text += keepAlive ? "" : "Connection: close\r\n"
    text += "\r\n"
    return Array(text.utf8)
  }
}

extension Substring {
  func trimmingSpaces() -> Substring {
    var text = self
    while text.first == " " || text.first == "\t" { text.removeFirst() }
    while text.last == " " || text.last == "\t" { text.removeLast() }
    return text
  }
}
