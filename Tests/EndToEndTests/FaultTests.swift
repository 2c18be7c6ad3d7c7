// Faults a user meets (issue 19), end to end, as an operator would cause them: standard
// streams closed, full or hung up; output to a full disk; a reader that stops reading under a
// flood; every terminating signal, and SIGKILL; inputs that are FIFOs, streams or 4 GB;
// limits on files, memory and address space; names with terminal escapes; -f paths while
// the kernel reuses skbs. Each case checks the exit status and the sentence a user reads,
// that swtrace released every BPF program, map and link it held (by the ids it held), and
// that the -c command is gone.
//
// The metrics server's faults (slow clients, 100 KB request lines, EMFILE, RLIMIT_NPROC,
// ulimit -v) are MetricsFaultTests'.
//
// Traffic: marked UDP on loopback (marks 0xa19X, port 9819), and 10.200.120-122.0/24
// between namespaces of this test's own.

import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
  import Glibc
#endif

/// What the fault tests share: the binaries, starting swtrace through bash (for the
/// redirections a case needs), and the checks every case ends with.
enum Faults {
  static let port = 9819

  static var swtrace: String { get throws { try TestEnvironment.binary("swtrace") } }
  static var pktgen: String { get throws { try TestEnvironment.binary("swtrace-pktgen") } }

  /// The spec most cases run: count (and optionally print) the datagrams marked `mark`.
  static func spec(mark: UInt32, printing: Bool = false) -> String {
    "skb:net_dev_queue /mark == 0x\(String(mark, radix: 16))/ { \(printing ? "print(len); " : "")@n = count() }"
  }

  /// A shell command sending `count` UDP datagrams marked `mark` over loopback.
  static func send(mark: UInt32, count: Int, rate: Int? = nil, seconds: Int = 20) throws -> String {
    var words = [
      try pktgen, "udp", "--dst", "127.0.0.1", "--port", "\(port)", "--count", "\(count)", "--sizes", "64",
      "--mark", "0x" + String(mark, radix: 16), "--max-seconds", "\(seconds)",
    ]
    if let rate { words += ["--rate", "\(rate)"] }
    return words.map(shellQuote).joined(separator: " ")
  }

  /// Runs `command` with bash, which execs swtrace (so the process is swtrace itself) after
  /// setting up the redirections written in it.
  static func start(_ command: String, environment: [String: String]? = nil) throws -> RunningProcess {
    try RunningProcess("bash", ["-c", command], environment: environment)
  }

  /// `swtrace` and its arguments, quoted for the shell.
  static func commandLine(_ arguments: [String]) throws -> String {
    ([try swtrace] + arguments).map(shellQuote).joined(separator: " ")
  }

  /// Waits until `pid` holds `links` BPF links; throws with what the process said if not.
  static func attached(_ process: RunningProcess, links: Int = 1) throws -> BPFObjects {
    let objects = BPFObjects.waitForAttach(pid: process.pid, links: links, timeout: 60)
    guard objects.links.count >= links else {
      throw ProcessRunnerError(description: "swtrace did not attach \(links) probe(s) within 60 s:\n\(process.stop())")
    }
    return objects
  }

  /// The pid a `-c` command wrote to `file`, waiting for it at most 10 s.
  static func pid(in file: String) -> Int32? {
    let deadline = Date().addingTimeInterval(10)
    while Date() < deadline {
      if let text = try? String(contentsOfFile: file, encoding: .utf8),
        let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1
      {
        return pid
      }
      Thread.sleep(forTimeInterval: 0.05)
    }
    return nil
  }

  /// Whether `pid` is gone (or a zombie) within `seconds`.
  static func isGone(_ pid: Int32, within seconds: Double = 5) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    repeat {
      if kill(pid, 0) != 0 || isZombie(pid) { return true }
      Thread.sleep(forTimeInterval: 0.05)
    } while Date() < deadline
    return false
  }

  /// Every program, map and link of `objects` is gone from the kernel.
  static func expectReleased(_ objects: BPFObjects, _ context: @autoclosure () -> String, sourceLocation: SourceLocation = #_sourceLocation) {
    let left = BPFObjects.stillLoaded(objects)
    #expect(left.isEmpty, "still loaded after swtrace exited: \(left)\n\(context())", sourceLocation: sourceLocation)
  }

  /// Processes (not zombies) whose command line contains `text`.
  static func processes(mentioning text: String) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap(Int32.init).filter { pid in
      guard pid != getpid(), !isZombie(pid),
        let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")
      else { return false }
      return String(decoding: raw.map { $0 == 0 ? UInt8(ascii: " ") : $0 }, as: UTF8.self).contains(text)
    }
  }

  /// The -c command whose pid is in `file` is gone; kills it otherwise.
  static func expectCommandGone(_ file: String, _ context: @autoclosure () -> String, sourceLocation: SourceLocation = #_sourceLocation) {
    guard let child = pid(in: file) else {
      Issue.record("the -c command never wrote its pid\n\(context())", sourceLocation: sourceLocation)
      return
    }
    let gone = isGone(child)
    #expect(gone, "the -c command (pid \(child)) outlived swtrace\n\(context())", sourceLocation: sourceLocation)
    if !gone { kill(child, SIGKILL) }
  }

  /// The value of `@n: N` on stdout.
  static func count(_ result: ProcessResult) -> Int? {
    result.stdoutLines.last { $0.hasPrefix("@n: ") }.flatMap { Int($0.dropFirst(4)) }
  }
}

@Suite("faults: standard streams and output errors (issue 19)", .serialized)
struct StreamFaultTests {
  @Test(
    "stderr closed, full or a hung-up pipe: no crash, the trace ends cleanly and the -c command goes",
    .needsTracing, .needsBash, arguments: ["2>&-", "2>/dev/full"])
  func stderrFailures(redirection: String) throws {
    let scratch = try ScratchDirectory("stderr")
    let pidFile = scratch.path("command.pid")
    let mark: UInt32 = redirection == "2>&-" ? 0xa190 : 0xa191
    let command = "echo $$ > \(shellQuote(pidFile)); exec sleep 60"
    let process = try Faults.start(
      "exec \(try Faults.commandLine(["-e", Faults.spec(mark: mark, printing: true), "-c", command])) \(redirection)")
    let objects = try Faults.attached(process)
    let sent = try ProcessRunner.shell(try Faults.send(mark: mark, count: 5), timeout: 30)
    #expect(sent.succeeded, "\(sent)")
    Thread.sleep(forTimeInterval: 0.3)
    kill(process.pid, SIGTERM)
    let result = process.wait(timeout: 20)
    #expect(!result.timedOut && result.status == 0 && crashSigns(result).isEmpty, "\(result)")
    #expect(Faults.count(result) == 5, "the final map reaches stdout: \(result)")
    #expect(result.stdoutLines.filter { $0.hasSuffix("net_dev_queue (len: 106)") }.count == 5, "\(result)")
    Faults.expectReleased(objects, "\(result)")
    Faults.expectCommandGone(pidFile, "\(result)")
  }

  @Test("stderr and stdout into a pipe that head -1 closes, under traffic: status 0, no crash, the command goes", .needsTracing, .needsBash)
  func stderrIntoClosedPipe() throws {
    let scratch = try ScratchDirectory("stderr-pipe")
    let pidFile = scratch.path("command.pid")
    let command = "echo $$ > \(shellQuote(pidFile)); exec \(try Faults.send(mark: 0xa192, count: 40000, rate: 2000, seconds: 30)) >/dev/null"
    let trace = try Faults.commandLine(["-e", "skb:* /mark == 0xa192/ { print(len, probe) }", "-c", command])
    let result = try ProcessRunner.run(
      "bash", ["-c", "\(trace) 2>&1 | head -1; echo \"swtrace status ${PIPESTATUS[0]}\" >&2"], timeout: 60)
    #expect(result.stdoutLines.count == 1, "\(result)")
    #expect(result.stderr.contains("swtrace status 0"), "\(result)")
    #expect(crashSigns(result).isEmpty, "\(result)")
    // head may leave with swtrace's first line on stderr, before the command has written its
    // pid: swtrace then stops it at once (a pipe whose reader left is seen at once). Gone it
    // must be either way: no process runs the command line, which names the pid file.
    if FileManager.default.fileExists(atPath: pidFile) {
      Faults.expectCommandGone(pidFile, "\(result)")
    } else {
      let survivors = Faults.processes(mentioning: pidFile)
      #expect(survivors.isEmpty, "the -c command outlived swtrace (pids \(survivors))\n\(result)")
      for pid in survivors { kill(pid, SIGKILL) }
    }
  }

  @Test("-f json to a full disk: status 2, one sentence, and Samples 0 with every event lost", .needsTracing, .needsBash)
  func jsonToFullDisk() throws {
    // The command sends after a second, so that the probe is seen attached before the first
    // event's failed write ends the run.
    let trace = try Faults.commandLine([
      "-f", "json", "-e", Faults.spec(mark: 0xa193, printing: true), "-c", "sleep 1; " + (try Faults.send(mark: 0xa193, count: 100)),
    ])
    let process = try Faults.start("exec \(trace) >/dev/full")
    let objects = try Faults.attached(process)
    let result = process.wait(timeout: 60)
    #expect(result.status == 2 && crashSigns(result).isEmpty, "\(result)")
    #expect(
      result.stderr.contains("error: cannot write the trace output to standard output: No space left on device"), "\(result)")
    // Every datagram passes net_dev_queue once on loopback: up to 100 events (the run stops
    // at the first failed write, maybe before the last datagram), none received.
    let tally = summary(of: result)
    #expect(tally?.samples == 0 && (1...100).contains(tally?.lost ?? 0), "Samples 0, Lost 1 to 100: \(result)")
    Faults.expectReleased(objects, "\(result)")
  }

  @Test("stdout closed at start (>&-): status 2 and one sentence before anything is attached", .needsTracing, .needsBash)
  func stdoutClosed() throws {
    let trace = try Faults.commandLine(["-f", "json", "-d", "5", "-e", Faults.spec(mark: 0xa194, printing: true)])
    let result = try ProcessRunner.run("bash", ["-c", "exec \(trace) >&-"], timeout: 60)
    #expect(result.status == 2 && crashSigns(result).isEmpty, "\(result)")
    #expect(result.stderr.contains("error: cannot write the trace output to standard output: it was closed when swtrace started"), "\(result)")
    #expect(!result.stderr.contains("Attaching"), "nothing is attached for an output that cannot work: \(result)")
  }

  @Test(
    "fmt, -l and --dump-bpf to a full disk: status 2 and one sentence", .needsTracing, .needsBash,
    arguments: [
      (["fmt", "-e", "skb:net_dev_queue{print(len)}"], "the formatted spec"),
      (["-l", "skb:*"], "the probe list"),
      (["--dump-bpf", "-e", "skb:net_dev_queue { print(len) }"], "the instructions"),
    ])
  func oneShotOutputToFullDisk(arguments: [String], contents: String) throws {
    let result = try ProcessRunner.run("bash", ["-c", "exec \(try Faults.commandLine(arguments)) >/dev/full"], timeout: 60)
    #expect(result.status == 2 && crashSigns(result).isEmpty, "\(result)")
    #expect(result.stderr.contains("error: cannot write \(contents) to standard output: No space left on device"), "\(result)")
    // The same to a file that works: the output is whole.
    let fine = try ProcessRunner.run(try Faults.swtrace, arguments, timeout: 60)
    #expect(fine.status == 0 && !fine.stdout.isEmpty, "\(fine)")
  }

  @Test("-f json with -c: the command's own output goes to stderr, stdout stays JSON", .needsTracing)
  func commandOutputStaysOutOfJSON() throws {
    let command = "echo hello-from-the-command; \(try Faults.send(mark: 0xa195, count: 3))"
    let result = try ProcessRunner.run(
      try Faults.swtrace, ["-f", "json", "-e", Faults.spec(mark: 0xa195, printing: true), "-c", command], timeout: 60)
    #expect(result.status == 0, "\(result)")
    let parsed = JSONTraceOutput(result.stdout)
    #expect(parsed.malformed.isEmpty, "stdout holds only JSON: \(parsed.malformed)")
    #expect(parsed.events.count == 3 && parsed.maps["@n"] != nil, "\(result)")
    #expect(result.stderr.contains("hello-from-the-command") && result.stderr.contains("sent 3"), "\(result)")
  }
}

@Suite("faults: a reader that stops reading (issue 19)", .serialized)
struct StalledReaderTests {
  /// Starts swtrace writing `-f json` (or `format`) into a FIFO this test opens and never
  /// reads, under a flood from its -c command; returns it, its BPF objects, the reader and the
  /// pid file.
  func startStalled(
    _ extra: [String], mark: UInt32, scratch: ScratchDirectory, format: String = "json",
    statements: String = "print(len, ifname, probe)"
  ) throws -> (RunningProcess, BPFObjects, Int32, String) {
    let fifo = scratch.path("stalled.fifo")
    guard mkfifo(fifo, 0o600) == 0 else { throw ProcessRunnerError(description: "mkfifo: errno \(errno)") }
    // Opened first, without waiting for a writer; never read.
    let reader = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    guard reader >= 0 else { throw ProcessRunnerError(description: "open FIFO: errno \(errno)") }
    let pidFile = scratch.path("command.pid")
    let flood = "echo $$ > \(shellQuote(pidFile)); exec \(try Faults.send(mark: mark, count: 3_000_000, seconds: 60)) >/dev/null"
    let trace = try Faults.commandLine(
      extra + ["-f", format, "-e", "skb:* /mark == 0x\(String(mark, radix: 16))/ { \(statements) }", "-c", flood])
    let process = try Faults.start("exec \(trace) >\(shellQuote(fifo))")
    do {
      return (process, try Faults.attached(process, links: 10), reader, pidFile)
    } catch {
      close(reader)
      throw error
    }
  }

  /// The checks of a stop while the reader holds the pipe and reads nothing.
  func expectBoundedStop(_ result: ProcessResult, _ objects: BPFObjects, pidFile: String, sourceLocation: SourceLocation = #_sourceLocation) {
    // The reader still holds the FIFO (it is closed after this): swtrace did not wait for it.
    #expect(!result.timedOut, "swtrace waited for a reader that never reads:\n\(result)", sourceLocation: sourceLocation)
    #expect(result.status == 4 && crashSigns(result).isEmpty, "status 4, events were lost:\n\(result)", sourceLocation: sourceLocation)
    let tally = summary(of: result)
    #expect((tally?.lost ?? 0) > 0, "\(result)", sourceLocation: sourceLocation)
    #expect(result.stderr.contains("of the lost events were not written: standard output took no more within 1 s of the stop"), "\(result)", sourceLocation: sourceLocation)
    #expect(result.stderr.contains("error: ") && result.stderr.contains("were lost (swtrace exits with 4)"), "\(result)", sourceLocation: sourceLocation)
    Faults.expectReleased(objects, "\(result)", sourceLocation: sourceLocation)
    Faults.expectCommandGone(pidFile, "\(result)", sourceLocation: sourceLocation)
  }

  @Test("-d 2 under a flood into a pipe nobody reads: swtrace stops, detaches and exits while the reader still holds it", .needsTracing, .needsBash)
  func durationWithStalledReader() throws {
    let scratch = try ScratchDirectory("stalled-d")
    let (process, objects, reader, pidFile) = try startStalled(["-d", "2"], mark: 0xa196, scratch: scratch)
    defer { close(reader) }
    // Before this change swtrace blocked in write(2) until the reader read (15.9 s in the
    // issue, forever with a reader that never does); 40 s is the bound a hang would break.
    let result = process.wait(timeout: 40)
    expectBoundedStop(result, objects, pidFile: pidFile)
  }

  @Test("SIGTERM under a flood into a pipe nobody reads: swtrace stops, detaches and exits", .needsTracing, .needsBash)
  func terminateWithStalledReader() throws {
    let scratch = try ScratchDirectory("stalled-term")
    let (process, objects, reader, pidFile) = try startStalled([], mark: 0xa197, scratch: scratch)
    defer { close(reader) }
    Thread.sleep(forTimeInterval: 2)
    kill(process.pid, SIGTERM)
    let result = process.wait(timeout: 40)
    expectBoundedStop(result, objects, pidFile: pidFile)
  }
}

extension StalledReaderTests {
  /// Reads `reader` (non-blocking) from the moment swtrace's probes are detached, 4 KiB every
  /// 20 ms (slower than the flood fills the output's buffer, so that the stop still abandons
  /// events) until swtrace closes the FIFO; everything read.
  func readSlowlyAfterTheStop(_ reader: Int32, of process: RunningProcess) -> [UInt8] {
    let deadline = Date().addingTimeInterval(60)
    while !BPFObjects.held(by: process.pid).links.isEmpty, Date() < deadline {
      Thread.sleep(forTimeInterval: 0.02)
    }
    var received: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while Date() < deadline {
      let count = chunk.withUnsafeMutableBytes { read(reader, $0.baseAddress, $0.count) }
      if count == 0 { break }
      if count > 0 { received += chunk[..<count] }
      Thread.sleep(forTimeInterval: 0.02)
    }
    return received
  }

  @Test(
    "a reader that reads nothing until the stop: the events it missed are lost (status 4), and every line it gets is whole, the final map too (issue 19: `22@n: 1400000`)",
    .needsTracing, .needsBash, arguments: ["json", "text"])
  func finalMapsAfterAbandonedEvents(format: String) throws {
    let scratch = try ScratchDirectory("stalled-final-\(format)")
    let mark: UInt32 = format == "json" ? 0xa19b : 0xa19c
    let (process, objects, reader, pidFile) = try startStalled(
      ["-d", "2"], mark: mark, scratch: scratch, format: format, statements: "print(len, ifname, probe); @n[probe] = count()")
    defer { close(reader) }
    let received = String(decoding: readSlowlyAfterTheStop(reader, of: process), as: UTF8.self)
    let result = process.wait(timeout: 40)
    expectBoundedStop(result, objects, pidFile: pidFile)
    #expect(!result.stderr.contains("cut short"), "the reader came back: no line stays cut\n\(result)")
    #expect(received.hasSuffix("\n"), "the output ends with a whole line: \(received.suffix(200))")
    let lines = received.split(separator: "\n").map(String.init)
    var events = 0
    var mapEntries: [String: Int] = [:]
    var torn: [String] = []
    if format == "json" {
      let parsed = JSONTraceOutput(received)
      torn = parsed.malformed
      events = parsed.events.count
      for entry in parsed.maps["@n"]?.entries ?? [] {
        if let probe = entry.key("probe") ?? entry.keys.values.first.flatMap({ if case .string(let s) = $0 { s } else { nil } }),
          let count = entry.integer
        {
          mapEntries[probe] = Int(count)
        }
      }
    } else {
      // `TS CPU PROBE (len: N ifname: IF probe: PROBE)`, and the map's `@n[PROBE]: N`.
      let event = /^\d+ \d+ \S+ \(len: \d+ ifname: \S+ probe: \S+\)$/
      let entry = /^@n\[(\S+)\]: (\d+)$/
      for line in lines where !line.isEmpty {
        if line.wholeMatch(of: event) != nil {
          events += 1
        } else if let match = line.wholeMatch(of: entry) {
          mapEntries[String(match.1)] = Int(match.2)
        } else {
          torn.append(line)
        }
      }
    }
    #expect(torn.isEmpty, "lines neither a whole event nor a whole map entry: \(torn.prefix(3).map { String($0.prefix(300)) })")
    #expect(events > 0 && events == summary(of: result)?.samples, "the reader got the events counted as Samples: \(events)\n\(result)")
    // The map counted every event the programs emitted, printed or lost.
    #expect(!mapEntries.isEmpty && mapEntries.values.reduce(0, +) > events, "the final map: \(mapEntries)")
  }
}

@Suite("faults: signals and the -c command (issue 19)", .serialized)
struct SignalFaultTests {
  /// Starts swtrace counting datagrams marked `mark`, with a -c command that writes its pid
  /// and sleeps, and sends it 5 datagrams.
  func startCounting(mark: UInt32, scratch: ScratchDirectory) throws -> (RunningProcess, BPFObjects, String) {
    let pidFile = scratch.path("command.pid")
    let command = "echo $$ > \(shellQuote(pidFile)); exec sleep 60"
    let process = try Faults.start(
      "exec \(try Faults.commandLine(["-e", Faults.spec(mark: mark), "-c", command]))")
    let objects = try Faults.attached(process)
    let sent = try ProcessRunner.shell(try Faults.send(mark: mark, count: 5), timeout: 30)
    #expect(sent.succeeded, "\(sent)")
    Thread.sleep(forTimeInterval: 0.3)
    return (process, objects, pidFile)
  }

  @Test(
    "every terminating signal ends a trace as Ctrl-C does: status 0, the final map, the summary, the command gone",
    .needsTracing, .needsBash,
    arguments: [SIGHUP, SIGUSR1, SIGUSR2, SIGALRM, SIGQUIT, SIGPWR, SIGVTALRM])
  func terminatingSignal(signal: Int32) throws {
    let scratch = try ScratchDirectory("signal")
    let (process, objects, pidFile) = try startCounting(mark: 0xa198, scratch: scratch)
    kill(process.pid, signal)
    let result = process.wait(timeout: 20)
    let name = String(cString: strsignal(signal))
    #expect(!result.timedOut && result.status == 0 && crashSigns(result).isEmpty, "\(name):\n\(result)")
    #expect(Faults.count(result) == 5, "\(name): the final map: \(result)")
    #expect(summary(of: result) != nil, "\(name): the summary: \(result)")
    Faults.expectReleased(objects, "\(name): \(result)")
    Faults.expectCommandGone(pidFile, "\(name): \(result)")
  }

  @Test("SIGPIPE sent with kill is ignored (a closed pipe is a write error swtrace handles); SIGTERM then ends the trace", .needsTracing, .needsBash)
  func pipeSignalIsIgnored() throws {
    let scratch = try ScratchDirectory("sigpipe")
    let (process, objects, pidFile) = try startCounting(mark: 0xa199, scratch: scratch)
    kill(process.pid, SIGPIPE)
    Thread.sleep(forTimeInterval: 0.5)
    #expect(kill(process.pid, 0) == 0 && !isZombie(process.pid), "SIGPIPE ended swtrace")
    kill(process.pid, SIGTERM)
    let result = process.wait(timeout: 20)
    #expect(result.status == 0 && Faults.count(result) == 5, "\(result)")
    Faults.expectReleased(objects, "\(result)")
    Faults.expectCommandGone(pidFile, "\(result)")
  }

  @Test("SIGKILL of swtrace: the kernel detaches everything and the -c command is ended too", .needsTracing, .needsBash)
  func killedSwtraceTakesItsCommand() throws {
    let scratch = try ScratchDirectory("sigkill")
    let pidFile = scratch.path("command.pid")
    // A shell that waits for a child of its own: the whole group must go, not just the shell.
    let command = "exec >/dev/null 2>&1 </dev/null; sleep 60 & echo $! > \(shellQuote(pidFile)); wait"
    let process = try Faults.start("exec \(try Faults.commandLine(["-e", Faults.spec(mark: 0xa19a), "-c", command]))")
    let objects = try Faults.attached(process)
    _ = Faults.pid(in: pidFile)
    kill(process.pid, SIGKILL)
    let result = process.wait(timeout: 20)
    #expect(result.status == 128 + SIGKILL, "\(result)")
    Faults.expectReleased(objects, "\(result)")
    Faults.expectCommandGone(pidFile, "\(result)")
  }
}

@Suite("faults: reading the spec and BTF (issue 19)", .serialized)
struct InputFaultTests {
  static let spec = "skb:net_dev_queue /mark == 0xa19b/ { @n = count() }\n"

  @Test("a 4 GB spec file is refused by its size, before it is read", .needsTracing)
  func hugeSpecFile() throws {
    let scratch = try ScratchDirectory("huge")
    let path = scratch.path("huge.spec")
    // Sparse: 4 GiB of size, no disk.
    FileManager.default.createFile(atPath: path, contents: nil)
    guard truncate(path, 4 << 30) == 0 else { throw ProcessRunnerError(description: "truncate: errno \(errno)") }
    for arguments in [["check", path], ["-d", "1", path], ["fmt", path]] {
      let result = try ProcessRunner.run(try Faults.swtrace, arguments, timeout: 60)
      #expect(result.status == 1 && crashSigns(result).isEmpty, "\(result)")
      #expect(result.stderr.contains("it is 4294967296 bytes, more than the limit of 4194304"), "\(result)")
    }
  }

  @Test("a FIFO, /dev/stdin, <(...) and - are read as streams", .needsTracing, .needsBash)
  func streams() throws {
    let scratch = try ScratchDirectory("streams")
    let file = scratch.path("count.spec")
    try Self.spec.write(toFile: file, atomically: true, encoding: .utf8)
    let fifo = scratch.path("spec.fifo")
    #expect(mkfifo(fifo, 0o600) == 0)
    let swtrace = shellQuote(try Faults.swtrace)
    let cases = [
      "FIFO": "(cat \(shellQuote(file)) > \(shellQuote(fifo)) &); exec \(swtrace) check \(shellQuote(fifo))",
      "/dev/stdin": "exec \(swtrace) check /dev/stdin < \(shellQuote(file))",
      "<(...)": "exec \(swtrace) check <(cat \(shellQuote(file)))",
      "-": "cat \(shellQuote(file)) | \(swtrace) check -",
      "- as a trace": "cat \(shellQuote(file)) | \(swtrace) -d 1 -",
    ]
    for (name, command) in cases {
      let result = try ProcessRunner.run("bash", ["-c", command], timeout: 60)
      #expect(result.status == 0, "\(name):\n\(result)")
    }
  }

  @Test("a FIFO nobody writes to, as the spec or as --btf: status 1 after a bounded wait, never a hang", .needsTracing)
  func silentFIFO() throws {
    let scratch = try ScratchDirectory("silent")
    let fifo = scratch.path("silent.fifo")
    #expect(mkfifo(fifo, 0o600) == 0)
    // Both at once: each waits its 30 s, and make test need not wait twice.
    let running = try [["check", fifo], ["check", "--btf", fifo, "-e", Self.spec]].map {
      try RunningProcess(try Faults.swtrace, $0)
    }
    for process in running {
      let result = process.wait(timeout: 90)
      #expect(!result.timedOut && result.status == 1, "\(result)")
      #expect(result.stderr.contains("nothing arrived from it for 30 s"), "\(result)")
    }
  }

  @Test("--btf from a FIFO or <(...) that carries BTF works", .needsTracing, .needsBash)
  func btfStream() throws {
    let swtrace = shellQuote(try Faults.swtrace)
    let result = try ProcessRunner.run(
      "bash", ["-c", "exec \(swtrace) check --btf <(cat /sys/kernel/btf/vmlinux) -e \(shellQuote(Self.spec))"], timeout: 60)
    #expect(result.status == 0 && result.stderr.contains("ok (1 program)"), "\(result)")
  }
}

@Suite("faults: limits worded by their real cause (issue 19)", .serialized)
struct LimitFaultTests {
  static let spec = "skb:* /mark == 0xa19c/ { print(len) }"

  /// Runs swtrace under `prlimit` with `limit` (such as `--nofile=10:10`).
  func runLimited(_ limit: String, _ arguments: [String]) throws -> ProcessResult {
    try ProcessRunner.run("prlimit", [limit, "--", try Faults.swtrace] + arguments, timeout: 120)
  }

  @Test("ulimit -n 10: too many open files, with the advice, not a verifier rejection", .needsTracing)
  func fewOpenFiles() throws {
    let result = try runLimited("--nofile=10:10", ["-d", "1", "-e", Self.spec])
    #expect(result.status == 2 && crashSigns(result).isEmpty, "\(result)")
    #expect(result.stderr.contains("too many open files") && result.stderr.contains("ulimit -n"), "\(result)")
    #expect(!result.stderr.contains("verifier") && !result.stderr.contains("bug"), "\(result)")
  }

  @Test("2,000 clauses with 1,024 descriptors: the limit is said, none are 'skipped'", .needsTracing)
  func manyClauses() throws {
    let scratch = try ScratchDirectory("clauses")
    let path = scratch.path("many.spec")
    try (0..<2000).map { "skb:net_dev_queue /mark == 0xa19c/ { @n\($0 % 4) = count() }" }.joined(separator: "\n")
      .write(toFile: path, atomically: true, encoding: .utf8)
    let result = try runLimited("--nofile=1024:1024", ["-d", "1", path])
    #expect(result.status == 2 && crashSigns(result).isEmpty, "\(result)")
    #expect(result.stderr.contains("too many open files (the limit is 1024)"), "\(result)")
    #expect(!result.stderr.contains("skipped") && !result.stderr.contains("Attaching"), "\(result)")
  }

  @Test(
    "ulimit -v: the address-space limit is named, wherever memory runs out (BTF, the ring buffer), not 'the kernel has no BTF'",
    .needsTracing, arguments: [30, 40])
  func smallAddressSpace(mebibytes: Int) throws {
    let result = try runLimited("--as=\(mebibytes << 20)", ["-d", "1", "-e", Self.spec])
    #expect(result.status == 2 && crashSigns(result).isEmpty, "\(result)")
    #expect(result.stderr.contains("address space is limited to \(mebibytes) MiB ('ulimit -v')"), "\(result)")
    #expect(!result.stderr.contains("has no BTF"), "\(result)")
  }

  @Test("ulimit -l 0: this kernel charges BPF memory to the cgroup, so tracing works", .needsTracing)
  func noLockedMemory() throws {
    let release = (try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)) ?? ""
    let version = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
    guard version.count == 2, (version[0], version[1]) >= (5, 11) else {
      try skip("kernel \(release) charges BPF memory to RLIMIT_MEMLOCK")
    }
    let result = try runLimited("--memlock=0:0", ["-d", "1", "-e", Self.spec])
    #expect(result.status == 0, "\(result)")
  }

  @Test("--map-entries asking for more kernel memory than SWTRACE_MAP_MEMORY_WARNING: a warning with the estimate", .needsTracing)
  func mapMemoryWarning() throws {
    let result = try ProcessRunner.run(
      try Faults.swtrace, ["-d", "1", "--map-entries", "200000", "-e", "skb:net_dev_queue /mark == 0xa19c/ { @n[len] = count() }"],
      timeout: 60, environment: ProcessInfo.processInfo.environment.merging(["SWTRACE_MAP_MEMORY_WARNING": "1"]) { $1 })
    #expect(result.status == 0, "\(result)")
    #expect(
      result.stderr.contains("warning: the spec's maps take about") && result.stderr.contains("MiB of kernel memory (--map-entries 200000"),
      "\(result)")
  }
}

@Suite("faults: untrusted text (issue 19)", .serialized)
struct UntrustedTextTests {
  /// A process name that retitles the terminal and turns text red; any process may take it.
  static let hostileName = "x\u{1B}]0;pwned\u{07}\u{1B}[31m"

  @Test("a process name with escape sequences prints escaped in text, and as JSON escapes in JSON", .needsTracing)
  func hostileProcessName() throws {
    let scratch = try ScratchDirectory("comm")
    // The kernel names a process after its executable: a link with the hostile name.
    let link = scratch.path(Self.hostileName)
    try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: try Faults.pktgen)
    let send = ([link] + ["udp", "--dst", "127.0.0.1", "--port", "\(Faults.port)", "--count", "1", "--mark", "0xa19d"])
      .map(shellQuote).joined(separator: " ")
    let spec = "skb:net_dev_queue /mark == 0xa19d/ { print(comm) }"
    let text = try ProcessRunner.run(try Faults.swtrace, ["-e", spec, "-c", send], timeout: 60)
    #expect(text.status == 0, "\(text)")
    #expect(!text.stdout.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" }, "a control character reached stdout: \(text)")
    // The kernel keeps 15 bytes of the name: up to "[31".
    let expected = #"x\x1b]0;pwned\x07\x1b[31"#
    #expect(text.stdoutLines.contains { $0.hasSuffix("(comm: \(expected))") }, "\(text)")
    let json = try ProcessRunner.run(try Faults.swtrace, ["-f", "json", "-e", spec, "-c", send], timeout: 60)
    let event = JSONTraceOutput(json.stdout).events.first
    #expect(event?.values["comm"] == .string(String(Self.hostileName.utf8.prefix(15))!), "\(json)")
  }

  @Test("spec text with escape sequences is echoed escaped in diagnostics", .needsTracing)
  func hostileSpecText() throws {
    let result = try ProcessRunner.run(
      try Faults.swtrace, ["check", "-e", "skb:net_dev_queue { print(len) } \(Self.hostileName)"], timeout: 60)
    #expect(result.status == 1, "\(result)")
    #expect(!result.stderr.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" }, "a control character reached stderr: \(result)")
    #expect(result.stderr.contains(#"x\x1b]0;pwned\x07\x1b[31m"#), "\(result)")
  }
}

@Suite("faults: -f paths while the kernel reuses skbs (issue 19)", .serialized)
struct PathFaultTests {
  /// Marked UDP from namespace A to a receiver in B across the veth: the mark is scrubbed
  /// in B, so the free matches no filter, and the receiver frees the skb where the kernel
  /// has no tracepoint, so its memory is reused for the next datagram.
  @Test("every datagram is a path of its own, however often its skb's address comes back", .needsTracing, .needsNetwork)
  func onePathPerDatagram() throws {
    let pair = try NetworkNamespacePair(subnet: 120)
    defer { pair.remove() }
    let pktgen = try Faults.pktgen
    let sent = 3000
    let sink = try RunningSink(pktgen: pktgen, namespace: pair.namespaceB, port: 9120, count: sent, maxSeconds: 30)
    let send = pair.shellCommand(in: pair.namespaceA, [
      pktgen, "udp", "--dst", pair.addressB, "--port", "9120", "--count", "\(sent)", "--rate", "3000", "--mark", "0xa19e",
    ]) + " >/dev/null"
    let result = try ProcessRunner.run(
      try Faults.swtrace, ["-f", "paths-json", "-e", "skb:* /mark == 0xa19e/ { print(len) }", "-c", send], timeout: 90)
    let received = sink.finish(timeout: 30).received
    #expect(result.status == 0 && summary(of: result)?.lost == 0, "\(result)")
    let paths = result.stdoutLines.compactMap(PacketPath.parse)
    #expect(paths.count == result.stdoutLines.count, "every line is a path")
    // Each datagram leaves A once through net_dev_queue on vethA: one path each, none glued.
    let queued = paths.map { path in path.hops.filter { $0.probe == "net_dev_queue" && $0.string("ifname") == pair.vethA }.count }
    #expect(queued.filter { $0 == 1 }.count == sent, "paths with one departure from A: \(queued.filter { $0 == 1 }.count) of \(sent)")
    #expect(queued.allSatisfy { $0 <= 1 }, "a path holds \(queued.max() ?? 0) departures: datagrams glued into one")
    // Those the kernel freed at a tracepoint end complete there, after the mark was scrubbed.
    let freed = paths.filter { $0.complete && $0.hops.last?.probe == "consume_skb" }.count
    #expect(freed > 0, "no path ended at consume_skb: \(firstFew(paths))")
    #expect(received == sent, "the receiver got \(received ?? -1) of \(sent)")
  }

  @Test("a flood of reused skbs keeps swtrace's memory bounded, and --paths-max holds", .needsTracing, .needsNetwork)
  func boundedUnderReuse() throws {
    let pair = try NetworkNamespacePair(subnet: 121)
    defer { pair.remove() }
    let pktgen = try Faults.pktgen
    // A receiver that never reads: datagrams wait in its socket (never freed while tracing)
    // until the buffer is full; the rest are dropped (freed, and seen) as the flood goes on.
    let receiver = try RunningProcess("ip", [
      "netns", "exec", pair.namespaceB, "python3", "-c",
      "import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('\(pair.addressB)', 9121)); time.sleep(40)",
    ])
    defer { receiver.stop() }
    Thread.sleep(forTimeInterval: 0.5)
    let flood = pair.shellCommand(in: pair.namespaceA, [
      pktgen, "udp", "--dst", pair.addressB, "--port", "9121", "--count", "2000000", "--max-seconds", "12", "--mark", "0xa19f",
    ]) + " >/dev/null 2>&1; exit 0"
    let trace = try Faults.commandLine(
      ["-f", "paths", "--paths-max", "50", "-e", "skb:* /mark == 0xa19f/ { print(len) }", "-c", flood])
    let process = try Faults.start("exec \(trace) > >(exec grep -c '^packet skb')")
    let objects = try Faults.attached(process, links: 10)
    var samples: [Int] = []
    for _ in 0..<12 {
      Thread.sleep(forTimeInterval: 1)
      if let bytes = residentBytes(of: process.pid) { samples.append(bytes) }
    }
    let result = process.wait(timeout: 60)
    let mebibytes = samples.map { String(format: "%.1f", Double($0) / 1048576) }
    print("note: \(#function): VmRSS in MiB, one sample a second: \(mebibytes.joined(separator: " "))")
    let lost = summary(of: result)?.lost
    #expect(lost != nil && result.status == (lost! > 0 ? 4 : 0), "\(result)")
    try #require(samples.count >= 8, "swtrace went away early:\n\(result)")
    // After two seconds of warm-up, the flood of paths must not grow swtrace.
    let growth = samples[2...].max()! - samples[2]
    #expect(growth < 32 << 20, "RSS grew by \(growth >> 20) MiB under the flood: \(mebibytes)")
    #expect(result.stderr.contains("to stay within --paths-max 50 open paths"), "\(result)")
    Faults.expectReleased(objects, "\(result)")
  }
}
