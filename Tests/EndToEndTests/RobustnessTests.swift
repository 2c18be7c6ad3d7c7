// Robustness (issue 10), end to end: bad input gets a clear error and a non-zero status,
// never a crash; every way out of a trace ends with status 0, the final maps printed and
// every BPF program gone; a closed pipe ends swtrace quietly; a flood of events is counted,
// never lost silently.
//
// Exits are checked on loopback traffic (127.0.0.1) marked with a mark of each test's own.

import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Whether `pid` has exited but not been reaped (state Z in /proc/PID/stat).
func isZombie(_ pid: Int32) -> Bool {
  guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
    let close = stat.lastIndex(of: ")")
  else { return false }
  return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
}

/// Signs that a program crashed instead of reporting an error.
func crashSigns(_ result: ProcessResult) -> [String] {
  let text = result.stdout + result.stderr
  var signs = ["Fatal error", "Program crashed", "Backtracing", "Segmentation fault", "Illegal instruction", "*** Signal",
    "ERROR: AddressSanitizer"]
    .filter { text.contains($0) }
  if result.status >= 128 { signs.append("killed by signal \(result.status - 128)") }
  if result.status == 86 { signs.append("status 86: AddressSanitizer's exit code under scripts/asan.sh") }
  return signs
}

@Suite("robustness: bad input (issue 10)", .serialized)
struct BadInputTests {
  /// Runs swtrace with `arguments` and checks the error contract: `status`, `error:` on
  /// stderr, nothing on stdout, no crash, finished within `timeout`.
  @discardableResult
  func expectError(
    _ arguments: [String], status: Int32 = 1, mentioning words: [String] = [], timeout: Double = 60,
    sourceLocation: SourceLocation = #_sourceLocation
  ) throws -> ProcessResult {
    let swtrace = try TestEnvironment.binary("swtrace")
    let result = try ProcessRunner.run(swtrace, arguments, timeout: timeout)
    let shown = arguments.map { $0.count > 200 ? String($0.prefix(200)) + "...(\($0.utf8.count) bytes)" : $0 }
    let brief = "swtrace \(shown.map(shellQuote).joined(separator: " ")): status \(result.status)"
      + (result.timedOut ? " (killed at its \(Int(timeout)) s timeout)" : "")
      + "\n--- stderr (first 1500 characters) ---\n\(result.stderr.prefix(1500))"
    #expect(!result.timedOut, "\(brief)", sourceLocation: sourceLocation)
    #expect(crashSigns(result).isEmpty, "crashed (\(crashSigns(result))):\n\(brief)", sourceLocation: sourceLocation)
    #expect(result.status == status, "expected status \(status):\n\(brief)", sourceLocation: sourceLocation)
    #expect(result.stderr.contains("error:"), "stderr should say error: ...\n\(brief)", sourceLocation: sourceLocation)
    #expect(result.stdout.isEmpty, "nothing belongs on stdout:\n\(brief)\n--- stdout ---\n\(result.stdout.prefix(1000))", sourceLocation: sourceLocation)
    for word in words {
      #expect(result.stderr.contains(word), "the message should mention '\(word)':\n\(brief)", sourceLocation: sourceLocation)
    }
    return result
  }

  @Test("spec errors exit 1 with a located message", .needsTracing, arguments: [
    ("", "no clauses"),
    ("// only a comment\n", "no clauses"),
    ("kprobee:tcp_sendmsg { print(pid) }", "did you mean"),
    ("skb:no_such_tracepoint_at_all { print(len) }", "skb:no_such_tracepoint_at_all"),
    ("skb:zz_nothing_matches_* { print(len) }", "skb:zz_nothing_matches_*"),
    ("tracepoint:net:zz_nothing_matches_* { print(len) }", "tracepoint:net:zz_nothing_matches_*"),
    ("tracepoint:no_such_category:x { print(pid) }", "no_such_category"),
    ("skb:net_dev_queue { print(nosuchfield) }", "nosuchfield"),
    ("skb:net_dev_queue { print(skb->nosuchmember) }", "nosuchmember"),
    ("skb:net_dev_queue { print(ip.nosuch) }", "ip.nosuch"),
    ("skb:net_dev_queue { @x = sum(ifname) }", "string"),
    ("skb:net_dev_queue { @x = hist(ip.saddr in 10.0.0.0/8, 3) }", "hist"),
    ("skb:net_dev_queue /ifname == 3/ { print(len) }", "string"),
    ("skb:net_dev_queue /len == \"abc\"/ { print(len) }", "string"),
    ("skb:net_dev_queue /comm > 1/ { print(len) }", "string"),
    ("interval:0s { print(\"never\") }", "interval"),
    ("interval:0ms { print(\"never\") }", "interval"),
    ("skb:net_dev_queue { print(len) ", "<spec>:1:"),
    ("skb:net_dev_queue /len > 1 { print(len) }", "<spec>:1:"),
  ])
  func specErrors(spec: String, mention: String) throws {
    // As a trace (the default command; -d bounds it should it start after all) and as a check.
    try expectError(["-d", "5", "-e", spec], mentioning: [mention])
    try expectError(["check", "-e", spec], mentioning: [mention])
  }

  @Test("33 maps are one too many", .needsTracing)
  func tooManyMaps() throws {
    let maps = (1...33).map { "@m\($0) = count()" }.joined(separator: "; ")
    try expectError(["-d", "5", "-e", "skb:net_dev_queue { \(maps) }"], mentioning: ["32"])
    // 32 are fine (one clause each: a single clause has only 512 bytes of stack).
    let swtrace = try TestEnvironment.binary("swtrace")
    let fine = (1...32).map { "skb:net_dev_queue { @m\($0) = count() }" }.joined(separator: "\n")
    let check = try ProcessRunner.run(swtrace, ["check", "-e", fine], timeout: 120)
    #expect(check.status == 0, "32 maps are allowed:\n\(check)")
  }

  @Test("a map key too large is refused", .needsTracing)
  func keyTooLarge() throws {
    let keys = Array(repeating: "comm", count: 40).joined(separator: ", ")
    try expectError(["-d", "5", "-e", "skb:net_dev_queue { @big[\(keys)] = count() }"], mentioning: ["@big"])
  }

  @Test("spec files that cannot be read: missing, a directory, not UTF-8", .needsTracing)
  func unreadableFiles() throws {
    let scratch = try ScratchDirectory("bad")
    defer { scratch.remove() }
    let missing = scratch.path("does-not-exist.spec")
    try expectError(["-d", "5", missing], mentioning: [missing])
    try expectError(["check", missing], mentioning: [missing])
    try expectError(["-d", "5", scratch.url.path], mentioning: ["directory"])
    let latin1 = scratch.path("latin1.spec")
    try Data("skb:net_dev_queue { print(len) } // caf".utf8 + [0xe9, 0xff, 0xfe, 0x0a]).write(to: URL(fileURLWithPath: latin1))
    try expectError(["-d", "5", latin1], mentioning: ["UTF-8"])
    try expectError(["check", latin1], mentioning: ["UTF-8"])
  }

  static let megabyte = 1 << 20

  @Test("a 1 MB spec that is a clause and a long comment runs", .needsTracing)
  func megabyteComment() throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    let scratch = try ScratchDirectory("big")
    defer { scratch.remove() }
    let commented = scratch.path("commented.spec")
    try ("skb:net_dev_queue /mark == 0xa10a/ { @n = count() }\n// " + String(repeating: "x", count: Self.megabyte) + "\n")
      .write(toFile: commented, atomically: true, encoding: .utf8)
    let run = try ProcessRunner.run(swtrace, ["-d", "1", commented], timeout: 120)
    #expect(run.status == 0 && crashSigns(run).isEmpty, "a spec with a 1 MB comment should run:\n\(run)")
  }

  @Test("a long filter expression (8 KB, 1 MB) is checked or refused with an error, never a crash", .needsTracing, arguments: [2000, 1 << 18])
  func longExpression(terms: Int) throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    let scratch = try ScratchDirectory("big")
    defer { scratch.remove() }
    // Valid syntax: `len != 0 + 1 + 1 + ...`; swtrace may refuse it as too large or too
    // deep, but must say so rather than crash. Generated specs easily reach thousands of terms.
    let file = scratch.path("long-expression.spec")
    try ("skb:net_dev_queue /len != 0" + String(repeating: " + 1", count: terms) + "/ { @n = count() }\n")
      .write(toFile: file, atomically: true, encoding: .utf8)
    let result = try ProcessRunner.run(swtrace, ["check", file], timeout: 120)
    let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
    let brief = "swtrace check on a \(size)-byte filter of \(terms) additions: status \(result.status)\n\(result.stderr.prefix(1500))"
    #expect(!result.timedOut, "\(brief)")
    #expect(crashSigns(result).isEmpty, "crashed: \(brief)")
    #expect(result.status == 0 || (result.status == 1 && result.stderr.contains("error:")), "\(brief)")
  }

  @Test("1 MB of text that is not a spec: status 1 and an error report of readable size", .needsTracing)
  func megabyteGarbage() throws {
    let scratch = try ScratchDirectory("big")
    defer { scratch.remove() }
    // Lines of characters swtrace does not know, like any text file given by mistake.
    let garbage = scratch.path("garbage.spec")
    try String(repeating: String(repeating: "#", count: 63) + "\n", count: Self.megabyte / 64)
      .write(toFile: garbage, atomically: true, encoding: .utf8)
    let result = try expectError(["check", garbage], timeout: 60)
    #expect(
      result.stderr.utf8.count < Self.megabyte,
      "1 MB of garbage produced \(result.stderr.utf8.count) bytes of diagnostics in \(String(format: "%.1f", result.seconds)) s; an error report should stay readable")
  }

  @Test("--btf pointing at something that is not BTF", .needsTracing)
  func notBTF() throws {
    let scratch = try ScratchDirectory("btf")
    defer { scratch.remove() }
    let text = scratch.path("not-btf.txt")
    try "this is not BTF\n".write(toFile: text, atomically: true, encoding: .utf8)
    let empty = scratch.path("empty.btf")
    FileManager.default.createFile(atPath: empty, contents: Data())
    for file in [text, empty, scratch.path("missing.btf"), "/etc/passwd"] {
      try expectError(["check", "--btf", file, "-e", "skb:* { print(len) }"], mentioning: [file])
      try expectError(["--dump-bpf", "--btf", file, "-e", "skb:* { print(len) }"], mentioning: [file])
    }
  }

  @Test("a -c command that does not exist: status 2 and a message", .needsTracing)
  func missingCommand() throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    let result = try ProcessRunner.run(
      swtrace, ["-c", "swtrace-no-such-command-\(getpid())", "-e", "skb:net_dev_queue /mark == 0xa10b/ { @n = count() }"],
      timeout: 60)
    #expect(result.status == 2, "\(result)")
    #expect(crashSigns(result).isEmpty, "\(result)")
    #expect(result.stderr.contains("error:") && result.stderr.contains("-c command"), "\(result)")
  }
}

@Suite("robustness: ways out (issue 10)", .serialized)
struct ExitTests {
  static let port = 9810

  /// The spec every exit test runs: count marked datagrams on loopback.
  static func spec(mark: UInt32, extra: String = "") -> String {
    "skb:net_dev_queue /mark == 0x\(String(mark, radix: 16))/ { @n = count()\(extra) }"
  }

  /// Sends `count` datagrams marked `mark` over loopback and waits for the sender.
  static func sendMarked(_ mark: UInt32, count: Int = 5, rate: Int? = nil) throws -> ProcessResult {
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    var arguments = [
      "udp", "--dst", "127.0.0.1", "--port", "\(port)", "--count", "\(count)", "--sizes", "64",
      "--mark", "0x" + String(mark, radix: 16), "--max-seconds", "20",
    ]
    if let rate { arguments += ["--rate", "\(rate)"] }
    return try ProcessRunner.run(pktgen, arguments, timeout: 30)
  }

  /// Starts swtrace and waits until its probes are attached; returns it with its BPF objects.
  static func startAttached(_ arguments: [String], links: Int = 1) throws -> (RunningProcess, BPFObjects) {
    let swtrace = try TestEnvironment.binary("swtrace")
    let process = try RunningProcess(swtrace, arguments)
    let objects = BPFObjects.waitForAttach(pid: process.pid, links: links, timeout: 60)
    guard objects.links.count >= links else {
      let result = process.stop()
      throw ProcessRunnerError(description: "swtrace did not attach \(links) probe(s) within 60 s:\n\(result)")
    }
    return (process, objects)
  }

  /// Status 0, the final map, the summary, and every BPF object of the run released.
  func expectCleanExit(
    _ result: ProcessResult, objects: BPFObjects, count expected: ClosedRange<Int>,
    sourceLocation: SourceLocation = #_sourceLocation
  ) {
    #expect(!result.timedOut, "swtrace did not stop:\n\(result)", sourceLocation: sourceLocation)
    #expect(result.status == 0, "\(result)", sourceLocation: sourceLocation)
    #expect(crashSigns(result).isEmpty, "\(result)", sourceLocation: sourceLocation)
    let line = result.stdoutLines.first { $0.hasPrefix("@n: ") }
    let count = line.flatMap { Int($0.dropFirst(4)) }
    #expect(count.map(expected.contains) == true, "final map @n should be printed with \(expected): \(result)", sourceLocation: sourceLocation)
    #expect(summary(of: result) != nil, "Samples: N Lost: M at the end of stderr:\n\(result)", sourceLocation: sourceLocation)
    let left = BPFObjects.stillLoaded(objects)
    #expect(left.isEmpty, "still loaded after swtrace exited: \(left)\n\(result)", sourceLocation: sourceLocation)
    let named = BPFObjects.swtracePrograms(among: objects.programs)
    #expect(named.isEmpty, "bpftool prog show still lists: \(named)", sourceLocation: sourceLocation)
  }

  @Test("SIGINT and SIGTERM end a trace with status 0 and the final maps", .needsTracing, arguments: [SIGINT, SIGTERM])
  func signalEndsTrace(signal: Int32) throws {
    let mark: UInt32 = signal == SIGINT ? 0xa101 : 0xa102
    let (process, objects) = try Self.startAttached(["-e", Self.spec(mark: mark)])
    let sent = try Self.sendMarked(mark)
    #expect(sent.succeeded, "\(sent)")
    Thread.sleep(forTimeInterval: 0.3)
    process.signal(signal)
    let result = process.wait(timeout: 20)
    expectCleanExit(result, objects: objects, count: 5...5)
  }

  @Test("-d SECONDS ends a trace with status 0 and the final maps", .needsTracing)
  func durationEndsTrace() throws {
    let (process, objects) = try Self.startAttached(["-d", "3", "-e", Self.spec(mark: 0xa103)])
    let sent = try Self.sendMarked(0xa103)
    #expect(sent.succeeded, "\(sent)")
    let result = process.wait(timeout: 30)
    expectCleanExit(result, objects: objects, count: 5...5)
    #expect(result.seconds >= 3 && result.seconds < 20, "-d 3 should take about 3 s: \(result)")
  }

  @Test("the -c command finishing ends a trace with status 0 and the final maps", .needsTracing)
  func commandFinishEndsTrace() throws {
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    let send = [pktgen, "udp", "--dst", "127.0.0.1", "--port", "\(Self.port)", "--count", "5", "--mark", "0xa104"]
      .map(shellQuote).joined(separator: " ") + " >/dev/null"
    let (process, objects) = try Self.startAttached(["-c", "sleep 1; " + send, "-e", Self.spec(mark: 0xa104)])
    let result = process.wait(timeout: 60)
    expectCleanExit(result, objects: objects, count: 5...5)
  }

  @Test("the -c command killed by a signal ends a trace with status 0 and the final maps", .needsTracing)
  func commandKilledEndsTrace() throws {
    let scratch = try ScratchDirectory("exit")
    defer { scratch.remove() }
    let pidFile = scratch.path("child.pid")
    let (process, objects) = try Self.startAttached([
      "-c", "echo $$ > \(shellQuote(pidFile)); exec sleep 60", "-e", Self.spec(mark: 0xa105),
    ])
    let sent = try Self.sendMarked(0xa105)
    #expect(sent.succeeded, "\(sent)")
    Thread.sleep(forTimeInterval: 0.3)
    let deadline = Date().addingTimeInterval(10)
    var child: Int32?
    while child == nil && Date() < deadline {
      child = scratch.read("child.pid").flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
      if child == nil { Thread.sleep(forTimeInterval: 0.05) }
    }
    guard let child, child > 1 else {
      Issue.record("the -c command never wrote its pid")
      process.stop()
      return
    }
    kill(child, SIGKILL)
    let result = process.wait(timeout: 20)
    expectCleanExit(result, objects: objects, count: 5...5)
    #expect(result.seconds < 40, "swtrace should stop when its command dies, not when sleep 60 would have ended: \(result)")
  }

  @Test("exit() in a spec ends a trace with status 0 and the final maps", .needsTracing)
  func exitInSpec() throws {
    let (process, objects) = try Self.startAttached(["-e", Self.spec(mark: 0xa106, extra: "; exit()")])
    // One datagram every 100 ms: the first one ends the trace; a few may be counted first.
    let sent = try Self.sendMarked(0xa106, count: 20, rate: 10)
    _ = sent
    let result = process.wait(timeout: 20)
    expectCleanExit(result, objects: objects, count: 1...20)
    #expect(result.seconds < 15, "\(result)")
  }

  @Test("when swtrace stops before its -c command, the command is stopped too", .needsTracing, arguments: ["-d", "exit()", "SIGTERM"])
  func commandStoppedWithTrace(way: String) throws {
    let scratch = try ScratchDirectory("orphan")
    defer { scratch.remove() }
    let pidFile = scratch.path("sleep.pid")
    // A command that is not a single exec'd program: a shell waiting for a child. Its
    // output goes elsewhere, so that a survivor cannot hold swtrace's pipes open.
    let command = "exec >/dev/null 2>&1 </dev/null; sleep 60 & echo $! > \(shellQuote(pidFile)); wait"
    let mark: UInt32 = 0xa10c
    var arguments = ["-c", command, "-e", Self.spec(mark: mark, extra: way == "exit()" ? "; exit()" : "")]
    if way == "-d" { arguments = ["-d", "2"] + arguments }
    let (process, objects) = try Self.startAttached(arguments)
    _ = try Self.sendMarked(mark, count: 1)
    if way == "SIGTERM" {
      Thread.sleep(forTimeInterval: 0.3)
      kill(process.pid, SIGTERM)  // swtrace alone, as a service manager or kill(1) would
    }
    let result = process.wait(timeout: 30)
    guard let text = scratch.read("sleep.pid"), let sleeper = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)),
      sleeper > 1
    else {
      Issue.record("the -c command never wrote its child's pid:\n\(result)")
      return
    }
    defer { kill(sleeper, SIGKILL) }  // the sleep 60 this test started, by its pid
    expectCleanExit(result, objects: objects, count: 1...1)
    // Give the command a moment to go, then look for the sleep it started.
    let deadline = Date().addingTimeInterval(3)
    var alive = kill(sleeper, 0) == 0
    while alive && Date() < deadline {
      Thread.sleep(forTimeInterval: 0.05)
      alive = kill(sleeper, 0) == 0 && !isZombie(sleeper)
    }
    #expect(!alive, "after swtrace ended (\(way)), its -c command '\(command)' still runs: sleep pid \(sleeper) is alive\n\(result)")
  }

  @Test("a second SIGINT exits at once, even while swtrace is stuck writing", .needsTracing)
  func secondInterrupt() throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    let scratch = try ScratchDirectory("sigint")
    defer { scratch.remove() }
    // stdout is a pipe nobody reads: once it is full, swtrace blocks writing events, and a
    // first SIGINT cannot finish its orderly exit.
    let process = Process()
    process.executableURL = URL(fileURLWithPath: swtrace)
    process.arguments = ["-e", "skb:* /mark == 0xa107/ { print(len, ifname, probe) }"]
    let stdout = Pipe()
    process.standardOutput = stdout
    FileManager.default.createFile(atPath: scratch.path("stderr"), contents: nil)
    process.standardError = FileHandle(forWritingAtPath: scratch.path("stderr"))
    process.standardInput = FileHandle.nullDevice
    try withEmptySignalMask { try process.run() }
    let pid = process.processIdentifier
    defer {
      if process.isRunning { kill(pid, SIGKILL) }
      try? stdout.fileHandleForReading.close()
    }
    let objects = BPFObjects.waitForAttach(pid: pid, links: 10, timeout: 60)
    try #require(objects.links.count >= 10, "swtrace did not attach: \(scratch.read("stderr") ?? "")")
    let sent = try Self.sendMarked(0xa107, count: 20000)
    #expect(sent.succeeded, "\(sent)")
    // Wait (bounded) until it is blocked in a pipe write.
    let deadline = Date().addingTimeInterval(10)
    var wchan = ""
    while Date() < deadline {
      wchan = (try? String(contentsOfFile: "/proc/\(pid)/wchan", encoding: .utf8)) ?? ""
      if wchan.contains("pipe_write") { break }
      Thread.sleep(forTimeInterval: 0.05)
    }
    kill(pid, SIGINT)
    Thread.sleep(forTimeInterval: 0.5)
    if !process.isRunning {
      // Nothing to interrupt a second time; the first one was enough, which is fine too.
      print("note: \(#function): swtrace exited on the first SIGINT (wchan was '\(wchan)')")
    } else {
      let sentSecond = Date()
      kill(pid, SIGINT)
      let stopped = Date().addingTimeInterval(3)
      while process.isRunning && Date() < stopped { Thread.sleep(forTimeInterval: 0.01) }
      #expect(!process.isRunning, "swtrace still runs 3 s after a second SIGINT")
      if !process.isRunning {
        #expect(Date().timeIntervalSince(sentSecond) < 1.5, "a second SIGINT should exit at once")
      }
    }
    if process.isRunning { kill(pid, SIGKILL) }
    process.waitUntilExit()
    let left = BPFObjects.stillLoaded(objects)
    #expect(left.isEmpty, "still loaded after a second SIGINT: \(left)")
  }

  /// The line a `-c` command prints on stderr when it was not stopped: its sending ran to the end.
  static let ranToEnd = "the -c command ran to its end"

  @Test("writing into a closed pipe (| head -1) under a flood ends swtrace, and its command, with status 0", .needsTracing, .needsBash)
  func closedPipe() throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    let scratch = try ScratchDirectory("closed-pipe")
    let headOutput = scratch.path("head.out")
    // The command would send for 90 s (10,000 datagrams a second, faster than swtrace prints
    // some ten events each) and then say so on stderr; swtrace must stop it when head has gone,
    // long before. What is checked is how the run ended, not how long it took: the command was
    // stopped (its last line never came), swtrace exited 0 without an error and released what
    // it held. The command waits a second first, so that the probes are seen attached.
    let send = "sleep 1; " + [
      pktgen, "udp", "--dst", "127.0.0.1", "--port", "\(Self.port)", "--count", "900000", "--rate", "10000",
      "--mark", "0xa108", "--max-seconds", "90",
    ].map(shellQuote).joined(separator: " ") + " >/dev/null 2>&1; echo \(shellQuote(Self.ranToEnd)) >&2"
    let trace = [swtrace, "-c", send, "-e", "skb:* /mark == 0xa108/ { print(len) }"].map(shellQuote)
      .joined(separator: " ")
    // bash execs swtrace (so the process is swtrace, whose BPF objects are looked up), its
    // stdout a pipe to head -1.
    let process = try RunningProcess("bash", ["-c", "exec \(trace) > >(exec head -1 > \(shellQuote(headOutput)))"])
    let objects = BPFObjects.waitForAttach(pid: process.pid, links: 10, timeout: 60)
    let result = process.wait(timeout: 150)
    #expect(objects.links.count >= 10, "swtrace was not seen attached: \(result)")
    #expect(!result.timedOut && result.status == 0 && crashSigns(result).isEmpty, "\(result)")
    #expect(!result.stderr.contains("error:"), "a closed pipe is not an error: \(result)")
    #expect(!result.stderr.contains(Self.ranToEnd), "swtrace ran until its command ended instead of stopping when head left: \(result)")
    let left = BPFObjects.stillLoaded(objects)
    #expect(left.isEmpty, "still loaded after swtrace exited: \(left)")
    // head wrote its line before it left, which is what ended swtrace.
    let printed = (try? String(contentsOfFile: headOutput, encoding: .utf8)) ?? ""
    #expect(printed.split(separator: "\n").count == 1 && printed.contains("(len: "), "head printed one event line: '\(printed)'\n\(result)")
    print("note: \(#function): swtrace ended \(String(format: "%.1f", result.seconds)) s after it started (the command would have sent for 90 s)")
  }

  @Test("a pipe's reader that leaves ends swtrace even when no event comes to write", .needsTracing, .needsBash)
  func closedPipeWithoutEvents() throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    // Nothing carries this mark: swtrace never writes, so no EPIPE tells it; the pipe does
    // (poll's POLLERR once the reader has gone). The reader leaves after 2 s, while swtrace
    // traces (or before it started, which ends it too); the command would run 60 s.
    let trace = [
      swtrace, "-c", "sleep 60; echo \(shellQuote(Self.ranToEnd)) >&2", "-e", "skb:* /mark == 0xa1fe/ { print(len) }",
    ].map(shellQuote).joined(separator: " ")
    let result = try ProcessRunner.run(
      "bash", ["-c", "\(trace) | sleep 2; echo \"swtrace status ${PIPESTATUS[0]}\" >&2"], timeout: 120)
    #expect(!result.timedOut, "\(result)")
    #expect(result.stderr.contains("swtrace status 0"), "\(result)")
    #expect(crashSigns(result).isEmpty && !result.stderr.contains("error:"), "\(result)")
    #expect(!result.stderr.contains(Self.ranToEnd), "swtrace ran until its command ended instead of stopping when the reader left: \(result)")
  }

  @Test("-d ends a trace on time while a flood keeps the ring buffer full", .needsTracing)
  func durationUnderFlood() throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    // The command would send for 45 s, faster than swtrace prints (skb:* is some ten
    // events per datagram); -d 3 must end the trace (and the command) after 3 s, not when
    // the traffic stops. The bound leaves room for a slow start under ASan on a busy machine.
    let send = "exec " + [
      pktgen, "udp", "--dst", "127.0.0.1", "--port", "\(Self.port)", "--count", "900000", "--rate", "20000",
      "--mark", "0xa10d", "--max-seconds", "45",
    ].map(shellQuote).joined(separator: " ") + " >/dev/null 2>&1"
    // Events to /dev/null: the point is swtrace's loop, not this test reading megabytes.
    let trace = [swtrace, "-d", "3", "-c", send, "-e", "skb:* /mark == 0xa10d/ { print(len, ifname, probe) }"]
      .map(shellQuote).joined(separator: " ")
    let result = try ProcessRunner.run("/bin/sh", ["-c", "exec \(trace) >/dev/null"], timeout: 90)
    // Events lost to the flood end the run with status 4 (and say so); none lost, with 0.
    let lost = summary(of: result)?.lost
    #expect(lost != nil && result.status == (lost! > 0 ? 4 : 0) && crashSigns(result).isEmpty, "\(result)")
    #expect(result.seconds < 30, "-d 3 under a flood took \(String(format: "%.1f", result.seconds)) s:\n\(result)")
    if let tally = summary(of: result), tally.lost == 0 {
      print("note: \(#function): the ring buffer never overflowed (Samples \(tally.samples)); the flood was mild here")
    }
  }

  @Test("a flood: Samples + Lost equals the events the kernel attempted, counted in the same run", .needsTracing)
  func floodLosesNothingSilently() throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    // The sender says how many datagrams it sent ("sent N"); on a loaded machine it may stop
    // at --max-seconds before 200,000, which is no fault of swtrace's, so its status is not
    // swtrace's business here and the count it reports is the expectation.
    let scratch = try ScratchDirectory("flood")
    defer { scratch.remove() }
    let sentFile = scratch.path("sent")
    let send = [
      pktgen, "udp", "--dst", "127.0.0.1", "--port", "\(Self.port)", "--count", "200000", "--sizes", "64",
      "--mark", "0xa109", "--max-seconds", "15",
    ].map(shellQuote).joined(separator: " ") + " >\(shellQuote(sentFile)) 2>&1; exit 0"
    let result = try ProcessRunner.run(
      swtrace, ["-c", send, "-e", "skb:* /mark == 0xa109/ { print(len); @n = count() }"], timeout: 120)
    let lostCount = summary(of: result)?.lost
    try #require(lostCount != nil && result.status == (lostCount! > 0 ? 4 : 0) && !result.timedOut, "\(result)")
    let senderReport = (try? String(contentsOfFile: sentFile, encoding: .utf8)) ?? ""
    let sent = senderReport.split(separator: "\n").last { $0.hasPrefix("sent ") }.flatMap { Int($0.dropFirst(5)) }
    let attempted = result.stdoutLines.last { $0.hasPrefix("@n: ") }.flatMap { Int($0.dropFirst(4)) }
    let tally = summary(of: result)
    let eventLines = result.stdoutLines.filter { !$0.hasPrefix("@") }.count
    try #require(attempted != nil && tally != nil, "need both @n and the summary:\n\(result)")
    try #require(sent != nil && sent! > 0, "the sender's report: \(senderReport)")
    #expect(tally!.samples + tally!.lost == attempted!, "Samples \(tally!.samples) + Lost \(tally!.lost) should be @n \(attempted!)")
    #expect(tally!.samples == eventLines, "Samples counts the lines printed")
    #expect(attempted! >= sent!, "every datagram sent (\(sent!)) is seen at least at net_dev_queue: @n \(attempted!)")
    if tally!.lost == 0 { print("note: \(#function): the ring buffer never overflowed; Lost was 0") }
  }
}
