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

  /// A resolver over a fixture kernel that counts how often it reads every category; with
  /// `checks`, it also answers one name at a time from the fixture's categories (as tracefs
  /// would from `events/CATEGORY/NAME`, or cannot when not `tracefsAnswers`), counting those.
  private func resolver(reads: ReadCounter, checks: ReadCounter? = nil, tracefsAnswers: Bool = true) throws
    -> ProbeResolver
  {
    let categories = try Fixtures.tracepointCategories(release)
    var check: ProbeResolver.TracepointCategoryCheck? = nil
    if let checks {
      check = { category, name in
        checks.count.add(1, ordering: .relaxed)
        return tracefsAnswers ? categories[name] == category : nil
      }
    }
    return ProbeResolver(
      types: try KernelTypes.load(path: try Fixtures.btfPath(release)), support: .tracepointsOnly,
      readingTracepointCategories: { [reads] in
        reads.count.add(1, ordering: .relaxed)
        return categories
      }, checkingTracepointCategory: check)
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

  @Test func oneNameInOneCategoryIsCheckedAloneWithoutReadingEveryCategory() throws {
    let reads = ReadCounter()
    let checks = ReadCounter()
    let resolver = try resolver(reads: reads, checks: checks)
    let eager = ProbeResolver(
      types: resolver.types, support: .tracepointsOnly, tracepointCategories: try Fixtures.tracepointCategories(release))
    let probe = probes("tracepoint:net:netif_receive_skb { exit() }")[0]
    #expect(try resolver.resolve(probe) == eager.resolve(probe))
    #expect(resolver.tracepointCategory(of: "netif_receive_skb") == "net")
    #expect(throws: Diagnostic.self) { try resolver.resolve(probes("tracepoint:sched:netif_receive_skb { exit() }")[0]) }
    #expect(reads.count.load(ordering: .relaxed) == 0)
    // The second probe is answered by the first one's confirmed category.
    #expect(checks.count.load(ordering: .relaxed) == 1)
    // A glob still reads every category, once.
    let globbed = probes("tracepoint:n*:netif_receive_skb { exit() }")[0]
    #expect(try resolver.resolve(globbed) == eager.resolve(globbed))
    #expect(reads.count.load(ordering: .relaxed) == 1)
  }

  @Test func whenTracefsCannotTellEveryCategoryIsReadAsBefore() throws {
    let reads = ReadCounter()
    let checks = ReadCounter()
    let resolver = try resolver(reads: reads, checks: checks, tracefsAnswers: false)
    #expect(try !resolver.resolve(probes("tracepoint:net:netif_receive_skb { exit() }")[0]).isEmpty)
    #expect(throws: Diagnostic.self) { try resolver.resolve(probes("tracepoint:sched:netif_receive_skb { exit() }")[0]) }
    #expect(reads.count.load(ordering: .relaxed) == 1)
  }
}

/// Which specs have the running kernel asked about function backends (fentry, kprobes).
@Suite struct FunctionBackendsOnDemand {
  @Test(arguments: [
    ("tracepoint:net:netif_receive_skb { @c[comm] = count() }", false),
    ("BEGIN { printf(\"hi\\n\") } interval:1s { exit() } END { }", false),
    ("tracepoint:*:* { @n = count() }", false),
    ("skb:net_dev_queue { @n = count() }", true),
    ("tracepoint:net:netif_rx { @n = count() } kprobe:ip_rcv { @m = count() }", true),
    ("fentry:ip_rcv { @n = count() }", true),
  ])
  func onlyProbesThatCanAttachToFunctionsAsk(spec: String, asks: Bool) {
    #expect(BackendSupport.functionBackendsMatter(to: Parser.parse(SourceFile(name: "<spec>", text: spec)).spec) == asks)
  }
}
