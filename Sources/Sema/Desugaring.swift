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
///   for probes that are not bound to a process;
/// - with `--stack`, `kstack` in every print and printf that does not print it already;
/// - with `-w`, a capture of the packet after every print and printf of an skb clause, with
///   the values its comment shows and the skb fields that locate its bytes.
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
      var context = ClauseContext(checker: Checker(resolver: resolver), source: source, maps: spec.maps)
      context.attachPoints = clause.attachPoints
      context.hasSkb = hasSkb
      context.commonArguments = ClauseContext.commonArguments(of: clause.attachPoints)
      if hasSkb, options.trackFilteredPackets, clause.filter != nil {
        clause.actions.insert(.track(range: clause.range), at: 0)
      }
      if hasSkb, options.groupsEventsByPacket {
        clause.actions = context.withPacketLocation(clause.actions)
      }
      if options.recordsStacks {
        clause.actions = context.withStack(clause.actions)
      }
      if hasSkb, options.capturesPackets {
        clause.actions = context.withCaptures(clause.actions, stack: options.recordsStacks)
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

extension ClauseContext {
  /// `actions` with `kstack` added to every print and printf that does not print it already.
  func withStack(_ actions: [Action]) -> [Action] {
    func printsStack(_ values: [PrintedValue]) -> Bool {
      values.contains { $0.value.kind == .builtin(.kstack) }
    }
    return actions.map { action in
      switch action {
      case .print(var values, let range) where !printsStack(values):
        values.append(PrintedValue(label: "kstack", value: TypedExpr(.builtin(.kstack), type: .kernelStack, range: range)))
        return .print(values, range: range)
      case .printf(let format, var values, let range) where !printsStack(values):
        // After the format's own arguments: the text stays what the format says, and the
        // stack follows it.
        values.append(PrintedValue(label: "kstack", value: TypedExpr(.builtin(.kstack), type: .kernelStack, range: range)))
        return .printf(format, values, range: range)
      case .conditional(let condition, let then, let otherwise):
        return .conditional(condition, then: withStack(then), else: withStack(otherwise))
      case .loop(var loop):
        loop.body = withStack(loop.body)
        return .loop(loop)
      default:
        return action
      }
    }
  }

  /// `actions` with a capture of the packet after every print and printf, where this kernel
  /// can locate the packet's bytes.
  func withCaptures(_ actions: [Action], stack: Bool) -> [Action] {
    actions.flatMap { action -> [Action] in
      switch action {
      case .print(_, let range), .printf(_, _, let range):
        guard let capture = packetCapture(range: range, stack: stack) else { return [action] }
        return [action, .capture(capture, range: range)]
      case .conditional(let condition, let then, let otherwise):
        return [.conditional(condition, then: withCaptures(then, stack: stack), else: withCaptures(otherwise, stack: stack))]
      case .loop(var loop):
        loop.body = withCaptures(loop.body, stack: stack)
        return [.loop(loop)]
      default:
        return [action]
      }
    }
  }

  /// The comment's values and the packet's geometry, typed as if the spec had written them;
  /// nil where the kernel's `struct sk_buff` lacks what locates the bytes.
  func packetCapture(range: SourceRange, stack: Bool) -> PacketCapture? {
    guard let length = quietSkbValue(["len"], range: range),
      let pagedLength = quietSkbValue(["data_len"], range: range),
      let macHeader = quietSkbValue(["mac_header"], range: range),
      let networkHeader = quietSkbValue(["network_header"], range: range),
      let head = quietSkbValue(["head"], range: range),
      let data = quietSkbValue(["data"], range: range)
    else { return nil }
    var comment: [PrintedValue] = []
    if let mark = quietSkbValue(["mark"], range: range) { comment.append(PrintedValue(label: "mark", value: mark)) }
    for field in [DerivedField.ifname, .netns] {
      if let value = quietDerivedValue(field, range: range) {
        comment.append(PrintedValue(label: field.rawValue, value: value))
      }
    }
    // Where the probe says why and where the packet was dropped (kfree_skb): for the whole
    // clause when all its attach points have them, else for those that do.
    comment += dropDetails(range: range)
    var probeComment: [String: [PrintedValue]] = [:]
    for point in attachPoints where Self.dropArguments.contains(where: { name in commonArguments[name] == nil && point.argumentIndex(name) != nil }) {
      var single = self
      single.attachPoints = [point]
      single.commonArguments = Self.commonArguments(of: [point])
      let details = single.dropDetails(range: range).filter { commonArguments[$0.label] == nil }
      if !details.isEmpty { probeComment[point.qualifiedName] = details }
    }
    if stack {
      comment.append(PrintedValue(label: "kstack", value: TypedExpr(.builtin(.kstack), type: .kernelStack, range: range)))
    }
    let geometry = PacketGeometry(
      length: length, pagedLength: pagedLength, macHeader: macHeader, networkHeader: networkHeader, head: head,
      data: data, deviceType: quietSkbValue(["dev", "type"], range: range))
    return PacketCapture(comment: comment, probeComment: probeComment, geometry: geometry)
  }

  /// The arguments that say why and where a packet was dropped (`skb:kfree_skb`).
  static let dropArguments = ["reason", "location"]

  /// The drop arguments every attach point of this context has, typed as the spec would.
  func dropDetails(range: SourceRange) -> [PrintedValue] {
    Self.dropArguments.compactMap { name -> PrintedValue? in
      guard commonArguments[name] != nil else { return nil }
      var scratch = self
      guard case .value(let value)? = scratch.identifier(name, range: range), scratch.diagnostics.count == diagnostics.count
      else { return nil }
      return PrintedValue(label: name, value: value)
    }
  }

  /// The value at a path of members from the skb (`["dev", "type"]` is `skb->dev->type`), or
  /// nil without any diagnostic when this kernel lacks one of them.
  func quietSkbValue(_ names: [String], range: SourceRange) -> TypedExpr? {
    var scratch = self
    let before = diagnostics.count
    var current: Reference = .value(skbValue(range))
    for name in names {
      guard scratch.memberExists(name, in: current),
        let next = scratch.member(name, of: current, range: range, nameRange: range)
      else { return nil }
      current = next
    }
    let value: TypedExpr?
    switch current {
    case .value(let typed): value = typed
    case .place(let place): value = scratch.read(place)
    }
    return scratch.diagnostics.count == before ? value : nil
  }
}
