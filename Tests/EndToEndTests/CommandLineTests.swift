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

  /// `-lv` lists what `args.NAME` reads in a `tracepoint:` clause: the fields the kernel's own
  /// format file (tracefs, read here in a mount namespace of the test's) says the record has,
  /// in its order, each variable-length (`__data_loc`) field marked as one.
  @Test("-lv lists each tracepoint's recorded fields as the kernel's format file has them", .needsTracing, arguments: ["tracepoint:sock:*", "tracepoint:net:*", "tracepoint:skb:*"])
  func verboseListingHasRecordedFields(pattern: String) throws {
    let listing = try ProcessRunner.run(try TestEnvironment.binary("swtrace"), ["-lv", pattern], timeout: 60)
    #expect(listing.status == 0, "\(listing)")
    // swtrace's listing: a probe line, then "    TYPE args.NAME" or "    __data_loc args.NAME (...)".
    var listed: [String: [String]] = [:]
    var current: String?
    for line in listing.stdoutLines {
      if !line.hasPrefix(" ") {
        current = line.split(separator: " ").first.map(String.init)
        if let current { listed[current] = [] }
      } else if let current, let name = line.split(separator: " ").first(where: { $0.hasPrefix("args.") }) {
        listed[current, default: []].append((line.contains("__data_loc") ? "loc:" : "") + name.dropFirst(5))
      }
    }
    #expect(listed.count > 2, "\(listing)")
    // The kernel's word: every format file of the listed tracepoints, in one shell.
    let paths = listed.keys.sorted().map { name -> String in
      let parts = name.split(separator: ":")
      return "/sys/kernel/tracing/events/\(parts[1])/\(parts[2])/format"
    }
    let script = "mount -t tracefs tracefs /sys/kernel/tracing && for f in \(paths.joined(separator: " ")); do echo \"== $f\"; cat \"$f\"; done"
    let formats = try ProcessRunner.run("unshare", ["-m", "sh", "-c", script], timeout: 60)
    try #require(formats.status == 0, "\(formats)")
    var recorded: [String: [String]] = [:]
    var file: String?
    for line in formats.stdoutLines {
      if line.hasPrefix("== ") {
        let parts = line.split(separator: "/")
        file = "tracepoint:\(parts[parts.count - 3]):\(parts[parts.count - 2])"
        recorded[file!] = []
        continue
      }
      // "\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;"
      guard let file, let field = line.split(separator: "\t").first(where: { $0.hasPrefix("field:") }) else { continue }
      let declaration = field.dropFirst("field:".count).dropLast()  // the ';'
      guard var name = declaration.split(separator: " ").last.map(String.init) else { continue }
      if let bracket = name.firstIndex(of: "[") { name = String(name[..<bracket]) }
      if name.hasPrefix("common_") { continue }
      recorded[file, default: []].append((declaration.hasPrefix("__data_loc") ? "loc:" : "") + name)
    }
    for (probe, fields) in listed.sorted(by: { $0.key < $1.key }) where !fields.isEmpty {
      #expect(fields == recorded[probe], "\(probe): swtrace lists \(fields), the kernel's format \(recorded[probe] ?? [])")
    }
    // Every tracepoint with recorded fields has them listed (BTF tells the record apart).
    let unlisted = listed.filter { $0.value.isEmpty && !(recorded[$0.key] ?? []).isEmpty }.keys.sorted()
    #expect(unlisted.isEmpty, "listed without their fields: \(unlisted)")
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
