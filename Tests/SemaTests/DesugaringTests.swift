import BTF
import Sema
import SwtraceSyntax
import Testing
import TestSupport

/// What `--track` and `-f paths` add to a spec, and the free probes tracking needs, are added
/// by one step after type checking, through the same resolution and typing as written ones.
@Suite struct DesugaringOfImplicitConstructs {
  func desugar(_ text: String, _ options: DesugaringOptions) throws -> (checked: CheckedSpec, desugared: CheckedSpec) {
    let resolver = try semaFixtureResolver()
    let (spec, rendered) = check(text, resolver: resolver)
    let checked = try #require(spec, "\(rendered)")
    let source = SourceFile(name: "<spec>", text: text)
    return (checked, Desugaring(resolver: resolver, options: options).desugar(checked, source: source))
  }

  static func printedLabels(_ actions: [Action]) -> [[String]] {
    actions.flatMap { action -> [[String]] in
      switch action {
      case .print(let values, _): [values.map(\.label)]
      case .conditional(_, let then, let otherwise): printedLabels(then) + printedLabels(otherwise)
      default: []
      }
    }
  }

  @Test func withoutOptionsNothingIsAdded() throws {
    let (checked, desugared) = try desugar("skb:net_dev_queue /mark == 1/ { print(len) }", DesugaringOptions())
    #expect(desugared == checked)
  }

  @Test func trackAddsTrackingToFilteredSkbClausesOnly() throws {
    let (_, desugared) = try desugar(
      """
      skb:net_dev_queue /mark == 1/ { print(len) }
      skb:net_dev_xmit { print(len) }
      tracepoint:sched:sched_switch /prev_state == 1/ { print(preempt) }
      """,
      DesugaringOptions(trackFilteredPackets: true))
    guard case .track? = desugared.clauses[0].actions.first else {
      Issue.record("the filtered skb clause must track first: \(desugared.clauses[0].actions)")
      return
    }
    #expect(!desugared.clauses[1].actions.contains { if case .track = $0 { true } else { false } })
    #expect(!desugared.clauses[2].actions.contains { if case .track = $0 { true } else { false } })
  }

  /// The free probes are resolved like `tracepoint:skb:kfree_skb` written in a spec: typed
  /// tracepoints with their skb argument, where the spec does not attach already.
  @Test func trackingAddsTheFreeProbesThroughTheResolver() throws {
    let (checked, desugared) = try desugar("skb:net_dev_queue /mark == 1/ { track() }", DesugaringOptions())
    #expect(checked.clauses.count == 1)
    let added = desugared.clauses.dropFirst()
    #expect(added.flatMap(\.attachPoints).map(\.name) == ["kfree_skb", "consume_skb"])
    #expect(added.allSatisfy { $0.filter == nil && $0.actions.isEmpty })
    #expect(added.flatMap(\.attachPoints).allSatisfy { $0.backend == .tracepoint && $0.skbArgument == 0 })

    let (_, covered) = try desugar(
      "skb:net_dev_queue /mark == 1/ { track() } skb:kfree_skb { print(len) }", DesugaringOptions())
    #expect(covered.clauses.flatMap(\.attachPoints).map(\.name) == ["net_dev_queue", "kfree_skb", "consume_skb"])

    let (_, untracked) = try desugar("skb:net_dev_queue /mark == 1/ { print(len) }", DesugaringOptions())
    #expect(untracked.clauses.count == 1)
  }

  @Test func pathsAddsDeviceAndNamespaceToEveryPrintOfSkbClauses() throws {
    let (_, desugared) = try desugar(
      #"""
      skb:net_dev_queue { print(len); if (len > 100) { print(mark, ifname) } else { printf("%d\n", len) } }
      tracepoint:sched:sched_switch { print(prev_state) }
      """#,
      DesugaringOptions(groupsEventsByPacket: true))
    #expect(Self.printedLabels(desugared.clauses[0].actions) == [["len", "ifname", "netns"], ["mark", "ifname", "netns"]])
    #expect(Self.printedLabels(desugared.clauses[1].actions) == [["prev_state"]])
    guard case .conditional(_, _, let otherwise) = desugared.clauses[0].actions[1],
      case .printf(_, let values, _) = otherwise.first
    else {
      Issue.record("expected the printf in the else branch")
      return
    }
    #expect(values.map(\.label) == ["len"], "printf prints its format only")
  }
}
