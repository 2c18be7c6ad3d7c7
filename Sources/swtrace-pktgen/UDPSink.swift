// `swtrace-pktgen sink`: counts UDP datagrams arriving on a port, for a bounded time.

import Glibc

struct UDPSink {
  var bindAddress: IPv4Address
  var port: UInt16
  var count: Int
  var maxSeconds: Double
  var readyFile: String?
  var verbose: Bool

  init(arguments: [String]) {
    let options = ParsedOptions(
      arguments,
      valued: ["port", "count", "max-seconds", "bind", "ready-file"],
      booleans: ["verbose"])
    // Receiving sends nothing, so any local address may be bound.
    bindAddress = options.address("bind", restricted: false) ?? .any
    port = UInt16(options.requiredInteger("port", in: 1...65535))
    count = Int(options.integer("count", in: 0...100_000_000) ?? 0)
    maxSeconds = options.number("max-seconds", in: 0.001...3600) ?? 10
    readyFile = options.string("ready-file")
    verbose = options.flag("verbose")
  }

  func run() -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), Int32(IPPROTO_UDP))
    guard fd >= 0 else { die("socket(AF_INET, SOCK_DGRAM) failed: \(errnoDescription())") }
    defer { close(fd) }
    setSocketOption(fd, level: SOL_SOCKET, name: SO_REUSEADDR, value: 1, what: "SO_REUSEADDR")
    // A large receive buffer so that a fast burst is not dropped before we read it.
    var bufferSize: Int32 = 4 << 20
    _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufferSize, socklen_t(MemoryLayout<Int32>.size))
    bindSocket(fd, bindAddress, port: port)

    if let readyFile {
      let out = open(readyFile, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
      guard out >= 0 else { die("cannot create --ready-file \(readyFile): \(errnoDescription())") }
      writeAll(out, "listening \(bindAddress):\(port)\n")
      close(out)
    }

    let deadline = monotonicSeconds() + maxSeconds
    var received = 0
    var bytes = 0
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while count == 0 || received < count {
      guard waitReadable(fd, timeout: deadline - monotonicSeconds()) else { break }
      let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
      if n < 0 { continue }
      received += 1
      bytes += n
      if verbose { printLine("datagram size=\(n)") }
    }

    printLine("received \(received) bytes \(bytes)")
    if count > 0 && received < count {
      printError("stopped after --max-seconds \(maxSeconds): received \(received) of \(count)")
      return Status.shortfall
    }
    return Status.ok
  }
}
