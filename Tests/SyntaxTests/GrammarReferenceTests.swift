import Foundation
import Testing
import TestSupport

@testable import SwtraceSyntax

/// `grammar/` at the root of the package, found from this file's real location.
let grammarDirectory = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
  .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
  .appendingPathComponent("grammar")

@Suite struct GrammarReferenceTests {
  @Test func everyReferenceExampleParses() throws {
    let examples = try referenceExamples()
    #expect(examples.count >= 20, "the reference should have an example per construct")
    for example in examples {
      let file = SourceFile(name: "README.md example \(example.number)", text: example.text)
      let result = Parser.parse(file)
      #expect(
        result.diagnostics.isEmpty,
        "example \(example.number):\n\(example.text)\n\(DiagnosticRenderer().render(result.diagnostics, in: file))"
      )
      #expect(!result.spec.clauses.isEmpty)
    }
  }

  @Test func referenceListsEveryDiagnosticID() throws {
    let markdown = try String(contentsOf: languageReferenceURL, encoding: .utf8)
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
