import Foundation
import TestSupport
import Testing

@testable import SwtraceSyntax

enum Mutator {
  /// Characters and fragments that stress the lexer and the ambiguous spots of the grammar.
  static let characters = Array("<>{}()[]/;,.:@$\"\\\n *-=!&|^~%x0az_9#é\t")
  static let fragments = [
    "if", "else", "in", ">", ">>", ">=", "<", "/", "//", "/*", "*/", "{", "}", "skb:*", "kprobe:",
    "interval:", "BEGIN", "0x", "0b", "::", "10.0.0.1/", "fd00::", "\"", "\\x", "$", "@", "(u32)",
    "(struct ", "->", "1_000", "18446744073709551616", "\n", ";",
  ]

  static func mutate(_ text: String, using rng: inout SplitMix64) -> String {
    var bytes = Array(text.utf8)
    let count = Int.random(in: 1...4, using: &rng)
    for _ in 0..<count {
      let position = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &rng)
      switch Int.random(in: 0..<9, using: &rng) {
      case 0 where !bytes.isEmpty:
        bytes.remove(at: position)
      case 1:
        bytes.insert(
          contentsOf: Array(String(Self.characters.randomElement(using: &rng)!).utf8), at: position)
      case 2 where bytes.count > 1:
        bytes.swapAt(position, Int.random(in: 0..<bytes.count, using: &rng))
      case 3 where !bytes.isEmpty:
        // Delete a token-sized run.
        let end = min(bytes.count, position + Int.random(in: 1...8, using: &rng))
        bytes.removeSubrange(position..<end)
      case 4:
        bytes.insert(
          contentsOf: Array(Self.fragments.randomElement(using: &rng)!.utf8), at: position)
      case 5 where !bytes.isEmpty:
        // Duplicate a run somewhere else.
        let end = min(bytes.count, position + Int.random(in: 1...12, using: &rng))
        let run = bytes[position..<end]
        bytes.insert(contentsOf: run, at: Int.random(in: 0...bytes.count, using: &rng))
      case 6:
        // Delete one whole token.
        let tokens = Self.tokenRanges(bytes)
        if let range = tokens.randomElement(using: &rng) {
          bytes.removeSubrange(range.start..<range.end)
        }
      case 7:
        // Swap two whole tokens.
        let tokens = Self.tokenRanges(bytes)
        guard tokens.count > 1 else { break }
        var pair = [tokens.randomElement(using: &rng)!, tokens.randomElement(using: &rng)!]
        pair.sort { $0.start < $1.start }
        let (first, second) = (pair[0], pair[1])
        guard first.end <= second.start else { break }
        bytes =
          Array(bytes[..<first.start]) + bytes[second.start..<second.end]
          + bytes[first.end..<second.start]
          + bytes[first.start..<first.end] + bytes[second.end...]
      default:
        // Rotate the text at a random point, moving clauses and blocks around.
        let cut = Int.random(in: 0...bytes.count, using: &rng)
        bytes = Array(bytes[cut...] + bytes[..<cut])
      }
    }
    return String(decoding: bytes, as: UTF8.self)
  }

  /// The byte ranges of the expression-mode tokens of `bytes`.
  static func tokenRanges(_ bytes: [UInt8]) -> [SourceRange] {
    let lexer = Lexer(bytes: bytes)
    var ranges: [SourceRange] = []
    var offset = 0
    while ranges.count < 10_000 {
      let token = lexer.token(at: offset)
      if token.kind == .eof { break }
      ranges.append(token.range)
      offset = token.range.end
    }
    return ranges
  }
}

@Suite struct MutationTests {
  /// `SWTRACE_MUTATIONS` and `SWTRACE_SEED` run a longer or different campaign locally.
  static let environment = ProcessInfo.processInfo.environment
  static let iterations = environment["SWTRACE_MUTATIONS"].flatMap { Int($0) } ?? 10_000
  static let seed = environment["SWTRACE_SEED"].flatMap { UInt64($0) } ?? 0x5157_4ACE

  @Test func tenThousandMutationsNeverCrash() {
    var rng = SplitMix64(seed: Self.seed)
    var withErrors = 0
    var roundTripped = 0
    for iteration in 0..<Self.iterations {
      let source = Examples.all[Int.random(in: 0..<Examples.all.count, using: &rng)]
      let text = Mutator.mutate(source, using: &rng)
      let file = SourceFile(name: "<mutant>", text: text)
      let result = Parser.parse(file)
      #expect(
        !result.diagnostics.isEmpty || !result.spec.clauses.isEmpty,
        "iteration \(iteration): \(text.debugDescription)")
      for diagnostic in result.diagnostics {
        let ranges = [diagnostic.range] + diagnostic.notes.compactMap(\.range)
        for range in ranges where range.start < 0 || range.end > file.bytes.count {
          Issue.record(
            "iteration \(iteration): range \(range) outside the text: \(text.debugDescription)")
        }
      }
      _ = DiagnosticRenderer().render(result.diagnostics, in: file)
      if result.diagnostics.isEmpty {
        // A mutant that still parses must survive formatting unchanged.
        let formatted = SpecFormatter.format(result.spec, source: file)
        let reparsed = Parser.parse(SourceFile(name: "<formatted>", text: formatted))
        #expect(reparsed.diagnostics.isEmpty, "iteration \(iteration): \(formatted)")
        #expect(
          StripRanges.spec(reparsed.spec) == StripRanges.spec(result.spec),
          "iteration \(iteration): \(text.debugDescription)\n\(formatted)")
        roundTripped += 1
      } else {
        withErrors += 1
      }
    }
    // The mutations must actually exercise both paths.
    #expect(withErrors > Self.iterations / 2)
    #expect(roundTripped > Self.iterations / 100)
  }
}
