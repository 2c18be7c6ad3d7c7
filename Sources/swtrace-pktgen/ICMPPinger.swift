// `swtrace-pktgen icmp`: ICMP echo requests over a raw socket, one at a time.

import Glibc

struct ICMPPinger {
  var destination: IPv4Address
  var count: Int
  var identifier: UInt16
  var payloadSize: Int
  var mark: UInt32?
  var interval: Double
  var replyTimeout: Double
  var maxSeconds: Double

  init(arguments: [String]) {
    let options = ParsedOptions(
      arguments,
      valued: ["dst", "count", "id", "size", "mark", "interval", "timeout", "max-seconds"])
    destination = options.address("dst", restricted: true) ?? { usageFailure("missing required option --dst") }()
    count = Int(options.requiredInteger("count", in: 1...65535))
    identifier = UInt16(options.integer("id", in: 0...65535) ?? UInt64(getpid() & 0xffff))
    payloadSize = Int(options.integer("size", in: 0...1400) ?? 56)
    mark = options.integer("mark", in: 0...UInt64(UInt32.max)).map { UInt32($0) }
    interval = options.number("interval", in: 0...60) ?? 0
    replyTimeout = options.number("timeout", in: 0.001...10) ?? 1
    maxSeconds = options.number("max-seconds", in: 0.001...3600) ?? 10
  }

  /// The Internet checksum (RFC 1071) of `bytes`.
  static func checksum(_ bytes: [UInt8]) -> UInt16 {
    var sum: UInt32 = 0
    var i = 0
    while i + 1 < bytes.count {
      sum &+= UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
      i += 2
    }
    if i < bytes.count { sum &+= UInt32(bytes[i]) << 8 }
    while sum >> 16 != 0 { sum = (sum & 0xffff) &+ (sum >> 16) }
    return ~UInt16(sum)
  }

  /// An ICMP echo request: type 8, code 0, checksum, identifier, sequence, payload.
  static func echoRequest(identifier: UInt16, sequence: UInt16, payloadSize: Int) -> [UInt8] {
    var packet: [UInt8] = [8, 0, 0, 0,
                           UInt8(identifier >> 8), UInt8(identifier & 0xff),
                           UInt8(sequence >> 8), UInt8(sequence & 0xff)]
    for i in 0..<payloadSize { packet.append(UInt8(truncatingIfNeeded: i)) }
    let sum = checksum(packet)
    packet[2] = UInt8(sum >> 8)
    packet[3] = UInt8(sum & 0xff)
    return packet
  }

  /// True when `datagram` (IPv4 header included, as raw sockets deliver it) is the echo
  /// reply from our destination for `sequence`.
  func isReply(_ datagram: ArraySlice<UInt8>, sequence: UInt16) -> Bool {
    let d = Array(datagram)
    guard d.count >= 20, d[0] >> 4 == 4 else { return false }
    let headerLength = Int(d[0] & 0x0f) * 4
    guard d[9] == 1, d.count >= headerLength + 8 else { return false }
    let source = UInt32(d[12]) << 24 | UInt32(d[13]) << 16 | UInt32(d[14]) << 8 | UInt32(d[15])
    let icmp = d[headerLength...]
    let type = icmp[icmp.startIndex], code = icmp[icmp.startIndex + 1]
    let id = UInt16(icmp[icmp.startIndex + 4]) << 8 | UInt16(icmp[icmp.startIndex + 5])
    let seq = UInt16(icmp[icmp.startIndex + 6]) << 8 | UInt16(icmp[icmp.startIndex + 7])
    return source == destination.value && type == 0 && code == 0 && id == identifier && seq == sequence
  }

  func run() -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_ICMP))
    guard fd >= 0 else {
      let code = errno
      die("socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) failed: \(errnoDescription(code))"
          + (code == EPERM ? "; raw sockets need root (CAP_NET_RAW)" : ""))
    }
    defer { close(fd) }
    if let mark { setMark(fd, mark) }
    let target = destination.socketAddress(port: 0)

    let start = monotonicSeconds()
    let deadline = start + maxSeconds
    var sent = 0
    var received = 0
    var buffer = [UInt8](repeating: 0, count: 65_536)
    var failure: String?

    for seq in 1...count {
      if monotonicSeconds() >= deadline { break }
      if seq > 1 { sleepSeconds(min(interval, deadline - monotonicSeconds())) }
      let sequence = UInt16(seq)
      let packet = Self.echoRequest(identifier: identifier, sequence: sequence, payloadSize: payloadSize)
      let rc = packet.withUnsafeBytes { buf in
        withSockaddr(target) { sendto(fd, buf.baseAddress, buf.count, 0, $0, $1) }
      }
      if rc < 0 {
        failure = "sendto \(destination) failed at seq=\(seq): \(errnoDescription())"
        break
      }
      sent += 1
      let sentAt = monotonicSeconds()
      let waitUntil = min(sentAt + replyTimeout, deadline)
      while true {
        let remaining = waitUntil - monotonicSeconds()
        guard waitReadable(fd, timeout: remaining) else { break }
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if n <= 0 { continue }
        if isReply(buffer[0..<n], sequence: sequence) {
          received += 1
          printLine("reply seq=\(seq)")
          break
        }
      }
    }

    printLine("sent \(sent) received \(received)")
    if let failure {
      printError(failure)
      return Status.shortfall
    }
    if sent < count {
      printError("stopped after --max-seconds \(maxSeconds): sent \(sent) of \(count)")
      return Status.shortfall
    }
    return received == sent ? Status.ok : Status.shortfall
  }
}
