import Foundation
public import Testing

/// One fenced `swtrace` block of the language reference (`grammar/README.md`) and the
/// attributes after `swtrace`: `syntax-only` (parses, but names what no kernel has) and
/// `functions` (needs a kprobe or fentry backend).
public struct ReferenceExample: Sendable, CustomTestStringConvertible {
  public var number: Int
  public var text: String
  public var attributes: Set<String>
  public var testDescription: String { "example \(number): \(text.split(separator: "\n").first ?? "")" }
}

/// The language reference, whose examples several test targets check, each a stage further.
public let languageReferenceURL = Fixtures.repositoryRoot.appendingPathComponent("grammar/README.md")

/// Every `swtrace` block of the language reference, numbered from 1 in order.
/// A block's info string is `swtrace`, alone or followed by attributes.
public func referenceExamples() throws -> [ReferenceExample] {
  let markdown = try String(contentsOf: languageReferenceURL, encoding: .utf8)
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
