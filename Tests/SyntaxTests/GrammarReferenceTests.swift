import Foundation
import Testing

@testable import SwtraceSyntax

/// `grammar/` at the root of the package, found from this file's real location.
let grammarDirectory = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
  .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
  .appendingPathComponent("grammar")

/// The bodies of every fenced code block whose info string is `swtrace`, alone or followed
/// by attributes such as `syntax-only` (which only later stages read).
func swtraceBlocks(in markdown: String) -> [String] {
  var blocks: [String] = []
  var current: [Substring]?
  for line in markdown.split(separator: "\n", omittingEmptySubsequences: false) {
    let trimmed = line.trimmingCharacters(in: .whitespaces)
    if var lines = current {
      if trimmed == "```" {
        blocks.append(lines.joined(separator: "\n") + "\n")
        current = nil
      } else {
        lines.append(line)
        current = lines
      }
    } else if trimmed == "```swtrace" || trimmed.hasPrefix("```swtrace ") {
      current = []
    }
  }
  return blocks
}

@Suite struct GrammarReferenceTests {
  @Test func everyReferenceExampleParses() throws {
    let markdown = try String(
      contentsOf: grammarDirectory.appendingPathComponent("README.md"), encoding: .utf8)
    let blocks = swtraceBlocks(in: markdown)
    #expect(blocks.count >= 20, "the reference should have an example per construct")
    for (index, block) in blocks.enumerated() {
      let file = SourceFile(name: "README.md example \(index + 1)", text: block)
      let result = Parser.parse(file)
      #expect(
        result.diagnostics.isEmpty,
        "example \(index + 1):\n\(block)\n\(DiagnosticRenderer().render(result.diagnostics, in: file))"
      )
      #expect(!result.spec.clauses.isEmpty)
    }
  }

  @Test func referenceListsEveryDiagnosticID() throws {
    let markdown = try String(
      contentsOf: grammarDirectory.appendingPathComponent("README.md"), encoding: .utf8)
    for id in DiagnosticID.syntaxIDs {
      #expect(markdown.contains("`\(id.rawValue)`"), "grammar/README.md does not mention \(id)")
    }
  }

  /// Every rule the EBNF uses is defined, and every rule defined is used (except the start).
  @Test func ebnfIsClosed() throws {
    let text = try String(
      contentsOf: grammarDirectory.appendingPathComponent("swtrace.ebnf"), encoding: .utf8)
    // Drop comments, special sequences and quoted terminals, keeping rule structure.
    var stripped = ""
    var index = text.startIndex
    while index < text.endIndex {
      let rest = text[index...]
      if rest.hasPrefix("(*") {
        index = rest.range(of: "*)").map(\.upperBound) ?? text.endIndex
      } else if let quote = rest.first, quote == "\"" || quote == "'" || quote == "?" {
        let afterOpen = text.index(after: index)
        index =
          text[afterOpen...].firstIndex(of: quote).map { text.index(after: $0) } ?? text.endIndex
        stripped += " T "
      } else {
        stripped.append(text[index])
        index = text.index(after: index)
      }
    }
    var defined: [String] = []
    var used = Set<String>()
    for rule in stripped.split(separator: ";") {
      let parts = rule.split(separator: "=", maxSplits: 1)
      guard parts.count == 2 else {
        #expect(rule.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "not a rule: \(rule)")
        continue
      }
      defined.append(parts[0].trimmingCharacters(in: .whitespacesAndNewlines))
      let words = parts[1].split { !($0.isLetter || $0.isNumber || $0 == "_") }.map(String.init)
      used.formUnion(words.filter { $0 != "T" })
    }
    #expect(Set(defined).count == defined.count, "a rule is defined twice")
    #expect(used.subtracting(defined).isEmpty, "undefined rules: \(used.subtracting(defined))")
    let unused = Set(defined).subtracting(used).subtracting(["spec", "trivia"])
    #expect(unused.isEmpty, "unused rules: \(unused)")
  }
}
