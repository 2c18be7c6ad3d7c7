// Small helpers shared by the subcommands: output, exit codes, clocks, addresses.
// Plain Glibc on purpose: the generator must stay dependency-free and predictable.

import Glibc

/// Exit statuses of swtrace-pktgen.
enum Status {
  /// Everything that was asked for happened.
  static let ok: Int32 = 0
  /// Ran, but fell short: stopped by --max-seconds, a send error, or missing replies.
  static let shortfall: Int32 = 1
  /// Bad usage, including a destination outside the allowed ranges. Nothing was sent.
  static let usage: Int32 = 2
}

/// Writes the whole string to a file descriptor, unbuffered, so that lines from the
/// generator interleave correctly with other processes writing to the same pipe.
func writeAll(_ fd: Int32, _ text: String) {
  var bytes = Array(text.utf8)
  var offset = 0
  while offset < bytes.count {
    let n = bytes.withUnsafeMutableBytes { buf in
      write(fd, buf.baseAddress! + offset, buf.count - offset)
    }
    if n < 0 {
      if errno == EINTR { continue }
      return
    }
    offset += n
  }
}

func printLine(_ text: String) { writeAll(1, text + "\n") }
func printError(_ text: String) { writeAll(2, "swtrace-pktgen: " + text + "\n") }

/// Prints a usage error and exits with status 2.
func usageFailure(_ message: String) -> Never {
  printError(message)
  printError("run 'swtrace-pktgen --help' for usage")
  exit(Status.usage)
}

/// Prints an operational error and exits with the given status.
func die(_ message: String, status: Int32 = Status.shortfall) -> Never {
  printError(message)
  exit(status)
}

func errnoDescription(_ code: Int32 = errno) -> String {
  String(cString: strerror(code)) + " (errno \(code))"
}

// MARK: - Time

/// Seconds on the monotonic clock.
func monotonicSeconds() -> Double {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Sleeps for the given number of seconds (no-op for non-positive values).
func sleepSeconds(_ seconds: Double) {
  guard seconds > 0 else { return }
  var req = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
  var rem = timespec()
  while nanosleep(&req, &rem) != 0 && errno == EINTR {
    req = rem
  }
}

// MARK: - Addresses

/// An IPv4 address in host byte order.
struct IPv4Address: Equatable, CustomStringConvertible {
  var value: UInt32

  init(value: UInt32) { self.value = value }

  /// Parses a dotted quad. Host names are deliberately not resolved.
  init?(_ text: String) {
    var addr = in_addr()
    guard inet_pton(AF_INET, text, &addr) == 1 else { return nil }
    value = UInt32(bigEndian: addr.s_addr)
  }

  static let any = IPv4Address(value: 0)

  var description: String {
    "\(value >> 24).\((value >> 16) & 0xff).\((value >> 8) & 0xff).\(value & 0xff)"
  }

  /// The only places swtrace-pktgen will ever send to: loopback (127.0.0.0/8) and the
  /// project's own test hosts in network namespaces (10.200.0.0/16).
  var isAllowedTarget: Bool {
    (value >> 24) == 127 || (value >> 16) == 0x0AC8
  }

  func socketAddress(port: UInt16) -> sockaddr_in {
    var sa = sockaddr_in()
    sa.sin_family = sa_family_t(AF_INET)
    sa.sin_port = port.bigEndian
    sa.sin_addr = in_addr(s_addr: value.bigEndian)
    return sa
  }
}

/// An IPv6 address as 16 bytes in network order.
struct IPv6Address: Equatable {
  var address: in6_addr

  init?(_ text: String) {
    var parsed = in6_addr()
    guard inet_pton(AF_INET6, text, &parsed) == 1 else { return nil }
    address = parsed
  }

  var bytes: [UInt8] { withUnsafeBytes(of: address) { Array($0) } }

  static func == (a: IPv6Address, b: IPv6Address) -> Bool { a.bytes == b.bytes }

  /// Loopback (::1) and the addresses the project's tests give their namespaces (fd00:200::/32).
  var isAllowedTarget: Bool {
    bytes == Array(repeating: 0, count: 15) + [1] || bytes.prefix(4) == [0xfd, 0x00, 0x02, 0x00]
  }

  func socketAddress(port: UInt16) -> sockaddr_in6 {
    var sa = sockaddr_in6()
    sa.sin6_family = sa_family_t(AF_INET6)
    sa.sin6_port = port.bigEndian
    sa.sin6_addr = address
    return sa
  }
}

/// Runs `body` with the sockaddr_in6 rebound to a generic sockaddr pointer.
func withSockaddr<R>(_ sa: sockaddr_in6, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
  var copy = sa
  return withUnsafePointer(to: &copy) { pointer in
    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
      body($0, socklen_t(MemoryLayout<sockaddr_in6>.size))
    }
  }
}

/// The message for a refused address; kept in one place so tests can match it.
func refusedAddressMessage(_ option: String, _ address: IPv4Address) -> String {
  "refusing \(option) \(address): only 127.0.0.0/8 (loopback) and 10.200.0.0/16 (the project's test namespaces) are allowed"
}

// MARK: - Sockets

/// Runs `body` with the sockaddr_in rebound to a generic sockaddr pointer.
func withSockaddr<R>(_ sa: sockaddr_in, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
  var copy = sa
  return withUnsafePointer(to: &copy) { pointer in
    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
      body($0, socklen_t(MemoryLayout<sockaddr_in>.size))
    }
  }
}

func setSocketOption(_ fd: Int32, level: Int32, name: Int32, value: Int32, what: String) {
  var v = value
  if setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) != 0 {
    let code = errno
    var message = "setsockopt(\(what)) failed: \(errnoDescription(code))"
    if code == EPERM { message += "; this needs root (CAP_NET_ADMIN)" }
    die(message)
  }
}

func setMark(_ fd: Int32, _ mark: UInt32) {
  setSocketOption(fd, level: SOL_SOCKET, name: SO_MARK, value: Int32(bitPattern: mark), what: "SO_MARK")
}

func bindSocket(_ fd: Int32, _ address: IPv4Address, port: UInt16) {
  let rc = withSockaddr(address.socketAddress(port: port)) { bind(fd, $0, $1) }
  if rc != 0 {
    die("bind to \(address):\(port) failed: \(errnoDescription())")
  }
}

/// Waits until `fd` is readable or `timeout` seconds pass. Returns true when readable.
func waitReadable(_ fd: Int32, timeout: Double) -> Bool {
  guard timeout > 0 else { return false }
  var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
  let ms = Int32(min(timeout * 1000, Double(Int32.max)).rounded(.up))
  while true {
    let rc = poll(&p, 1, ms)
    if rc < 0 && errno == EINTR { continue }
    return rc > 0 && (p.revents & Int16(POLLIN)) != 0
  }
}
