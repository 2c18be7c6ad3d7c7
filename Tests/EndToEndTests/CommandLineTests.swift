// The command line as a user meets it, without loading anything into the kernel: probe
// listings, checking specs against other kernels' BTF, formatting, and the README's commands.

import Foundation
import Testing
import TestSupport

@Suite("swtrace command line")
struct CommandLineTests {
  @Test("-l 'skb:*' lists the skb tracepoints of this kernel, named as a spec names them", .needsTracing)
  func listsRunningKernelTracepoints() throws {
    let result = try ProcessRunner.run(try TestEnvironment.binary("swtrace"), ["-l", "skb:*"], timeout: 60)
    #expect(result.status == 0, "\(result)")
    let lines = result.stdoutLines
    #expect(lines.contains("skb:net_dev_queue (struct sk_buff * skb)"), "\(result)")
    #expect(lines.contains { $0.hasPrefix("skb:kfree_skb (struct sk_buff * skb, void * location, enum skb_drop_reason reason") })
    #expect(lines.count == 30)
    #expect(result.stderr.contains("30 attach points"))
  }

  /// What `-l` prints can be pasted back: each listed name, as a probe of a spec, checks and
  /// attaches to exactly the one point it was listed for.
  @Test("every name -l prints is a probe a spec accepts", .needsTracing, arguments: ["skb:*", "tracepoint:net:*", "tracepoint:skb:*", "tracepoint:sock:*"])
  func listedNamesArePastable(pattern: String) throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    let listing = try ProcessRunner.run(swtrace, ["-l", pattern], timeout: 60)
    #expect(listing.status == 0, "\(listing)")
    let names = listing.stdoutLines.compactMap { $0.split(separator: " ").first.map(String.init) }
    #expect(!names.isEmpty, "\(listing)")
    #expect(names.allSatisfy { !$0.contains("(") }, "a name runs into its arguments: \(listing)")
    // One spec with every listed name as a clause of its own: it checks, one program each.
    let spec = names.map { "\($0) { @[probe] = count() }" }.joined(separator: "\n")
    let check = try ProcessRunner.run(swtrace, ["check", "-e", spec], timeout: 120)
    #expect(check.status == 0, "\(check)")
    #expect(check.stderr.contains("<spec>: ok (\(names.count) program"), "\(check)")
    // And listing each name again gives back that name alone.
    for name in names.prefix(5) {
      let again = try ProcessRunner.run(swtrace, ["-l", name], timeout: 60)
      #expect(again.stdoutLines.map { $0.split(separator: " ").first.map(String.init) } == [name], "\(again)")
    }
  }

  @Test("-l 'skb:*' --btf lists more than 1,000 functions of a kernel with kprobes", arguments: Fixtures.kernelReleases)
  func listsFixtureFunctions(release: String) throws {
    let btf = try Fixtures.btfPath(release)
    let result = try ProcessRunner.run(
      try TestEnvironment.binary("swtrace"), ["-lv", "skb:*", "--btf", btf], timeout: 120)
    #expect(result.status == 0, "\(result)")
    let functions = result.stdoutLines.filter { $0.contains("  via fentry:") }
    #expect(functions.count > 1000, "\(functions.count) functions")
    #expect(functions.contains { $0.hasPrefix("skb:ip_rcv (struct sk_buff * skb,") && $0.hasSuffix("  via fentry:ip_rcv") })
  }

  /// A spec either checks, or fails only because a name it uses really is absent on that
  /// kernel, and then the message says which name and which kernel.
  @Test("every spec in specs/ checks against every fixture kernel, or names what that kernel lacks", arguments: Fixtures.kernelReleases)
  func specsCheckAgainstFixtures(release: String) throws {
    let specs = try FileManager.default.contentsOfDirectory(atPath: Fixtures.repositoryRoot.appendingPathComponent("specs").path)
      .filter { $0.hasSuffix(".spec") }.sorted()
    #expect(!specs.isEmpty)
    let btf = try Fixtures.btfPath(release)
    var checked = 0
    for spec in specs {
      let path = Fixtures.repositoryRoot.appendingPathComponent("specs/\(spec)").path
      let result = try ProcessRunner.run(try TestEnvironment.binary("swtrace"), ["check", "--btf", btf, path], timeout: 300)
      if result.status == 0 {
        #expect(result.stderr.contains("\(spec): ok"), "\(spec) on \(release):\n\(result)")
        checked += 1
        continue
      }
      #expect(result.status == 1, "\(spec) on \(release):\n\(result)")
      let errors = result.stderr.split(separator: "\n").filter { $0.contains(": error: ") }
      #expect(!errors.isEmpty, "\(spec) on \(release) failed without a diagnostic:\n\(result)")
      for error in errors {
        #expect(error.contains("in \(btf)") || error.contains("of \(btf)"), "\(spec) on \(release): not a missing-name error: \(error)")
      }
    }
    // Most specs are portable; only version-specific tracepoint arguments may be missing.
    #expect(checked * 2 > specs.count, "only \(checked) of \(specs.count) specs check on \(release)")
  }

  @Test("fmt prints every spec in a layout that fmt leaves unchanged")
  func formatIsIdempotentOnSpecs() throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    let directory = Fixtures.repositoryRoot.appendingPathComponent("specs")
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("swtrace-fmt-\(getpid())")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    for spec in try FileManager.default.contentsOfDirectory(atPath: directory.path) where spec.hasSuffix(".spec") {
      let once = try ProcessRunner.run(swtrace, ["fmt", directory.appendingPathComponent(spec).path], timeout: 60)
      #expect(once.status == 0, "\(once)")
      let copy = scratch.appendingPathComponent(spec)
      try once.stdout.write(to: copy, atomically: true, encoding: .utf8)
      let twice = try ProcessRunner.run(swtrace, ["fmt", copy.path], timeout: 60)
      #expect(twice.stdout == once.stdout, "fmt is not idempotent on \(spec)")
      #expect(once.stdout.hasPrefix("#!/usr/bin/env swtrace\n//"), "\(spec) lost its header comment")
    }
  }
}

/// Splits a command line the way sh does for the quoting README uses: single and double quotes.
func shellWords(_ line: String) throws -> [String] {
  var words: [String] = []
  var current = ""
  var quote: Character?
  var inWord = false
  for character in line {
    if let open = quote {
      if character == open { quote = nil } else { current.append(character) }
    } else if character == "'" || character == "\"" {
      quote = character
      inWord = true
    } else if character == " " {
      if inWord { words.append(current) }
      current = ""
      inWord = false
    } else {
      current.append(character)
      inWord = true
    }
  }
  if inWord { words.append(current) }
  return words
}
