// What a run holds and how it notices its end (issue 22, start-up and memory): the events
// ring buffer as the kernel shows it (bpftool), none for a spec that only fills maps and the
// size --ring-size asks for otherwise; the end of the -c command and of the -p process
// ending a run that has no ring buffer to wake it.
//
// Traffic: marked UDP on loopback (marks 0xa22X, port 9822).

import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
  import Glibc
#endif

@Suite("run resources: the ring buffer and the end of -c and -p (issue 22)", .serialized)
struct RunResourceTests {
  static let port = 9822

  /// Counts the datagrams marked `mark`; prints them too when `printing`.
  static func spec(mark: UInt32, printing: Bool = false) -> String {
    "skb:net_dev_queue /mark == 0x\(String(mark, radix: 16))/ { \(printing ? "print(len); " : "")@n = count() }"
  }

  static func send(_ mark: UInt32, count: Int) throws -> ProcessResult {
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    return try ProcessRunner.run(
      pktgen,
      [
        "udp", "--dst", "127.0.0.1", "--port", "\(port)", "--count", "\(count)", "--sizes", "64",
        "--mark", "0x" + String(mark, radix: 16), "--max-seconds", "20",
      ], timeout: 30)
  }

  static func sendCommand(_ mark: UInt32, count: Int) throws -> String {
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    return [
      pktgen, "udp", "--dst", "127.0.0.1", "--port", "\(port)", "--count", "\(count)", "--sizes", "64",
      "--mark", "0x" + String(mark, radix: 16), "--max-seconds", "20",
    ].map(shellQuote).joined(separator: " ") + " >/dev/null"
  }

  /// Starts swtrace and waits until its probe is attached.
  static func startAttached(_ arguments: [String]) throws -> (RunningProcess, BPFObjects) {
    let process = try RunningProcess(try TestEnvironment.binary("swtrace"), arguments)
    let objects = BPFObjects.waitForAttach(pid: process.pid, links: 1, timeout: 60)
    guard objects.links.count >= 1 else {
      throw ProcessRunnerError(description: "swtrace did not attach within 60 s:\n\(process.stop())")
    }
    return (process, objects)
  }

  /// The kernel's description of each map, from `bpftool map show id N -j`.
  static func mapsAsBpftoolShows(_ ids: Set<Int>) throws -> [[String: Any]] {
    let bpftool = try #require(findExecutable("bpftool"), "bpftool is installed by `make deps`")
    return try ids.sorted().map { id in
      let shown = try ProcessRunner.run(bpftool, ["map", "show", "id", "\(id)", "-j"], timeout: 20)
      let object = try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any]
      return try #require(object, "bpftool map show id \(id) -j: \(shown)")
    }
  }

  static func ringBuffers(_ maps: [[String: Any]]) -> [[String: Any]] {
    maps.filter { $0["type"] as? String == "ringbuf" }
  }

  /// The value of `@n: N` on stdout.
  static func count(_ result: ProcessResult) -> Int? {
    result.stdoutLines.last { $0.hasPrefix("@n: ") }.flatMap { Int($0.dropFirst(4)) }
  }

  @Test("a spec that only fills maps holds no ring buffer while it runs, and counts what was sent", .needsTracing)
  func mapsOnlySpecHasNoRingBuffer() throws {
    let mark: UInt32 = 0xa220
    let (process, objects) = try Self.startAttached(["-d", "60", "-e", Self.spec(mark: mark)])
    let maps = try Self.mapsAsBpftoolShows(objects.maps)
    #expect(!maps.isEmpty, "swtrace holds its maps: \(objects)")
    #expect(Self.ringBuffers(maps).isEmpty, "bpftool shows a ring buffer among swtrace's maps: \(maps)")
    let sent = try Self.send(mark, count: 5)
    #expect(sent.succeeded, "\(sent)")
    Thread.sleep(forTimeInterval: 0.3)
    kill(process.pid, SIGINT)
    let result = process.wait(timeout: 30)
    #expect(!result.timedOut && result.status == 0 && crashSigns(result).isEmpty, "\(result)")
    #expect(Self.count(result) == 5, "@n counts the 5 datagrams sent: \(result)")
  }

  @Test(
    "a spec that prints holds one ring buffer of the size --ring-size asks for (8 MiB without it)",
    .needsTracing, arguments: [(nil, 8 << 20), ("1m", 1 << 20), ("64k", 64 << 10)] as [(String?, Int)])
  func ringBufferSize(option: String?, bytes: Int) throws {
    let mark: UInt32 = 0xa221
    let (process, objects) = try Self.startAttached(
      (option.map { ["--ring-size", $0] } ?? []) + ["-d", "60", "-e", Self.spec(mark: mark, printing: true)])
    let rings = Self.ringBuffers(try Self.mapsAsBpftoolShows(objects.maps))
    #expect(rings.count == 1, "one ring buffer: \(rings)")
    #expect(rings.first?["max_entries"] as? Int == bytes, "bpftool's max_entries: \(rings)")
    let sent = try Self.send(mark, count: 3)
    #expect(sent.succeeded, "\(sent)")
    Thread.sleep(forTimeInterval: 0.3)
    kill(process.pid, SIGINT)
    let result = process.wait(timeout: 30)
    #expect(!result.timedOut && result.status == 0, "\(result)")
    #expect(result.stdoutLines.filter { $0.hasSuffix("net_dev_queue (len: 106)") }.count == 3, "\(result)")
    #expect(summary(of: result).map { $0.samples == 3 && $0.lost == 0 } == true, "\(result)")
  }

  @Test("--ring-size 4k: records that wrap around the end of the ring buffer arrive whole, none lost", .needsTracing)
  func recordsWrapAroundASmallRing() throws {
    let mark: UInt32 = 0xa225
    let (process, _) = try Self.startAttached(["--ring-size", "4k", "-d", "60", "-e", Self.spec(mark: mark, printing: true)])
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    // 900 datagrams of 100, 200 and 300 bytes in turn, 1,500 a second: ten times around a
    // ring of 4,096 bytes whose records take 40 bytes and an 8-byte header each, so that
    // every few turns one starts in the last 40 bytes and wraps.
    let sent = try ProcessRunner.run(
      pktgen,
      [
        "udp", "--dst", "127.0.0.1", "--port", "\(Self.port)", "--count", "900", "--sizes", "100,200,300",
        "--mark", "0x" + String(mark, radix: 16), "--rate", "1500", "--max-seconds", "20",
      ], timeout: 30)
    #expect(sent.succeeded, "\(sent)")
    Thread.sleep(forTimeInterval: 0.3)
    kill(process.pid, SIGINT)
    let result = process.wait(timeout: 30)
    #expect(!result.timedOut && result.status == 0, "\(result)")
    // Ethernet, IPv4 and UDP headers: 42 bytes on top of each payload.
    let lengths = result.stdoutLines.compactMap { line -> Int? in
      guard line.contains("net_dev_queue (len: "), let open = line.range(of: "(len: ") else { return nil }
      return Int(line[open.upperBound...].dropLast())
    }
    #expect(lengths.count == 900, "\(result)")
    #expect(lengths == (0..<900).map { [142, 242, 342][$0 % 3] }, "every record whole and in order: \(firstFew(lengths, 20))")
    #expect(summary(of: result).map { $0.samples == 900 && $0.lost == 0 } == true, "\(result)")
  }

  @Test("--ring-size that the kernel cannot have is refused before anything is loaded: status 64", arguments: ["3m", "2k", "2048m", "x"])
  func ringSizeRefused(option: String) throws {
    let result = try ProcessRunner.run(
      try TestEnvironment.binary("swtrace"), ["--ring-size", option, "-e", Self.spec(mark: 0xa222, printing: true)],
      timeout: 30)
    #expect(result.status == 64, "\(result)")
    #expect(result.stderr.contains("--ring-size"), "\(result)")
  }

  @Test(
    "without a ring buffer to wake the run, the -c command's end still ends it: its status said, the maps printed",
    .needsTracing, arguments: [0, 7])
  func commandEndEndsMapsOnlyRun(exitStatus: Int) throws {
    let mark: UInt32 = 0xa223
    let command = try Self.sendCommand(mark, count: 4) + "; exit \(exitStatus)"
    let result = try ProcessRunner.run(
      try TestEnvironment.binary("swtrace"), ["-c", command, "-e", Self.spec(mark: mark)], timeout: 60)
    #expect(!result.timedOut && crashSigns(result).isEmpty, "\(result)")
    #expect(Self.count(result) == 4, "@n counts the 4 datagrams the command sent: \(result)")
    if exitStatus == 0 {
      #expect(result.status == 0, "\(result)")
    } else {
      #expect(result.status == 3, "a failed -c command makes swtrace exit 3: \(result)")
      #expect(result.stderr.contains("exited with status \(exitStatus)"), "\(result)")
    }
  }

  @Test("without a ring buffer to wake the run, the end of the -p process ends it with status 0", .needsTracing)
  func processEndEndsMapsOnlyRun() throws {
    let sleeper = try RunningProcess("sleep", ["60"])
    defer { _ = sleeper.stop() }
    let mark: UInt32 = 0xa224
    let (process, _) = try Self.startAttached(["-p", "\(sleeper.pid)", "-e", Self.spec(mark: mark)])
    kill(sleeper.pid, SIGKILL)
    let ended = sleeper.wait(timeout: 10)
    #expect(!ended.timedOut, "\(ended)")
    let result = process.wait(timeout: 30)
    #expect(!result.timedOut && result.status == 0 && crashSigns(result).isEmpty, "\(result)")
    #expect(summary(of: result) != nil, "Samples: N Lost: M at the end of stderr: \(result)")
  }
}
