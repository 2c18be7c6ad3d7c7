import BTF
import CodeGen
import Foundation
import Sema
import SwtraceSyntax
import Testing
import TestSupport

/// `grammar/README.md`, found from this file's real location.
private let referenceURL = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
  .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
  .appendingPathComponent("grammar/README.md")

/// One fenced `swtrace` block of the reference and the attributes after `swtrace`.
struct ReferenceExample: CustomTestStringConvertible {
  var number: Int
  var text: String
  var attributes: Set<String>
  var testDescription: String { "example \(number): \(text.split(separator: "\n").first ?? "")" }
}

func referenceExamples() throws -> [ReferenceExample] {
  let markdown = try String(contentsOf: referenceURL, encoding: .utf8)
  var examples: [ReferenceExample] = []
  var current: (attributes: Set<String>, lines: [Substring])?
  for line in markdown.split(separator: "\n", omittingEmptySubsequences: false) {
    let trimmed = line.trimmingCharacters(in: .whitespaces)
    if let open = current {
      if trimmed == "```" {
        examples.append(
          ReferenceExample(
            number: examples.count + 1, text: open.lines.joined(separator: "\n") + "\n", attributes: open.attributes))
        current = nil
      } else {
        current?.lines.append(line)
      }
    } else if trimmed == "```swtrace" || trimmed.hasPrefix("```swtrace ") {
      current = (Set(trimmed.split(separator: " ").dropFirst().map(String.init)), [])
    }
  }
  return examples
}

/// The language reference's examples are real specs: each one not marked `syntax-only`
/// type-checks, compiles and passes the verifier pre-check against a fixture kernel.
@Suite struct GrammarExamples {
  static let release = "6.12.117+deb12-amd64"
  /// Loaded once for all examples.
  static let types = Result { try KernelTypes.load(path: try Fixtures.btfPath(release)) }

  @Test(arguments: try referenceExamples().filter { !$0.attributes.contains("syntax-only") })
  func exampleCompiles(example: ReferenceExample) throws {
    let types = try Self.types.get()
    // Function backends make skb:* thousands of programs: only examples that need them get them.
    let support: BackendSupport = example.attributes.contains("functions") ? .all : .tracepointsOnly
    let resolver = ProbeResolver(
      types: types, support: support, tracepointCategories: try Fixtures.tracepointCategories(Self.release))
    let file = SourceFile(name: "grammar/README.md example \(example.number)", text: example.text)
    switch SpecCompiler(resolver: resolver).compile(file) {
    case .compiled(let compiled, _):
      #expect(!compiled.programs.isEmpty)
    case .failed(let diagnostics):
      Issue.record("\(example.text)\n\(DiagnosticRenderer().render(diagnostics, in: file))")
    }
  }
}
