// Documentation that is executed (issue 27): every command block of README.md,
// grammar/README.md, deploy/README.md, the headers of specs/ and the examples of
// `swtrace --help` (which are the manual's EXAMPLES) is run exactly as written, and the output
// it shows is compared with what the commands print.
//
// The convention, for whoever writes documentation:
//
//   - A command block is a code block (indented by four spaces, or fenced without a language)
//     whose lines start with a prompt: `# ` for a command run as root, `$ ` for one any user
//     may run. A command continues on the next line while a line ends with `\`. The lines
//     after a command, up to the next prompt, are its output (stdout and stderr as they
//     interleave). A line `...` stands for any number of lines; otherwise every line must
//     match, after normalising what varies from run to run: timestamps, CPUs, kernel addresses
//     and symbol offsets, namespace inode numbers and the host name (DocumentedOutput.rules).
//     Counts, lengths, names and all other values must be exactly as shown.
//   - Every command must exit 0. To show a command failing, end it with
//     `|| echo "exit status $?"` and show that line.
//   - The commands of a block run in order in one bash process, from the repository's root,
//     with the swtrace and swtrace-pktgen under test first on PATH. A block must create and
//     remove what it needs: network namespaces in 10.200.0.0/16 (`ip netns add` ... `ip netns
//     del`; the test also removes them, in case a run is killed), or loopback. Background
//     jobs must be ended by the block itself.
//   - A block is run unless a marking comment on the line before it (blank lines between
//     allowed) says otherwise: `<!-- doctest: vm -->` runs it in the VM lane instead (for
//     function backends: scripts/vm/doc-examples.sh, generated from the docs, compared by
//     VMLaneTests), `<!-- doctest: not run: REASON -->` leaves it out for the reason given. In
//     a spec header the marking is a comment line `// doctest: vm` or `// doctest: not run: ...`
//     and a block is a run of lines `//` + three spaces starting with a prompt.
//   - Fenced blocks in a language (swtrace, text, ebnf, yaml, promql, json) are not commands
//     (the grammar tests check the swtrace ones); any other code block without a prompt is an
//     error, so no command escapes this test.
//
// Running the blocks takes a few minutes and loads BPF programs that count all traffic of the
// machine (drops, resets), so it runs alone: `make test` runs this suite after the others with
// SWTRACE_DOCTEST=1; without it (or without root) the runs are skipped with that reason. The
// checks of the documents' structure, the manual and the completions always run.

import Foundation
import Testing
import TestSupport

@Suite("documentation: every command runs as written (issue 27)", .serialized)
struct DocumentationTests {
  static let markdownFiles = ["README.md", "grammar/README.md", "deploy/README.md"]

  static var specFiles: [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: packageRoot.appendingPathComponent("specs").path)) ?? []
    return names.filter { $0.hasSuffix(".spec") }.sorted().map { "specs/" + $0 }
  }

  /// The help screens whose examples run: swtrace --help (the manual's EXAMPLES), check, fmt.
  static let helpScreens: [(name: String, arguments: [String])] = [
    ("swtrace --help", ["--help"]), ("swtrace help check", ["help", "check"]), ("swtrace help fmt", ["help", "fmt"]),
  ]

  static func read(_ file: String) throws -> String {
    try String(contentsOf: packageRoot.appendingPathComponent(file), encoding: .utf8)
  }

  /// Every block of every documented source, in order.
  static func allBlocks() throws -> [DocumentedBlock] {
    var blocks: [DocumentedBlock] = []
    for file in markdownFiles { blocks += try DocumentedCommands.markdownBlocks(try read(file), file: file) }
    for file in specFiles { blocks += try DocumentedCommands.specBlocks(try read(file), file: file) }
    let swtrace = try TestEnvironment.binary("swtrace")
    for screen in helpScreens {
      let help = try ProcessRunner.run(swtrace, screen.arguments, timeout: 30)
      blocks += DocumentedCommands.helpBlocks(help.stdout, file: screen.name)
    }
    return blocks
  }

  /// The locations of all blocks, as test arguments (a block that cannot be parsed shows up
  /// in `documentsParse`).
  static var blockLocations: [String] { ((try? allBlocks()) ?? []).map(\.location) }

  // MARK: - Structure (always)

  @Test("every code block of the documents is commands with prompts, or fenced in a language")
  func documentsParse() throws {
    let blocks = try Self.allBlocks()
    for file in Self.markdownFiles + Self.specFiles {
      #expect(blocks.contains { $0.file == file }, "\(file) has no command block")
    }
    for screen in Self.helpScreens {
      #expect(blocks.contains { $0.file == screen.name }, "\(screen.name) shows no example")
    }
    let commands = blocks.flatMap(\.commands)
    #expect(commands.count >= 40, "only \(commands.count) commands found")
    for block in blocks where block.marking == .run {
      for command in block.commands where command.text.contains("swtrace") && command.text.contains(" -o ") {
        // -o is the output file now; a leftover `-o json` would be refused.
        #expect(!command.text.contains(" -o json") && !command.text.contains(" -o text"), "\(block.location): \(command.text)")
      }
    }
  }

  /// Each spec's header says how to make its traffic: a block that runs the spec, and removes
  /// every firewall rule it adds (with the namespace holding it, or by deleting the rule).
  @Test("every spec header runs its spec with traffic it makes itself, and undoes its rules")
  func specHeadersAreRecipes() throws {
    let blocks = try Self.allBlocks()
    for file in Self.specFiles {
      let own = blocks.filter { $0.file == file }
      let runs = own.flatMap(\.commands).contains { $0.text.contains("swtrace") && $0.text.contains(file) }
      #expect(runs, "\(file): no command of its header runs it")
      for block in own {
        let text = block.commands.map(\.text).joined(separator: "\n")
        let addsRule = text.contains("nft add") || text.contains("iptables -A") || text.contains("iptables -I")
        let namespaces = block.namespaces
        let removesNamespaces = namespaces.allSatisfy { text.contains("ip netns del \($0)") }
        #expect(removesNamespaces, "\(block.location): creates \(namespaces) without removing them")
        if addsRule {
          #expect(
            (!namespaces.isEmpty && text.contains("ip netns exec")) || text.contains("nft delete") || text.contains("iptables -D"),
            "\(block.location): adds a firewall rule outside a namespace it removes, and never deletes it")
        }
      }
    }
  }

  /// The language blocks outside the reference (whose own are checked by GrammarExampleTests):
  /// each is a spec that checks against the running kernel, as a reader would try it.
  @Test("the swtrace blocks of README.md and deploy/README.md check against this kernel")
  func specBlocksCheck() throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    var checked = 0
    for file in ["README.md", "deploy/README.md"] {
      let lines = try Self.read(file).split(separator: "\n", omittingEmptySubsequences: false)
      var index = 0
      while index < lines.count {
        guard lines[index] == "```swtrace" else {
          index += 1
          continue
        }
        let start = index + 1
        var end = start
        while end < lines.count && lines[end] != "```" { end += 1 }
        let spec = lines[start..<end].joined(separator: "\n")
        let result = try ProcessRunner.run(swtrace, ["check", "-e", spec], timeout: 60)
        #expect(result.status == 0, "\(file):\(start): the spec does not check:\n\(result)")
        checked += 1
        index = end + 1
      }
    }
    #expect(checked >= 2, "only \(checked) swtrace blocks found")
  }

  @Test("the manual's EXAMPLES are swtrace --help's, and it describes every option")
  func manualMatchesHelp() throws {
    let manual = try Self.read("docs/swtrace.1")
    let swtrace = try TestEnvironment.binary("swtrace")
    let help = try ProcessRunner.run(swtrace, ["--help"], timeout: 30)
    for block in DocumentedCommands.helpBlocks(help.stdout, file: "swtrace --help") {
      for command in block.commands {
        for line in command.text.split(separator: "\n") {
          let written = line.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "\\", with: "\\e")
          let documented = manual.contains(written)
          #expect(documented, "docs/swtrace.1 lacks the example line `\(line)`: run scripts/gen-docs.sh")
        }
      }
    }
    // Every option of every subcommand, as `.It Fl x , -long` or `.It Fl -long`.
    let options = try NSRegularExpression(pattern: #"^  (-\w)?(, )?(--[\w-]+)?"#, options: [.anchorsMatchLines])
    for screen in ["--help", "help check", "help fmt"] {
      let text = try ProcessRunner.run(swtrace, screen.split(separator: " ").map(String.init), timeout: 30).stdout
      for match in options.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
        let short = Range(match.range(at: 1), in: text).map { String(text[$0].dropFirst()) }
        let long = Range(match.range(at: 3), in: text).map { String(text[$0].dropFirst(2)) }
        if short == nil && long == nil { continue }
        let item = ".It Fl " + [short, long.map { "-" + $0 }].compactMap { $0 }.joined(separator: " , ")
        let documented = manual.contains(item)
        #expect(documented, "docs/swtrace.1 lacks `\(item)` (swtrace \(screen)): run scripts/gen-docs.sh")
      }
    }
    for section in ["THE LANGUAGE", "ENVIRONMENT", "FILES", "EXIT STATUS", "EXAMPLES"] {
      let present = manual.contains(".Sh \(section)")
      #expect(present, "docs/swtrace.1 has no \(section) section")
    }
  }

  @Test("docs/completions are the scripts swtrace generates", arguments: ["bash", "zsh", "fish"])
  func completionsAreCurrent(shell: String) throws {
    let generated = try ProcessRunner.run(
      try TestEnvironment.binary("swtrace"), ["--generate-completion-script", shell], timeout: 30)
    #expect(generated.status == 0, "\(generated)")
    let stored = try Self.read("docs/completions/swtrace.\(shell)")
    #expect(stored == generated.stdout, "docs/completions/swtrace.\(shell) is out of date: run scripts/gen-docs.sh")
  }

  /// The VM blocks become scripts/vm/doc-examples.sh, which the VM lane runs; SWTRACE_RECORD=1
  /// rewrites it.
  @Test("scripts/vm/doc-examples.sh holds the documentation's VM blocks")
  func vmScriptIsCurrent() throws {
    let script = DocumentedCommands.vmScript(try Self.allBlocks().filter { $0.marking == .vm })
    let path = packageRoot.appendingPathComponent(DocumentedCommands.vmScriptPath)
    if ProcessInfo.processInfo.environment["SWTRACE_RECORD"] == "1" {
      try script.write(to: path, atomically: true, encoding: .utf8)
    }
    let stored = try? String(contentsOf: path, encoding: .utf8)
    #expect(stored == script, "\(DocumentedCommands.vmScriptPath) is out of date: run SWTRACE_RECORD=1 swift test --filter DocumentationTests")
  }

  // MARK: - Running the blocks (SWTRACE_DOCTEST=1, as root)

  static var runSkipReason: String? {
    if ProcessInfo.processInfo.environment["SWTRACE_DOCTEST"] != "1" {
      return "the documentation's commands run alone, after the other suites: make test sets SWTRACE_DOCTEST=1"
    }
    return TestEnvironment.tracingSkipReason
  }

  @Test("the block runs as written and prints what the documentation shows", arguments: blockLocations)
  func blockRuns(location: String) throws {
    guard let block = try Self.allBlocks().first(where: { $0.location == location }) else {
      Issue.record("no block at \(location) any more")
      return
    }
    switch block.marking {
    case .notRun(let reason): try skip("\(location): not run: \(reason)")
    case .vm: try skip("\(location): runs in the VM lane (VMLaneTests)")
    case .run: break
    }
    if let reason = Self.runSkipReason { try skip(reason) }
    let results = try DocumentedRun.run(block)
    for (command, result) in zip(block.commands, results.commands) {
      #expect(
        result.status == 0,
        "\(block.file):\(command.line): `\(command.text)` exited with status \(result.status):\n\(result.output.joined(separator: "\n"))")
      #expect(
        !command.showsOutput || DocumentedOutput.matches(expected: command.expected, actual: result.output),
        "\(block.file):\(command.line): `\(command.text)` printed other than the documentation shows.\n--- shown ---\n\(command.expected.joined(separator: "\n"))\n--- printed ---\n\(result.output.joined(separator: "\n"))\n---")
    }
    #expect(results.commands.count == block.commands.count, "\(location): the block stopped early:\n\(results.log)")
    #expect(results.leftoverJobs == 0, "\(location): \(results.leftoverJobs) background jobs were still running at the end")
    #expect(!results.timedOut, "\(location): killed at its time limit:\n\(results.log)")
  }
}

extension DocumentationTests {
  /// The test's teeth, on a real run: README's first trace as shown passes, and the same with
  /// one length changed, one hop less or one line more does not.
  @Test(
    "a changed example output fails the comparison against a real run",
    .requires("SWTRACE_DOCTEST=1, root and a kernel that lets swtrace attach") { DocumentationTests.runSkipReason })
  func changedOutputFails() throws {
    let blocks = try DocumentedCommands.markdownBlocks(try Self.read("README.md"), file: "README.md")
    let block = try #require(
      blocks.first { $0.marking == .run && $0.commands.count == 1 && $0.commands[0].expected.contains { $0.contains("len: 106") } })
    let run = try DocumentedRun.run(block)
    let printed = try #require(run.commands.first, "\(run.log)").output
    let shown = block.commands[0].expected
    #expect(DocumentedOutput.matches(expected: shown, actual: printed), "\(printed)")
    let changedLength = shown.map { $0.replacingOccurrences(of: "len: 106", with: "len: 107") }
    #expect(!DocumentedOutput.matches(expected: changedLength, actual: printed))
    let hopLess = shown.filter { !$0.contains("icmp_send") }
    #expect(!DocumentedOutput.matches(expected: hopLess, actual: printed))
    #expect(!DocumentedOutput.matches(expected: shown + ["extra"], actual: printed))
  }
}

/// Runs one block's commands in one bash process and splits what they printed per command.
enum DocumentedRun {
  struct Result {
    var commands: [(output: [String], status: Int32)] = []
    var leftoverJobs = 0
    var timedOut = false
    var log = ""
  }

  static let timeLimit: Double = 240

  static func run(_ block: DocumentedBlock) throws -> Result {
    let scratch = try ScratchDirectory("doctest")
    defer { scratch.remove() }
    let bin = TestEnvironment.binDirectory.path
    let token = "@@doctest-\(getpid())-\(UUID().uuidString.prefix(8))"
    var script = """
      exec 2>&1
      cd \(shellQuote(packageRoot.path)) || exit 90
      export PATH=\(shellQuote(bin)):"$PATH"

      """
    for (index, command) in block.commands.enumerated() {
      let file = scratch.path("command-\(index).sh")
      try (command.text + "\n").write(toFile: file, atomically: true, encoding: .utf8)
      script += """
        printf '%s\\n' '\(token) begin \(index)'
        . \(shellQuote(file))
        status=$?
        printf '\\n%s %d\\n' '\(token) end \(index)' "$status"

        """
    }
    script += """
      left=$(jobs -rp | wc -l)
      printf '\\n%s %d\\n' '\(token) jobs' "$left"
      for job in $(jobs -rp); do kill "$job"; done
      wait

      """
    try script.write(toFile: scratch.path("block.sh"), atomically: true, encoding: .utf8)
    removeNamespaces(block.namespaces)
    defer { removeNamespaces(block.namespaces) }
    let process = try RunningProcess("bash", [scratch.path("block.sh")])
    let finished = process.wait(timeout: timeLimit)
    var result = Result(timedOut: finished.timedOut, log: finished.stdout)
    let text = finished.stdout
    for index in block.commands.indices {
      guard let begin = text.range(of: "\(token) begin \(index)\n"),
        let end = text.range(of: "\n\(token) end \(index) ", range: begin.upperBound..<text.endIndex)
      else { break }
      let output = String(text[begin.upperBound..<end.lowerBound])
      let statusText = text[end.upperBound...].prefix { $0.isNumber }
      var lines = output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
      if lines.last == "" { lines.removeLast() }
      result.commands.append((lines, Int32(statusText) ?? -1))
    }
    if let jobs = text.range(of: "\n\(token) jobs ") {
      result.leftoverJobs = Int(text[jobs.upperBound...].prefix { $0.isNumber }) ?? 0
    }
    return result
  }

  static func removeNamespaces(_ names: [String]) {
    for name in names {
      _ = try? ProcessRunner.run("ip", ["netns", "delete", name], timeout: 20)
    }
  }
}
