public import SwtraceSyntax

/// The one step, after type checking and before code generation, that adds what a spec
/// implies but does not write:
///
/// - with `--track`, a `track()` at the start of every skb clause that has a filter, so a
///   packet that matched once is followed after its mark is scrubbed;
/// - wherever packets are tracked, a clause of its own on each kernel point that frees an skb
///   (`tracepoint:skb:kfree_skb`, `tracepoint:skb:consume_skb`) that no clause attaches to
///   yet, so a freed packet leaves the tracked set even where the spec does not look;
/// - with `-f paths`, the device and namespace (`ifname`, `netns`) in every print of an skb
///   clause that does not print them already, so each hop of a path says where it was; and
///   the free of every packet a print reported, on those free points, printed as the last hop
///   of its path whatever the filters say (`CheckedSpec.followsPacketFrees`);
/// - with `-p PID`, `pid == PID &&` in front of every kernel clause's filter, as bpftrace does
///   for probes that are not bound to a process.
///
/// Each is built the way a written construct is: the free probes are resolved by the same
/// `ProbeResolver` (so `--dump-bpf` and the attach report show them like any other), the
/// fields are typed by the same checker code. Code generation never invents a probe or a
/// value of its own.
public struct Desugaring: Sendable {
  public let resolver: ProbeResolver
  public let options: DesugaringOptions

  /// The probes whose programs remove a freed skb from the tracked set, as a spec would
  /// write them. Other free points (`kfree_skbmem` ...) count only where the spec attaches.
  static let freeProbes: [(category: String, name: String)] = [("skb", "kfree_skb"), ("skb", "consume_skb")]

  public init(resolver: ProbeResolver, options: DesugaringOptions) {
    self.resolver = resolver
    self.options = options
  }

  public func desugar(_ spec: CheckedSpec, source: SourceFile) -> CheckedSpec {
    var desugared = spec
    desugared.clauses = spec.clauses.map { clause in
      var clause = clause
      let hasSkb = !clause.attachPoints.isEmpty && clause.attachPoints.allSatisfy { $0.skbArgument != nil }
      if hasSkb, options.trackFilteredPackets, clause.filter != nil {
        clause.actions.insert(.track(range: clause.range), at: 0)
      }
      if hasSkb, options.groupsEventsByPacket {
        var context = ClauseContext(checker: Checker(resolver: resolver), source: source, maps: spec.maps)
        context.attachPoints = clause.attachPoints
        context.hasSkb = true
        clause.actions = context.withPacketLocation(clause.actions)
      }
      if let processID = options.processID { clause.filter = Self.onlyProcess(processID, clause) }
      return clause
    }
    desugared.followsPacketFrees =
      options.groupsEventsByPacket
      && desugared.clauses.contains { clause in
        !clause.attachPoints.isEmpty && clause.attachPoints.allSatisfy { $0.skbArgument != nil } && clause.prints
      }
    if desugared.usesTracking || desugared.followsPacketFrees {
      desugared.clauses += freeClauses(for: desugared, source: source)
    }
    return desugared
  }

  /// The clause's filter behind `pid == processID &&`, located at the clause (`-p` wrote it).
  static func onlyProcess(_ processID: UInt32, _ clause: CheckedClause) -> TypedExpr {
    let range = clause.range
    let isProcess = TypedExpr(
      .binary(
        .equal, TypedExpr(.builtin(.pid), type: Builtin.pid.type, range: range),
        TypedExpr(.integer(UInt64(processID)), type: Builtin.pid.type, range: range)),
      type: .bool, range: range)
    return clause.filter.map { TypedExpr(.binary(.and, isProcess, $0), type: .bool, range: $0.range) } ?? isProcess
  }

  /// One clause on the free points the spec does not attach to: code generation gives every
  /// program of a tracking spec at a free point the removal from the tracked set. Without
  /// `-f paths` it has no filter and no actions; with it, it prints (the device and namespace)
  /// for tracked packets only: its filter is false, which a tracked packet passes at a free
  /// point. Blamed on the first clause that tracks or prints, should the kernel refuse it.
  func freeClauses(for spec: CheckedSpec, source: SourceFile) -> [CheckedClause] {
    let covered = Set(spec.clauses.flatMap(\.attachPoints).map(\.name))
    let range = spec.clauses.first { $0.tracks || $0.prints }?.range ?? spec.clauses.first?.range ?? .at(0)
    let freeing = Self.freeProbes.filter { !covered.contains($0.name) }.flatMap { probe -> [AttachPoint] in
      let written = Probe(kind: .tracepoint(category: probe.category, name: probe.name), range: range)
      // A kernel without the tracepoint frees its skbs elsewhere: nothing to attach.
      guard let points = try? resolver.resolve(written) else { return [] }
      return points.filter { $0.skbArgument != nil }
    }
    guard !freeing.isEmpty else { return [] }
    guard spec.followsPacketFrees else {
      return [CheckedClause(attachPoints: freeing, filter: nil, actions: [], range: range)]
    }
    var context = ClauseContext(checker: Checker(resolver: resolver), source: source, maps: spec.maps)
    context.attachPoints = freeing
    context.hasSkb = true
    let never = TypedExpr(.integer(0), type: .bool, range: range)
    return [
      CheckedClause(
        attachPoints: freeing, filter: never, actions: context.withPacketLocation([.print([], range: range)]), range: range)
    ]
  }
}

extension CheckedClause {
  /// Whether an action of the clause adds packets to the tracked set.
  var tracks: Bool { actions.contains { $0.tracks } }
  /// Whether an action of the clause prints an event.
  public var prints: Bool { actions.contains { $0.prints } }
}

extension Action {
  var tracks: Bool {
    if case .track = self { return true }
    return nestedActions.contains { $0.tracks }
  }

  /// Whether the action is, or holds, a print or printf.
  public var prints: Bool {
    switch self {
    case .print, .printf: true
    default: nestedActions.contains { $0.prints }
    }
  }
}

extension ClauseContext {
  /// `actions` with `ifname` and `netns` added to every print that lacks them, where this
  /// kernel can compute them.
  func withPacketLocation(_ actions: [Action]) -> [Action] {
    actions.map { action in
      switch action {
      case .print(var values, let range):
        for field in [DerivedField.ifname, .netns] where !values.contains(where: { $0.label == field.rawValue }) {
          if let typed = quietDerivedValue(field, range: range) {
            values.append(PrintedValue(label: field.rawValue, value: typed))
          }
        }
        return .print(values, range: range)
      case .conditional(let condition, let then, let otherwise):
        return .conditional(condition, then: withPacketLocation(then), else: withPacketLocation(otherwise))
      default:
        return action
      }
    }
  }
}
