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

  /// The captures of a clause's actions, in order, with the print they follow.
  static func captures(_ actions: [Action]) -> [PacketCapture] {
    actions.flatMap { action -> [PacketCapture] in
      switch action {
      case .capture(let capture, _): [capture]
      case .conditional(_, let then, let otherwise): captures(then) + captures(otherwise)
      default: []
      }
    }
  }

  @Test func writeAddsACaptureAfterEveryPrintOfSkbClauses() throws {
    let (_, desugared) = try desugar(
      #"""
      skb:kfree_skb { print(len); if (len > 100) { printf("%d\n", len) } }
      tracepoint:sched:sched_switch { print(prev_state) }
      """#,
      DesugaringOptions(capturesPackets: true))
    let actions = desugared.clauses[0].actions
    guard case .print = actions[0], case .capture(_, let range) = actions[1], case .print(_, let printed) = actions[0] else {
      Issue.record("a capture right after the print: \(actions)")
      return
    }
    #expect(range == printed, "the capture names the print it follows")
    let captures = Self.captures(actions)
    #expect(captures.count == 2)
    // kfree_skb says why and where it dropped the packet.
    #expect(captures.allSatisfy { $0.comment.map(\.label) == ["mark", "ifname", "netns", "reason", "location"] })
    #expect(captures.allSatisfy { $0.geometry.deviceType != nil })
    #expect(Self.captures(desugared.clauses[1].actions).isEmpty, "no packet outside skb clauses")
  }

  /// In skb:* only some tracepoints have a reason or a location (kfree_skb both, consume_skb
  /// its location, tcp_send_reset its reason): they are theirs.
  @Test func dropDetailsBelongToTheAttachPointsThatHaveThem() throws {
    let (_, desugared) = try desugar(
      "skb:* /mark == 1/ { print(len) }", DesugaringOptions(capturesPackets: true, recordsStacks: true))
    let capture = try #require(Self.captures(desugared.clauses[0].actions).first)
    #expect(capture.comment.map(\.label) == ["mark", "ifname", "netns", "kstack"])
    #expect(
      capture.probeComment.keys.sorted() == ["tracepoint:consume_skb", "tracepoint:kfree_skb", "tracepoint:tcp_send_reset"])
    #expect(capture.probeComment["tracepoint:consume_skb"]?.map(\.label) == ["location"])
    #expect(capture.probeComment["tracepoint:tcp_send_reset"]?.map(\.label) == ["reason"])
    #expect(
      capture.comment(at: "tracepoint:kfree_skb").map(\.label) == ["mark", "ifname", "netns", "kstack", "reason", "location"])
  }

  /// With function backends skb:* has a kernel function and a tracepoint both named
  /// consume_skb: only the tracepoint has a location.
  @Test func dropDetailsAreKeyedByBackendAndName() throws {
    let resolver = try semaFixtureResolver(support: .all)
    let text = "skb:* /mark == 1/ { print(len) }"
    let (spec, rendered) = check(text, resolver: resolver)
    let checked = try #require(spec, "\(rendered)")
    let desugared = Desugaring(resolver: resolver, options: DesugaringOptions(capturesPackets: true))
      .desugar(checked, source: SourceFile(name: "<spec>", text: text))
    #expect(desugared.clauses[0].attachPoints.filter { $0.name == "consume_skb" }.count == 2)
    let capture = try #require(Self.captures(desugared.clauses[0].actions).first)
    #expect(capture.probeComment["tracepoint:consume_skb"]?.map(\.label) == ["location"])
    #expect(capture.probeComment["kprobe:consume_skb"] == nil, "\(capture.probeComment.keys.sorted())")
    #expect(capture.probeComment["tracepoint:kfree_skb"]?.map(\.label) == ["reason", "location"])
  }

  /// net_dev_xmit fires after the driver took the packet: no capture there, alone or among
  /// others.
  @Test func nothingIsCapturedAfterTheHandOver() throws {
    let (_, alone) = try desugar("skb:net_dev_xmit { print(len) }", DesugaringOptions(capturesPackets: true))
    #expect(Self.captures(alone.clauses[0].actions).isEmpty)
    let (_, among) = try desugar("skb:net_dev_* { print(len) }", DesugaringOptions(capturesPackets: true))
    let clause = among.clauses[0]
    for point in clause.attachPoints {
      let captured = !Self.captures(clause.specialized(for: point).actions).isEmpty
      #expect(captured == (point.name != "net_dev_xmit"), "\(point.name)")
    }
  }

  @Test func stackAddsKstackToEveryPrintOnce() throws {
    let (_, desugared) = try desugar(
      #"""
      skb:kfree_skb { print(len); print(kstack); printf("%d\n", len) }
      tracepoint:sched:sched_switch { print(prev_state) }
      """#,
      DesugaringOptions(recordsStacks: true))
    #expect(Self.printedLabels(desugared.clauses[0].actions) == [["len", "kstack"], ["kstack"]])
    #expect(Self.printedLabels(desugared.clauses[1].actions) == [["prev_state", "kstack"]])
    guard case .printf(_, let values, _) = desugared.clauses[0].actions[2] else {
      Issue.record("expected the printf")
      return
    }
    #expect(values.map(\.label) == ["len", "kstack"], "after the format's own arguments")
  }
}
