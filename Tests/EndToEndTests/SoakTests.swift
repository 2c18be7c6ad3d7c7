// Robustness (issue 10) under sustained load: a minute of flooded events must not make
// swtrace grow. Its resident memory is sampled every second from /proc/PID/status while
// marked datagrams go over loopback (127.0.0.1 only; the sender is bounded in count, rate
// and time), and the growth after a warm-up must stay under a stated bound.

import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// VmRSS of `pid` in bytes, or nil once it is gone.
func residentBytes(of pid: Int32) -> Int? {
  guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
    let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
  else { return nil }
  // "VmRSS:     51234 kB"
  return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
}

@Suite("robustness: memory under a flood (issue 10)", .serialized)
struct SoakTests {
  static let seconds = 60
  /// Samples before this second are warm-up: buffers, BTF caches and the allocator settle.
  static let warmUp = 10
  /// What swtrace may grow by between the warm-up and the end of the flood.
  static let growthBound = 8 << 20
  /// What swtrace may hold at any time (a debug build with the kernel's BTF loaded).
  static let absoluteBound = 256 << 20
  static let mark: UInt32 = 0xa110
  static let port = 9811

  /// Events printed as they come (`text`), and grouped per packet until the kernel frees it
  /// (`paths`), which keeps state for every packet in flight.
  @Test(
    "a 60-second flood: RSS grows less than 8 MiB after a 10-second warm-up, and stays under 256 MiB",
    .needsTracing, .needsBash, arguments: ["text", "paths"])
  func rssStaysBounded(output: String) throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    // 20,000 datagrams a second (some six events each over skb:*) is more than a debug
    // swtrace prints, so the ring buffer overflows too; the sender stops by itself after
    // 75 s whatever happens to this test.
    let send = "exec " + [
      pktgen, "udp", "--dst", "127.0.0.1", "--port", "\(Self.port)", "--count", "1500000", "--rate", "20000",
      "--sizes", "64,512,1400", "--mark", "0x" + String(Self.mark, radix: 16), "--max-seconds", "75",
    ].map(shellQuote).joined(separator: " ") + " >/dev/null 2>&1"
    let spec = "skb:* /mark == 0x\(String(Self.mark, radix: 16))/ { print(len, ifname, probe); @bytes[ifname] = sum(len); @sizes = hist(len); @n = count() }"
    // Only the final count reaches this test (grep): swtrace still formats and writes every
    // event, and this test does not hoard a minute of output. bash's `exec` keeps swtrace's
    // pid the shell's.
    let trace = [swtrace, "-f", output, "-d", "120", "-c", send, "-e", spec].map(shellQuote).joined(separator: " ")
    let process = try RunningProcess("bash", ["-c", "exec \(trace) > >(exec grep -a '^@n: ')"])
    let pid = process.pid
    defer { process.stop() }
    let objects = BPFObjects.waitForAttach(pid: pid, links: 10, timeout: 60)
    try #require(objects.links.count >= 10, "swtrace did not attach:\n\(process.stop())")

    var samples: [Int] = []
    let start = Date()
    for second in 0...Self.seconds {
      let due = start.addingTimeInterval(Double(second))
      if due > Date() { Thread.sleep(until: due) }
      guard let bytes = residentBytes(of: pid) else { break }
      samples.append(bytes)
    }
    kill(pid, SIGINT)
    let interrupted = Date()
    let result = process.wait(timeout: 30)
    let stopping = Date().timeIntervalSince(interrupted)
    let mebibytes = samples.map { String(format: "%.1f", Double($0) / 1048576) }
    print("note: \(#function) -o \(output): VmRSS in MiB, one sample a second: \(mebibytes.joined(separator: " "))")

    try #require(samples.count == Self.seconds + 1, "swtrace went away after \(samples.count) s:\n\(result)")
    let growth = samples[Self.warmUp...].max()! - samples[Self.warmUp]
    #expect(
      growth < Self.growthBound,
      "RSS grew by \(growth >> 10) KiB between second \(Self.warmUp) and \(Self.seconds): \(mebibytes)")
    #expect(samples.max()! < Self.absoluteBound, "RSS reached \(samples.max()! >> 20) MiB: \(mebibytes)")

    // And the flood was real, Ctrl-C ended it at once and cleanly, and nothing was lost
    // silently.
    // Status 4 says events were lost (the flood outruns a debug build), 0 that none were.
    let lost = summary(of: result)?.lost ?? 0
    #expect(result.status == (lost > 0 ? 4 : 0) && !result.timedOut && crashSigns(result).isEmpty, "\(result)")
    #expect(stopping < 10, "swtrace took \(String(format: "%.1f", stopping)) s to stop after SIGINT during the flood")
    let attempted = result.stdoutLines.last { $0.hasPrefix("@n: ") }.flatMap { Int($0.dropFirst(4)) }
    let tally = summary(of: result)
    if let attempted, let tally {
      print("note: \(#function) -o \(output): \(attempted) events attempted, Samples \(tally.samples) Lost \(tally.lost)")
      #expect(tally.samples + tally.lost == attempted, "Samples + Lost should be @n")
      #expect(attempted > Self.seconds * 10000, "expected a flood, saw \(attempted) events")
    } else {
      Issue.record("need both @n and the summary:\n\(result)")
    }
  }
}
