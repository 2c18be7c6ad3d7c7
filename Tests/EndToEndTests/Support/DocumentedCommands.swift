// The command blocks of the documentation, as DocumentationTests runs them: found in the
// Markdown files, in the headers of specs/, and in `swtrace --help`; each command with the
// output the documentation shows for it; and the comparison of that output with what the
// command printed. The convention is described at the top of DocumentationTests.swift.

import Foundation

/// One command of a block: its text exactly as written (continuation lines included) and the
/// output shown after it.
struct DocumentedCommand: Equatable {
  /// `#` (run as root) or `$` (any user).
  var prompt: Character
  var text: String
  var expected: [String]
  /// The line of the documentation the command starts on.
  var line: Int
  /// False for the examples of a help screen, which show no output: only their exit status
  /// is checked.
  var showsOutput = true
}

/// A code block of commands, with what its marking asks for.
struct DocumentedBlock: Equatable {
  enum Marking: Equatable {
    /// Run here, as written.
    case run
    /// Needs a function backend (kprobes, fentry): run in the VM lane.
    case vm
    /// Not run, for the reason given (editing a systemd unit, a Kubernetes cluster).
    case notRun(String)
  }

  var file: String
  var line: Int
  var marking: Marking
  var commands: [DocumentedCommand]

  var location: String { "\(file):\(line)" }

  /// Network namespaces the block creates (`ip netns add NAME`): removed before it runs, in
  /// case a killed run left them, and after it, whatever happened.
  var namespaces: [String] {
    commands.flatMap { command -> [String] in
      let words = command.text.split(whereSeparator: { " \t\n;&|".contains($0) }).map(String.init)
      return words.indices.compactMap { index in
        index + 3 < words.count && words[index] == "ip" && words[index + 1] == "netns" && words[index + 2] == "add"
          ? words[index + 3] : nil
      }
    }
  }
}

struct DocumentationError: Error, CustomStringConvertible {
  var description: String
}

enum DocumentedCommands {
  /// The marking comment, `<!-- doctest: vm -->` in Markdown or `// doctest: vm` in a spec.
  static func marking(_ line: Substring) throws -> DocumentedBlock.Marking? {
    var text = line.trimmingCharacters(in: .whitespaces)
    if text.hasPrefix("<!--") && text.hasSuffix("-->") {
      text = String(text.dropFirst(4).dropLast(3)).trimmingCharacters(in: .whitespaces)
    } else if text.hasPrefix("//") {
      text = String(text.dropFirst(2)).trimmingCharacters(in: .whitespaces)
    } else {
      return nil
    }
    guard text.hasPrefix("doctest:") else { return nil }
    let value = text.dropFirst("doctest:".count).trimmingCharacters(in: .whitespaces)
    if value == "vm" { return .vm }
    if value.hasPrefix("not run:") {
      let reason = value.dropFirst("not run:".count).trimmingCharacters(in: .whitespaces)
      if !reason.isEmpty { return .notRun(reason) }
    }
    throw DocumentationError(description: "unknown doctest marking '\(text)': write 'doctest: vm' or 'doctest: not run: REASON'")
  }

  /// Splits a block's lines into commands: a line starting with `# ` or `$ ` starts one
  /// (continued while a line ends with `\`), and the lines up to the next command are its output.
  static func commands(_ lines: [(number: Int, text: String)], file: String) throws -> [DocumentedCommand] {
    var commands: [DocumentedCommand] = []
    var continuing = false
    for (number, text) in lines {
      if continuing {
        commands[commands.count - 1].text += "\n" + text
        continuing = text.hasSuffix("\\")
        continue
      }
      if text.hasPrefix("# ") || text.hasPrefix("$ ") {
        let command = String(text.dropFirst(2))
        commands.append(DocumentedCommand(prompt: text.first!, text: command, expected: [], line: number))
        continuing = command.hasSuffix("\\")
        continue
      }
      guard !commands.isEmpty else {
        throw DocumentationError(description: "\(file):\(number): a command block must start with a command ('# ' or '$ ')")
      }
      commands[commands.count - 1].expected.append(text)
    }
    // Blank lines at the end of a block belong to nothing.
    for index in commands.indices {
      while commands[index].expected.last?.trimmingCharacters(in: .whitespaces).isEmpty == true {
        commands[index].expected.removeLast()
      }
    }
    return commands
  }

  // MARK: - Markdown

  /// Fence languages whose blocks are not commands: the language (checked by the grammar
  /// tests), the grammar's own notation, configuration and queries.
  static let nonCommandLanguages: Set<String> = ["swtrace", "text", "ebnf", "yaml", "promql", "json"]

  /// Every command block of a Markdown file. A code block (indented by four spaces, or fenced)
  /// whose first line has a prompt is a command block; a fenced block in one of the languages
  /// above is not; any other code block is an error, so no command escapes the test.
  static func markdownBlocks(_ text: String, file: String) throws -> [DocumentedBlock] {
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    var blocks: [DocumentedBlock] = []
    var index = 0
    var previousBlank = true
    func precedingMarking(_ start: Int) throws -> DocumentedBlock.Marking {
      var before = start - 1
      while before >= 0 && lines[before].trimmingCharacters(in: .whitespaces).isEmpty { before -= 1 }
      guard before >= 0 else { return .run }
      return try marking(lines[before]) ?? .run
    }
    func addBlock(_ body: [(number: Int, text: String)], start: Int) throws {
      guard let first = body.first(where: { !$0.text.trimmingCharacters(in: .whitespaces).isEmpty }) else { return }
      guard first.text.hasPrefix("# ") || first.text.hasPrefix("$ ") else {
        throw DocumentationError(
          description: "\(file):\(start + 1): a code block that is not commands: give its commands a prompt ('# ' or '$ ') "
            + "or fence it with its language (\(nonCommandLanguages.sorted().joined(separator: ", ")))")
      }
      blocks.append(
        DocumentedBlock(
          file: file, line: start + 1, marking: try precedingMarking(start), commands: try commands(body, file: file)))
    }
    while index < lines.count {
      let line = lines[index]
      if line.hasPrefix("```") {
        let language = line.dropFirst(3).split(separator: " ").first.map(String.init) ?? ""
        let start = index
        var body: [(number: Int, text: String)] = []
        index += 1
        while index < lines.count && !lines[index].hasPrefix("```") {
          body.append((index + 1, String(lines[index])))
          index += 1
        }
        index += 1
        previousBlank = false
        if nonCommandLanguages.contains(language) { continue }
        try addBlock(body, start: start)
        continue
      }
      if line.hasPrefix("    ") && previousBlank && !line.trimmingCharacters(in: .whitespaces).isEmpty {
        // An indented code block: to the first line that is neither indented nor blank.
        let start = index
        var body: [(number: Int, text: String)] = []
        while index < lines.count && (lines[index].hasPrefix("    ") || lines[index].trimmingCharacters(in: .whitespaces).isEmpty) {
          body.append((index + 1, String(lines[index].dropFirst(min(4, lines[index].count)))))
          index += 1
        }
        while body.last?.text.isEmpty == true { body.removeLast() }
        previousBlank = true
        try addBlock(body, start: start)
        continue
      }
      // List items continue over indented lines; those are not code.
      previousBlank = line.trimmingCharacters(in: .whitespaces).isEmpty
      if !previousBlank && (line.hasPrefix("- ") || line.hasPrefix("  ") || line.first?.isNumber == true) {
        // Indented lines right after a list item are its continuation, until a blank line.
        index += 1
        while index < lines.count && !lines[index].trimmingCharacters(in: .whitespaces).isEmpty { index += 1 }
        continue
      }
      index += 1
    }
    return blocks
  }

  // MARK: - Spec headers

  /// The command blocks of a spec's header comment: runs of lines `//` + at least three
  /// spaces, starting with a prompt; `// doctest: ...` before one marks it.
  static func specBlocks(_ text: String, file: String) throws -> [DocumentedBlock] {
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    var blocks: [DocumentedBlock] = []
    var index = 0
    var pendingMarking: DocumentedBlock.Marking = .run
    while index < lines.count, lines[index].hasPrefix("//") || lines[index].hasPrefix("#!") {
      let line = lines[index]
      if let marked = try marking(line) {
        pendingMarking = marked
        index += 1
        continue
      }
      let content = line.dropFirst(2)
      if content.hasPrefix("   ") && (content.dropFirst(3).hasPrefix("# ") || content.dropFirst(3).hasPrefix("$ ")) {
        let start = index
        var body: [(number: Int, text: String)] = []
        while index < lines.count, lines[index].hasPrefix("//   ") {
          body.append((index + 1, String(lines[index].dropFirst(5))))
          index += 1
        }
        blocks.append(
          DocumentedBlock(file: file, line: start + 1, marking: pendingMarking, commands: try commands(body, file: file)))
        pendingMarking = .run
        continue
      }
      index += 1
    }
    return blocks
  }

  // MARK: - swtrace --help

  /// The examples of a help screen: the paragraph starting "Examples", where each line
  /// indented by two describes an example and starts a block, and the lines indented by four
  /// (continued by six) are its commands. No output is shown, so only exit statuses count.
  static func helpBlocks(_ help: String, file: String) -> [DocumentedBlock] {
    let lines = help.split(separator: "\n", omittingEmptySubsequences: false)
    guard let start = lines.firstIndex(where: { $0.hasPrefix("Examples") }) else { return [] }
    var blocks: [DocumentedBlock] = []
    var index = start + 1
    while index < lines.count, !lines[index].isEmpty {
      let line = lines[index]
      if line.hasPrefix("    ") {
        var text = line.trimmingCharacters(in: .whitespaces)
        let first = index + 1
        while text.hasSuffix("\\"), index + 1 < lines.count {
          index += 1
          text += "\n" + lines[index]
        }
        if blocks.isEmpty { blocks.append(DocumentedBlock(file: file, line: first, marking: .run, commands: [])) }
        blocks[blocks.count - 1].commands.append(
          DocumentedCommand(prompt: "#", text: text, expected: [], line: first, showsOutput: false))
      } else {
        blocks.append(DocumentedBlock(file: file, line: index + 1, marking: .run, commands: []))
      }
      index += 1
    }
    return blocks.filter { !$0.commands.isEmpty }
  }
}

// MARK: - Comparing output

enum DocumentedOutput {
  /// What varies from run to run and is not the point of an example: timestamps, CPUs, kernel
  /// addresses and symbol offsets, namespace inode numbers, the host name. Counts, lengths,
  /// names and every other value are compared as they are.
  static let rules: [(NSRegularExpression, String)] = [
    // Text events: "<ns timestamp> <cpu> probe (...)".
    (#"^\d{6,} \d+ "#, "<ts> <cpu> "),
    // JSON events and paths.
    (#""(ts|wall_ts|dt_ns|dt_prev_ns)": \d+"#, "\"$1\": <n>"),
    (#""cpu": \d+"#, "\"cpu\": <cpu>"),
    (#""host": "[^"]*""#, "\"host\": <host>"),
    (#"host="[^"]*""#, "host=<host>"),
    // -f paths: "packet skb 0x... at <ts> (...)" and "  +1.5us (+0.3us) cpu 0 probe": the times
    // since the first hop and since the previous one (shown or left out; the listings of
    // the WireGuard lane were taken before hops showed their step).
    (#" at \d+ \("#, " at <ts> ("),
    (#"\+[0-9.]+us (\(\+[0-9.]+us\) )?cpu \d+"#, "+<dt>us cpu <cpu>"),
    // Kernel addresses and offsets into kernel functions (ksym()).
    (#"0x[0-9a-f]{8,}"#, "0x<address>"),
    (#"\+0x[0-9a-f]+"#, "+0x<offset>"),
    // The CPU in a packet comment of -w (tshark's frame.comment).
    (#"\bcpu=\d+"#, "cpu=<cpu>"),
    // Network namespace inode numbers (4026531840 is the first).
    (#"\b40265[0-9]{5}\b"#, "<netns>"),
  ].map { (try! NSRegularExpression(pattern: $0.0, options: [.anchorsMatchLines]), $0.1) }

  static func normalised(_ line: String) -> String {
    var text = line
    while text.hasSuffix(" ") { text.removeLast() }
    for (pattern, template) in rules {
      text = pattern.stringByReplacingMatches(
        in: text, range: NSRange(text.startIndex..., in: text), withTemplate: template)
    }
    return text
  }

  /// Whether `actual` is what `expected` shows: line by line after normalising, where a line
  /// `...` in `expected` stands for any number of lines (none included).
  static func matches(expected: [String], actual: [String]) -> Bool {
    let wanted = expected.map { $0.trimmingCharacters(in: .whitespaces) == "..." ? nil : normalised($0) }
    let got = actual.map(normalised)
    // reachable[j]: the first i expected lines can match the first j actual lines.
    var reachable = [Bool](repeating: false, count: got.count + 1)
    reachable[0] = true
    for line in wanted {
      var next = [Bool](repeating: false, count: got.count + 1)
      for j in 0...got.count {
        if line == nil {
          next[j] = reachable[j] || (j > 0 && next[j - 1])
        } else if j > 0 {
          next[j] = reachable[j - 1] && got[j - 1] == line
        }
      }
      reachable = next
    }
    return reachable[got.count]
  }
}

// MARK: - The VM lane's share

extension DocumentedCommands {
  static let vmScriptPath = "scripts/vm/doc-examples.sh"

  /// Stable names for VM blocks, which do not move when lines above them do: `README.md#vm1`.
  static func vmIdentifiers(_ blocks: [DocumentedBlock]) -> [String] {
    var seen: [String: Int] = [:]
    return blocks.map { block in
      seen[block.file, default: 0] += 1
      return "\(block.file)#vm\(seen[block.file]!)"
    }
  }

  /// The script the VM lane runs (busybox sh, from /): each command of each VM block, its
  /// output prefixed `VMDOC | ` between `VMDOC BEGIN ID N` and `VMDOC END ID N STATUS`.
  static func vmScript(_ blocks: [DocumentedBlock]) -> String {
    var script = """
      #!/bin/sh
      # Generated from the documentation's blocks marked `doctest: vm` by DocumentationTests
      # (SWTRACE_RECORD=1 swift test --filter DocumentationTests rewrites it); do not edit.
      # scenarios.sh runs it in the guest, VMLaneTests compares what it prints with the docs.

      """
    for (identifier, block) in zip(vmIdentifiers(blocks), blocks) {
      for (index, command) in block.commands.enumerated() {
        script += """
          echo "VMDOC BEGIN \(identifier) \(index)"
          cat >/tmp/doc-command <<'SWTRACE_DOC_COMMAND'
          \(command.text)
          SWTRACE_DOC_COMMAND
          . /tmp/doc-command >/tmp/doc-output 2>&1
          status=$?
          sed 's/^/VMDOC | /' /tmp/doc-output
          echo "VMDOC END \(identifier) \(index) $status"

          """
      }
    }
    return script
  }

  /// What the VM lane printed for each command, keyed `ID N`.
  static func vmResults(_ console: String) -> [String: (output: [String], status: Int32)] {
    var results: [String: (output: [String], status: Int32)] = [:]
    var current: String?
    var output: [String] = []
    for line in console.split(separator: "\n", omittingEmptySubsequences: false) {
      if line.hasPrefix("VMDOC BEGIN ") {
        current = String(line.dropFirst("VMDOC BEGIN ".count))
        output = []
      } else if line.hasPrefix("VMDOC | "), current != nil {
        output.append(String(line.dropFirst("VMDOC | ".count)))
      } else if line == "VMDOC |", current != nil {
        output.append("")
      } else if line.hasPrefix("VMDOC END "), let key = current {
        let words = line.split(separator: " ")
        results[key] = (output, words.last.flatMap { Int32($0) } ?? -1)
        current = nil
      }
    }
    return results
  }
}
