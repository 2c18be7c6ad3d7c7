import BTF
import Sema
import Synchronization
import SwtraceSyntax
import Testing
import TestSupport

/// The probes of a one-clause spec.
private func probes(_ text: String) -> [Probe] {
  Parser.parse(SourceFile(name: "<spec>", text: text)).spec.clauses.flatMap(\.probes)
}

/// How often a resolver read the categories.
private final class ReadCounter: Sendable {
  let count = Atomic(0)
}

@Suite struct TracepointCategoriesOnDemand {
  let release = "6.12.117+deb12-amd64"

  /// A resolver over a fixture kernel that counts how often it reads the categories.
  private func resolver(reads: ReadCounter) throws -> ProbeResolver {
    let categories = try Fixtures.tracepointCategories(release)
    return ProbeResolver(
      types: try KernelTypes.load(path: try Fixtures.btfPath(release)), support: .tracepointsOnly,
      readingTracepointCategories: { [reads] in
        reads.count.add(1, ordering: .relaxed)
        return categories
      })
  }

  @Test func probesWithoutACategoryNeverReadThem() throws {
    let reads = ReadCounter()
    let resolver = try resolver(reads: reads)
    for probe in probes("skb:* { exit() } tracepoint:*:net_dev_queue { exit() }") {
      #expect(try !resolver.resolve(probe).isEmpty)
    }
    #expect(reads.count.load(ordering: .relaxed) == 0)
  }

  @Test func aCategoryIsReadOnceAndMatchedAsBefore() throws {
    let reads = ReadCounter()
    let resolver = try resolver(reads: reads)
    let eager = ProbeResolver(
      types: resolver.types, support: .tracepointsOnly, tracepointCategories: try Fixtures.tracepointCategories(release))
    for probe in probes("tracepoint:net:net_dev_* { exit() } tracepoint:n?t:netif_rx { exit() } tracepoint:sched:* { exit() }") {
      #expect(try resolver.resolve(probe) == eager.resolve(probe))
    }
    #expect(throws: Diagnostic.self) { try resolver.resolve(probes("tracepoint:sched:net_dev_queue { exit() }")[0]) }
    #expect(reads.count.load(ordering: .relaxed) == 1)
  }
}
