// `swtrace-pktgen udp`: a bounded burst of UDP datagrams.

import Glibc

/// Largest UDP payload over IPv4 (65535 - 20 IP - 8 UDP).
let maximumUDPPayload = 65_507

struct UDPSender {
  var destination: IPv4Address
  /// Set when `--dst` is an IPv6 address; `destination` is then unused.
  var destination6: IPv6Address?
  var port: UInt16
  var count: Int
  var sizes: [Int]
  var mark: UInt32?
  var rate: Double?
  var maxSeconds: Double
  var source: IPv4Address?
  var sourcePort: UInt16
  /// UDP_SEGMENT: each send becomes one GSO datagram of segments this large, its payload in
  /// page fragments (the kernel builds GSO datagrams paged), segmented only on the way out.
  var segmentSize: Int?

  init(arguments: [String]) {
    let options = ParsedOptions(
      arguments,
      valued: ["dst", "port", "count", "mark", "sizes", "rate", "max-seconds", "src", "src-port", "gso-size"])
    if let text = options.string("dst"), text.contains(":") {
      guard let address = IPv6Address(text) else { usageFailure("option --dst must be an IPv4 or IPv6 address, got '\(text)'") }
      guard address.isAllowedTarget else {
        die(
          "refusing --dst \(text): only ::1 (loopback) and fd00:200::/32 (the project's test namespaces) are allowed for IPv6",
          status: Status.usage)
      }
      destination6 = address
      destination = .any
    } else {
      destination = options.address("dst", restricted: true) ?? { usageFailure("missing required option --dst") }()
    }
    port = UInt16(options.requiredInteger("port", in: 1...65535))
    count = Int(options.requiredInteger("count", in: 1...10_000_000))
    sizes = options.string("sizes").map { parseSizes($0, option: "sizes", maximum: maximumUDPPayload) } ?? [64]
    mark = options.integer("mark", in: 0...UInt64(UInt32.max)).map { UInt32($0) }
    rate = options.number("rate", in: 0.001...100_000_000)
    maxSeconds = options.number("max-seconds", in: 0.001...3600) ?? 10
    source = options.address("src", restricted: true)
    sourcePort = UInt16(options.integer("src-port", in: 0...65535) ?? 0)
    segmentSize = options.integer("gso-size", in: 1...65_507).map(Int.init)
  }

  /// Fills `buffer` with the payload of datagram `sequence` (0-based): "SWTP", the
  /// sequence number big-endian, then the byte pattern 8, 9, 10, ... (mod 256); shorter
  /// payloads are the same bytes truncated. Only the 8-byte header changes per datagram.
  static func writePayloadHeader(sequence: Int, into buffer: inout [UInt8]) {
    let seq = UInt32(truncatingIfNeeded: sequence)
    let header: [UInt8] = [0x53, 0x57, 0x54, 0x50, UInt8(seq >> 24), UInt8((seq >> 16) & 0xff), UInt8((seq >> 8) & 0xff), UInt8(seq & 0xff)]
    for i in 0..<min(header.count, buffer.count) { buffer[i] = header[i] }
  }

  static func initialPayloadBuffer(size: Int) -> [UInt8] {
    (0..<size).map { UInt8(truncatingIfNeeded: $0) }
  }

  func run() -> Int32 {
    let family = destination6 == nil ? AF_INET : AF_INET6
    let fd = socket(family, Int32(SOCK_DGRAM.rawValue), Int32(IPPROTO_UDP))
    guard fd >= 0 else { die("socket(\(family == AF_INET ? "AF_INET" : "AF_INET6"), SOCK_DGRAM) failed: \(errnoDescription())") }
    defer { close(fd) }
    if let mark { setMark(fd, mark) }
    if let segmentSize {
      // SOL_UDP (17), UDP_SEGMENT (103), from linux/udp.h.
      setSocketOption(fd, level: 17, name: 103, value: Int32(segmentSize), what: "UDP_SEGMENT")
    }
    if destination6 != nil, source != nil || sourcePort != 0 { usageFailure("--src and --src-port are for IPv4 only") }
    if source != nil || sourcePort != 0 {
      bindSocket(fd, source ?? .any, port: sourcePort)
    }
    let target = destination.socketAddress(port: port)
    let target6 = destination6?.socketAddress(port: port)
    var buffer = Self.initialPayloadBuffer(size: sizes.max() ?? 0)

    let start = monotonicSeconds()
    let deadline = start + maxSeconds
    var sent = 0
    var failure: String?
    sending: while sent < count {
      if let rate {
        let due = start + Double(sent) / rate
        if due >= deadline { break }
        sleepSeconds(due - monotonicSeconds())
      }
      if monotonicSeconds() >= deadline { break }
      let size = sizes[sent % sizes.count]
      Self.writePayloadHeader(sequence: sent, into: &buffer)
      while true {
        let rc = buffer.withUnsafeBytes { buf in
          if let target6 {
            withSockaddr(target6) { sendto(fd, buf.baseAddress, size, 0, $0, $1) }
          } else {
            withSockaddr(target) { sendto(fd, buf.baseAddress, size, 0, $0, $1) }
          }
        }
        if rc >= 0 { break }
        let code = errno
        if code == EINTR { continue }
        // The local queue is full: back off briefly, bounded by the deadline.
        if code == ENOBUFS || code == EAGAIN {
          if monotonicSeconds() >= deadline { break sending }
          sleepSeconds(0.001)
          continue
        }
        failure = "sendto \(destination):\(port) failed after \(sent) datagrams: \(errnoDescription(code))"
        break sending
      }
      sent += 1
    }

    printLine("sent \(sent)")
    if let failure {
      printError(failure)
      return Status.shortfall
    }
    if sent < count {
      printError("stopped after --max-seconds \(maxSeconds): sent \(sent) of \(count)")
      return Status.shortfall
    }
    return Status.ok
  }
}
