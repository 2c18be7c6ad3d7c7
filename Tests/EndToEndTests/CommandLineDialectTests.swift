// The command line a bpftrace user already knows (issue 27): -f FORMAT, -o FILE, -p PID, -q,
// the old `-o json` refused with a way forward, usage errors (64), the -c command's failure,
// a spec on standard input, and the first screen of `swtrace --help`.
//
// Traffic is loopback only: swtrace-pktgen sends datagrams marked with a value of this file's
// own (0xd1xx), and what swtrace reports is compared with what was sent.

import Foundation
import Testing

@Suite("command line: bpftrace's dialect (issue 27)", .serialized)
struct CommandLineDialectTests {
  static let port = 9870

  /// A shell command sending `count` datagrams of 64 payload bytes marked `mark` to loopback.
  static func send(count: Int, mark: UInt32) throws -> String {
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    return [pktgen, "udp", "--dst", "127.0.0.1", "--port", "\(port)", "--count", "\(count)", "--mark", String(format: "0x%x", mark)]
      .map(shellQuote).joined(separator: " ")
  }

  @Test("the old -o json is refused with exit 64, says to write -f json, and creates no file", arguments: ["json", "text", "paths", "paths-json"])
  func oldOutputSpelling(format: String) throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    let scratch = try ScratchDirectory("dialect")
    defer { scratch.remove() }
    let result = try ProcessRunner.shell(
      "cd \(shellQuote(scratch.url.path)) && exec \(shellQuote(swtrace)) -o \(format) -e 'skb:* { print(len) }'")
    #expect(result.status == 64, "\(result)")
    #expect(result.stderr.contains("write -f \(format)"), "\(result)")
    #expect(result.stderr.contains("-o ./\(format)"), "\(result)")
    #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.url.path).isEmpty, "a file was created")
  }

  @Test("usage errors exit 64 with a sentence", arguments: [
    ["-d", "0", "-e", "skb:* { print(len) }"],
    ["-f", "yaml", "-e", "skb:* { print(len) }"],
    ["-p", "0", "-e", "skb:* { print(len) }"],
    ["--no-such-option"],
    // With -e, a file argument is $1 (as in bpftrace); with -l it cannot be both.
    ["-l", "-e", "skb:* { print(len) }", "skb:net_*"],
  ])
  func usageErrors(arguments: [String]) throws {
    let result = try ProcessRunner.run(try TestEnvironment.binary("swtrace"), arguments, timeout: 60)
    #expect(result.status == 64, "\(result)")
    #expect(result.stderr.contains("Error: "), "\(result)")
  }

  @Test("-p names a process that must exist")
  func pidMustExist() throws {
    // Process ids stop below /proc/sys/kernel/pid_max, at most 2^22.
    let result = try ProcessRunner.run(
      try TestEnvironment.binary("swtrace"), ["-p", "\(1 << 23)", "-e", "skb:* { print(len) }"], timeout: 60)
    #expect(result.status == 64, "\(result)")
    #expect(result.stderr.contains("no such process"), "\(result)")
  }

  @Test("swtrace --help: the tracing options, examples within 80 columns, where the language is described")
  func helpFirstScreen() throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    let help = try ProcessRunner.run(swtrace, ["--help"], timeout: 30)
    #expect(help.status == 0, "\(help)")
    for option in ["-e <SPEC>", "-c, --command <CMD>", "-d, --duration <SECONDS>", "-f, --format <FORMAT>",
                   "-o, --output <FILE>", "-p, --pid <PID>", "-l, --list", "-q, --quiet", "-v, --verbose"] {
      #expect(help.stdout.contains(option), "--help lacks \(option):\n\(help.stdout)")
    }
    #expect(help.stdout.contains("man swtrace") && help.stdout.contains("grammar/README.md"), "\(help.stdout)")
    let long = help.stdoutLines.filter { $0.count > 80 }
    #expect(long.isEmpty, "lines over 80 columns: \(long)")
    // Every spelling of "help" at the top gives the same screen.
    for spelling in [["-h"], ["help"], ["help", "trace"], ["trace", "--help"]] {
      let other = try ProcessRunner.run(swtrace, spelling, timeout: 30)
      #expect(other.stdout == help.stdout, "swtrace \(spelling.joined(separator: " ")) differs from swtrace --help")
    }
  }

  @Test("a spec on standard input: check -, fmt -")
  func specFromStandardInput() throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    let check = try ProcessRunner.shell("printf 'skb:net_dev_queue { print(len) }' | \(shellQuote(swtrace)) check -")
    #expect(check.status == 0 && check.stderr.contains("<stdin>: ok (1 program)"), "\(check)")
    let format = try ProcessRunner.shell("printf 'skb:*/len>1/{print(len)}' | \(shellQuote(swtrace)) fmt -")
    #expect(format.status == 0 && format.stdout == "skb:* /len > 1/ {\n  print(len)\n}\n", "\(format)")
    let inline = try ProcessRunner.run(swtrace, ["fmt", "-e", "skb:*/len>1/{print(len)}"], timeout: 30)
    #expect(inline.stdout == format.stdout, "\(inline)")
  }

  @Test("-f json -o FILE: every event in the file, only the -c command's output on stdout", .needsTracing)
  func outputFile() throws {
    let scratch = try ScratchDirectory("dialect")
    defer { scratch.remove() }
    let file = scratch.path("trace.json")
    let sent = 4
    let result = try ProcessRunner.run(
      try TestEnvironment.binary("swtrace"),
      ["-f", "json", "-o", file, "-c", try Self.send(count: sent, mark: 0xd101),
       "-e", "skb:net_dev_queue /mark == 0xd101/ { print(len, ifname) }"], timeout: 120)
    #expect(result.status == 0, "\(result)")
    #expect(result.stdout == "sent \(sent)\n", "stdout should hold the -c command's output alone:\n\(result)")
    let output = JSONTraceOutput(scratch.read("trace.json") ?? "")
    #expect(output.malformed.isEmpty, "\(output.malformed)")
    // 64 bytes of payload behind Ethernet, IPv4 and UDP headers (14 + 20 + 8) on lo.
    #expect(output.events.count == sent, "\(result)")
    for event in output.events {
      #expect(event.values["len"] == .integer(106) && event.values["ifname"] == .string("lo"), "\(event)")
    }
    #expect(summary(of: result)?.samples == sent, "\(result)")
  }

  @Test("-o FILE on a full disk (/dev/full) ends the run with exit 2 and a sentence naming it", .needsTracing)
  func outputFileWriteError() throws {
    let result = try ProcessRunner.run(
      try TestEnvironment.binary("swtrace"),
      ["-o", "/dev/full", "-c", try Self.send(count: 3, mark: 0xd102),
       "-e", "skb:net_dev_queue /mark == 0xd102/ { print(len) }"], timeout: 120)
    #expect(result.status == 2, "\(result)")
    #expect(result.stderr.contains("error: cannot write the trace output to '/dev/full': No space left on device"), "\(result)")
  }

  @Test("-o FILE that cannot be created is refused before anything is loaded", .needsTracing)
  func outputFileCannotBeCreated() throws {
    let result = try ProcessRunner.run(
      try TestEnvironment.binary("swtrace"), ["-o", "/nonexistent-\(getpid())/trace.txt", "-e", "skb:* { print(len) }"],
      timeout: 60)
    #expect(result.status == 2, "\(result)")
    #expect(result.stderr.contains("cannot open '/nonexistent-\(getpid())/trace.txt'"), "\(result)")
    #expect(!result.stderr.contains("Attaching"), "\(result)")
  }

  /// Two senders with the same mark, one of them the -p process: only its datagrams count,
  /// and the run ends by itself when that process exits.
  @Test("-p PID keeps only that process's events and ends the run when it exits", .needsTracing)
  func processFilter() throws {
    let scratch = try ScratchDirectory("dialect")
    defer { scratch.remove() }
    let ready = scratch.path("attached")
    let mark: UInt32 = 0xd103
    // The traced process waits until swtrace has attached (its -c command creates the file),
    // then becomes the sender (exec keeps its pid).
    let traced = try RunningProcess(
      "/bin/sh", ["-c", "i=0; while [ ! -e \(shellQuote(ready)) ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; exec \(try Self.send(count: 5, mark: mark)) >/dev/null"])
    defer { traced.stop() }
    let other = try Self.send(count: 7, mark: mark)
    let result = try ProcessRunner.run(
      try TestEnvironment.binary("swtrace"),
      ["-p", "\(traced.pid)", "-c", "\(other) >/dev/null; touch \(shellQuote(ready)); sleep 60",
       "-e", "skb:net_dev_queue /mark == 0xd103/ { @sent = count(); @by[pid] = count() }"], timeout: 60)
    #expect(result.status == 0, "\(result)")
    #expect(result.stdoutLines.contains("@sent: 5"), "the traced process sent 5, another 7:\n\(result)")
    #expect(result.stdoutLines.contains("@by[\(traced.pid)]: 5"), "\(result)")
    #expect(result.seconds < 40, "the run should end when process \(traced.pid) exits, not with its -c command:\n\(result)")
  }

  /// `-p 1` once failed with an error about something else; as in bpftrace it traces
  /// process 1, which sends none of our datagrams: a run that ends with the -c command (pid 1
  /// never exits), and nothing counted of the 4 marked datagrams another process sent, while
  /// the same run without -p counts all 4.
  @Test("-p 1 traces process 1: another process's datagrams are not counted, and the run ends with -c", .needsTracing)
  func processOne() throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    let spec = "skb:net_dev_queue /mark == 0xd106/ { @n = count() }"
    let filtered = try ProcessRunner.run(
      swtrace, ["-p", "1", "-c", try Self.send(count: 4, mark: 0xd106) + " >/dev/null", "-e", spec], timeout: 120)
    #expect(filtered.status == 0, "\(filtered)")
    #expect(!filtered.stderr.contains("rror"), "\(filtered)")
    #expect(filtered.stdoutLines == ["@n: (empty)"], "\(filtered)")
    let unfiltered = try ProcessRunner.run(
      swtrace, ["-c", try Self.send(count: 4, mark: 0xd106) + " >/dev/null", "-e", spec], timeout: 120)
    #expect(unfiltered.status == 0, "\(unfiltered)")
    #expect(unfiltered.stdoutLines == ["@n: 4"], "\(unfiltered)")
  }

  @Test("-q: no progress messages and no Samples line when nothing was lost; the output is unchanged", .needsTracing)
  func quiet() throws {
    let result = try ProcessRunner.run(
      try TestEnvironment.binary("swtrace"),
      ["-q", "-c", try Self.send(count: 2, mark: 0xd104) + " >/dev/null",
       "-e", "skb:net_dev_queue /mark == 0xd104/ { @n = count() }"], timeout: 120)
    #expect(result.status == 0, "\(result)")
    #expect(result.stderr.isEmpty, "\(result)")
    #expect(result.stdout == "@n: 2\n", "\(result)")
  }

  @Test("a -c command that fails: its status said, swtrace exits 3; one that cannot run: 2", .needsTracing)
  func commandFailure() throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    let failed = try ProcessRunner.run(swtrace, ["-c", "exit 5", "-e", "skb:net_dev_queue /mark == 0xd105/ { @n = count() }"], timeout: 60)
    #expect(failed.status == 3, "\(failed)")
    #expect(failed.stderr.contains("the -c command failed: it exited with status 5"), "\(failed)")
    #expect(summary(of: failed) != nil, "the summary is still printed:\n\(failed)")
    // swtrace-pktgen refuses destinations outside its test ranges (status 2 of its own).
    let refused = try ProcessRunner.run(
      swtrace, ["-c", try TestEnvironment.binary("swtrace-pktgen") + " udp --dst 192.0.2.1 --port 9 --count 1",
                "-e", "skb:net_dev_queue /mark == 0xd105/ { @n = count() }"], timeout: 60)
    #expect(refused.status == 3, "\(refused)")
    #expect(refused.stderr.contains("refusing --dst 192.0.2.1"), "\(refused)")
    #expect(refused.stderr.contains("exited with status 2"), "\(refused)")
  }
}
