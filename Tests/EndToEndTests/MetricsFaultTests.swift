// The metrics server against the clients and shortages of issue 19 (items 5 and 6):
// oversized, malformed and unfinished requests; more connections than the cap, idle ones
// and ones that never read their answer; file descriptors running out (EMFILE); a thread
// that cannot be created; a tight address-space limit. In every case swtrace goes on tracing
// (the counters still count the datagrams sent), scrapes still get through, and SIGTERM ends
// it with status 0; when the server cannot start at all, swtrace says why and exits 2.
//
// The limits under test are HTTPLimits' defaults: request line and headers 8 KiB, bodies
// 64 KiB, 10 s to send a request, 10 s of a client taking nothing of its answer, 64
// connections. Expected values come from the requests sent and the datagrams sent.

import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

@Suite("Metrics server under hostile clients and scarce resources", .serialized)
struct MetricsFaultTests {
  @Test("oversized, malformed and unfinished requests get 414, 431, 413, 405, 400, 505 or 408 and a close; scrapes go on", .needsTracing)
  func badRequests() throws {
    let pair = try NetworkNamespacePair(subnet: 85)
    defer { pair.remove() }
    let port = try MetricsHTTP.freePort()
    let swtrace = try MetricsRun(
      ["-d", "150", "--metrics", "127.0.0.1:\(port)", "-e", "skb:net_dev_queue /mark == 0x8a21/ { @n = count() }"],
      port: port, host: "faults")
    defer { swtrace.stop() }
    _ = try swtrace.waitUntilServing()

    // A 100 KB request line: answered at the 8 KiB limit, not read to its end.
    let longLine = try RawClient(port: port)
    longLine.send(Array("GET /\(String(repeating: "a", count: 100_000)) HTTP/1.1\r\n\r\n".utf8))
    #expect(longLine.responseStatus() == 414)
    #expect(longLine.closedByServer(), "the connection is closed after a 414")

    let longHeaders = try RawClient(port: port)
    longHeaders.send(Array("GET /metrics HTTP/1.1\r\nX-Filler: \(String(repeating: "b", count: 100_000))\r\n\r\n".utf8))
    #expect(longHeaders.responseStatus() == 431)
    #expect(longHeaders.closedByServer())

    // 64 MB of headers sent as fast as the server takes them: it stops taking them soon after
    // its answer, long before the end.
    let endless = try RawClient(port: port)
    endless.send(Array("GET /metrics HTTP/1.1\r\n".utf8))
    let accepted = endless.sendUntilRefused(total: 64 << 20, seconds: 30)
    #expect(accepted < 32 << 20, "the server read \(accepted) bytes of an endless header before closing")

    let body = try RawClient(port: port)
    body.send(Array("GET /metrics HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n".utf8))
    #expect(body.responseStatus() == 413)

    let post = try RawClient(port: port)
    post.send(Array("POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi".utf8))
    let postHead = post.responseHead()
    #expect(postHead.hasPrefix("HTTP/1.1 405 "), "\(postHead)")
    #expect(postHead.contains("Allow: GET, HEAD"), "\(postHead)")

    let garbage = try RawClient(port: port)
    garbage.send(Array("HELLO\r\n\r\n".utf8))
    #expect(garbage.responseStatus() == 400)

    let version = try RawClient(port: port)
    version.send(Array("GET /metrics HTTP/2.0\r\n\r\n".utf8))
    #expect(version.responseStatus() == 505)

    // Two requests in one write (pipelining): two answers, in order.
    let pipelined = try RawClient(port: port)
    pipelined.send(Array("GET /metrics HTTP/1.1\r\n\r\nGET /nothing HTTP/1.1\r\nConnection: close\r\n\r\n".utf8))
    let both = String(decoding: pipelined.readUntilClosed(seconds: 10), as: UTF8.self)
    // Exposition lines end in LF, heads in CR LF: split on LF.
    let statuses = both.split(separator: "\n").filter { $0.hasPrefix("HTTP/1.1 ") }
    #expect(statuses.map { $0.split(separator: " ")[1] } == ["200", "404"], "\(statuses)")

    // Half a request, then nothing: 408 after the request timeout, and the connection closed.
    let slow = try RawClient(port: port)
    slow.send(Array("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n".utf8))
    #expect(slow.responseStatus(seconds: 30) == 408)
    #expect(slow.closedByServer())

    // Tracing went on throughout: the next scrape counts what is sent now.
    try expectTracingWentOn(swtrace, pair: pair, count: 7, mark: "0x8a21", host: "faults")
  }

  @Test("past the connection cap, with idle clients and clients that never read: scrapes get through, memory stays bounded", .needsTracing)
  func crowdedAndStalled() throws {
    let port = try MetricsHTTP.freePort()
    // 4,000 keys of a histogram: a scrape of some 140,000 lines, about 10 MB, more than the
    // socket buffers between the server and a client that does not read hold.
    let swtrace = try MetricsRun(
      ["-d", "150", "--metrics", "127.0.0.1:\(port)", "-e", "skb:net_dev_queue /mark == 0x8a22/ { @h[len] = hist(len) }"],
      port: port, host: "crowd")
    defer { swtrace.stop() }
    _ = try swtrace.waitUntilServing()
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    let sent = try ProcessRunner.run(
      pktgen,
      ["udp", "--dst", "127.0.0.1", "--port", "9822", "--count", "4000", "--sizes", "1-4000", "--mark", "0x8a22", "--max-seconds", "30"],
      timeout: 60)
    try #require(sent.succeeded && sent.stdout.contains("sent 4000"), "\(sent)")
    // On loopback a datagram of payload p is queued with len p + 42: 4,000 lengths, 4,000 keys.
    let full = try swtrace.scrape(until: { Set($0.samples(named: "swtrace_h_count").compactMap { $0.labels["len"] }).count == 4000 })
    let lengths = Set(full.samples(named: "swtrace_h_count").compactMap { $0.labels["len"].flatMap { Int($0) } })
    #expect(lengths == Set((1...4000).map { $0 + 42 }), "one series per length sent: \(lengths.count)")
    let size = full.text.utf8.count
    let before = residentKiB(swtrace.process.pid)

    // 100 clients that connect and say nothing (the cap is 64), then 20 that ask and never read.
    var idle: [RawClient] = []
    for _ in 0..<100 { idle.append(try RawClient(port: port)) }
    var stalled: [RawClient] = []
    for _ in 0..<20 {
      let client = try RawClient(port: port, receiveBuffer: 4096)
      client.send(Array("GET /metrics HTTP/1.1\r\n\r\n".utf8))
      stalled.append(client)
    }
    // A scraper still gets the whole exposition.
    let scrape = try MetricsHTTP.get(port: port, path: "/metrics", timeout: 30)
    #expect(scrape.status == 200)
    #expect(scrape.body.utf8.count >= size, "a complete scrape: \(scrape.body.utf8.count) of \(size) bytes")
    let during = residentKiB(swtrace.process.pid)
    // Twenty answers of `size` bytes pending: one rendering shared, not twenty copies.
    #expect(during - before < 48 * 1024, "RSS grew from \(before) KiB to \(during) KiB with 20 stalled scrapes of \(size) bytes")

    // The clients that never read are dropped after the stall timeout (10 s): reading now
    // gets what the kernel's buffers held when the server gave up, then the end, not the
    // whole answer.
    Thread.sleep(forTimeInterval: 15)
    for client in stalled {
      let received = client.readUntilClosed(seconds: 30)
      #expect(received.count < size, "a client that never read got \(received.count) of \(size) bytes and the end")
    }
    // The idle ones past the cap were closed to make room, the rest after the request timeout.
    let closed = idle.filter { $0.closedByServer(seconds: 30) }.count
    #expect(closed == idle.count, "\(closed) of \(idle.count) idle connections closed by the server")
    let result = swtrace.stop()
    #expect(result.status == 0, "\(result)")
  }

  @Test("out of file descriptors (EMFILE): idle connections are closed to make room, scrapes and tracing go on", .needsTracing)
  func outOfDescriptors() throws {
    let pair = try NetworkNamespacePair(subnet: 86)
    defer { pair.remove() }
    let port = try MetricsHTTP.freePort()
    let swtrace = try TestEnvironment.binary("swtrace")
    // 48 descriptors in all: the programs, maps, ring buffer and listening socket take about
    // 20, fewer than the 64 connections the cap allows are left.
    let process = try RunningProcess(
      "prlimit",
      [
        "--nofile=48:48", swtrace, "-d", "150", "--metrics", "127.0.0.1:\(port)", "-e",
        "skb:net_dev_queue /mark == 0x8a23/ { @n = count() }",
      ], environment: ["SWTRACE_HOST": "emfile", "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"])
    let run = MetricsRun(started: process, port: port)
    defer { run.stop() }
    _ = try run.waitUntilServing()

    var idle: [RawClient] = []
    for _ in 0..<60 { idle.append(try RawClient(port: port)) }
    // The scraper queues behind them; each accept past the limit closes the oldest idle one.
    var status = 0
    let deadline = Date().addingTimeInterval(30)
    repeat {
      status = (try? MetricsHTTP.get(port: port, path: "/metrics", timeout: 10).status) ?? 0
      if status == 200 { break }
      Thread.sleep(forTimeInterval: 0.2)
    } while Date() < deadline
    #expect(status == 200, "a scrape gets through with the descriptors used up")

    try expectTracingWentOn(run, pair: pair, count: 9, mark: "0x8a23", host: "emfile")
    idle.removeAll()
  }

  @Test("the server's thread cannot be created (RLIMIT_NPROC): status 2 and one sentence, at once", .needsTracing)
  func noThread() throws {
    guard let setpriv = findExecutable("setpriv"), let prlimit = findExecutable("prlimit") else {
      try skip("setpriv or prlimit (util-linux) is missing")
    }
    let swtrace = try TestEnvironment.binary("swtrace")
    let port = try MetricsHTTP.freePort()
    // As nobody with only CAP_BPF and CAP_PERFMON, RLIMIT_NPROC holds (root is exempt): one
    // process, no room for a thread.
    let result = try ProcessRunner.run(
      prlimit,
      [
        "--nproc=1", setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=+bpf,+perfmon",
        "--ambient-caps=+bpf,+perfmon", swtrace, "--metrics", "127.0.0.1:\(port)", "-d", "30", "-e",
        "skb:net_dev_queue /mark == 0x8a24/ { @n = count() }",
      ], timeout: 60)
    if result.stderr.contains("tracing needs root") || result.stderr.contains("Operation not permitted") {
      try skip("nobody with CAP_BPF and CAP_PERFMON cannot trace here:\n\(result)")
    }
    #expect(result.status == 2, "\(result)")
    #expect(!result.timedOut, "\(result)")
    #expect(result.stderr.contains("cannot start the server's thread"), "\(result)")
  }

  @Test("ulimit -v 120000: swtrace serves metrics and SIGTERM ends it with status 0 (it used to spin)", .needsTracing)
  func addressSpaceLimit() throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    let port = try MetricsHTTP.freePort()
    let process = try RunningProcess(
      "/bin/bash",
      [
        "-c", "ulimit -v 120000 && exec \(shellQuote(swtrace)) --metrics 127.0.0.1:\(port) -d 150 -e "
          + shellQuote("skb:net_dev_queue /mark == 0x8a25/ { @n = count() }"),
      ], environment: ["SWTRACE_HOST": "vlimit"])
    let run = MetricsRun(started: process, port: port)
    defer { run.stop() }
    let served = try run.waitUntilServing()
    #expect(served.value("swtrace_n_total", ["host": "vlimit"]) == 0, "\(served.text)")
    let result = run.stop()
    #expect(result.status == 0, "\(result)")
    #expect(!result.timedOut, "SIGTERM ended it: \(result)")
  }

  // MARK: - Helpers

  /// Sends `count` datagrams marked `mark`, then checks that the next scrapes count them,
  /// and that SIGTERM ends swtrace with status 0 and no word of the server stopping.
  func expectTracingWentOn(_ run: MetricsRun, pair: NetworkNamespacePair, count: Int, mark: String, host: String) throws {
    try pair.sendUDP(count: count, mark: mark, port: 9821)
    let after = try run.scrape(until: { $0.value("swtrace_n_total", ["host": host]) == Double(count) })
    #expect(after.value("swtrace_n_total", ["host": host]) == Double(count), "tracing went on:\n\(after.text)")
    let result = run.stop()
    #expect(result.status == 0, "\(result)")
    #expect(!result.stderr.contains("metrics server stopped"), "\(result)")
  }

  /// VmRSS of `pid` in KiB, from /proc (0 when it cannot be read).
  func residentKiB(_ pid: Int32) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
      let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
    else { return 0 }
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
  }
}

/// A TCP client to 127.0.0.1 that does exactly what it is told, for hostile requests.
final class RawClient {
  let fd: Int32

  /// Connects; `receiveBuffer` shrinks SO_RCVBUF so that a client that does not read stalls
  /// the server's writes sooner.
  init(port: Int, receiveBuffer: Int32? = nil) throws {
    fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ProcessRunnerError(description: "socket: errno \(errno)") }
    if var size = receiveBuffer {
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }
    var address = MetricsHTTP.loopback(port: port)
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
      close(fd)
      throw ProcessRunnerError(description: "connect to 127.0.0.1:\(port): errno \(errno)")
    }
  }

  deinit { close(fd) }

  /// Sends what the socket takes without blocking for long; errors (the server closed) end it.
  func send(_ bytes: [UInt8]) {
    var offset = 0
    let deadline = Date().addingTimeInterval(10)
    while offset < bytes.count && Date() < deadline {
      let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
      if sent > 0 {
        offset += sent
      } else if sent < 0 && (errno == EAGAIN || errno == EINTR) {
        var pollSet = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        _ = poll(&pollSet, 1, 100)
      } else {
        return
      }
    }
  }

  /// Sends filler bytes until the server stops taking them (an error, or nothing taken for
  /// 5 s) or `total` bytes or `seconds` pass; returns how many were taken.
  func sendUntilRefused(total: Int, seconds: Double) -> Int {
    let chunk = [UInt8](repeating: UInt8(ascii: "c"), count: 65536)
    var taken = 0
    var lastProgress = Date()
    let deadline = Date().addingTimeInterval(seconds)
    while taken < total && Date() < deadline && Date().timeIntervalSince(lastProgress) < 5 {
      let sent = chunk.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
      if sent > 0 {
        taken += sent
        lastProgress = Date()
      } else if sent < 0 && (errno == EAGAIN || errno == EINTR) {
        var pollSet = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        _ = poll(&pollSet, 1, 100)
      } else {
        break
      }
    }
    return taken
  }

  /// Reads until the end of a response head (at most `seconds`); "" when none came.
  func responseHead(seconds: Double = 10) -> String {
    var data: [UInt8] = []
    let deadline = Date().addingTimeInterval(seconds)
    let end = Array("\r\n\r\n".utf8)
    while Date() < deadline {
      guard let byte = readByte(until: deadline) else { break }
      data.append(byte)
      if data.count >= 4 && Array(data.suffix(4)) == end { break }
    }
    return String(decoding: data, as: UTF8.self)
  }

  /// The status code of the next response, or nil.
  func responseStatus(seconds: Double = 10) -> Int? {
    let head = responseHead(seconds: seconds)
    let words = head.split(separator: " ")
    return words.count >= 2 && words[0].hasPrefix("HTTP/1.") ? Int(words[1]) : nil
  }

  /// Whether the server closes the connection within `seconds`: reading reaches the end
  /// (EOF, or a reset).
  func closedByServer(seconds: Double = 10) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    var buffer = [UInt8](repeating: 0, count: 65536)
    while Date() < deadline {
      var pollSet = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      _ = poll(&pollSet, 1, 200)
      let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
      if got == 0 { return true }
      if got < 0 && errno != EAGAIN && errno != EINTR { return true }
    }
    return false
  }

  /// Everything until the server closes (at most `seconds`).
  func readUntilClosed(seconds: Double) -> [UInt8] {
    var data: [UInt8] = []
    let deadline = Date().addingTimeInterval(seconds)
    var buffer = [UInt8](repeating: 0, count: 65536)
    while Date() < deadline {
      var pollSet = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      _ = poll(&pollSet, 1, 200)
      let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
      if got == 0 { break }
      if got < 0 {
        if errno == EAGAIN || errno == EINTR { continue }
        break
      }
      data += buffer[..<got]
    }
    return data
  }

  private func readByte(until deadline: Date) -> UInt8? {
    var byte: UInt8 = 0
    while Date() < deadline {
      var pollSet = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      _ = poll(&pollSet, 1, 200)
      let got = recv(fd, &byte, 1, Int32(MSG_DONTWAIT))
      if got == 1 { return byte }
      if got == 0 { return nil }
      if errno != EAGAIN && errno != EINTR { return nil }
    }
    return nil
  }
}
