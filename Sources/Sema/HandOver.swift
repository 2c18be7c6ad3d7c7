import SwtraceSyntax

/// Tracepoints that fire after the skb was handed on: `net_dev_xmit` runs once the driver's
/// transmit function has returned, and by then the driver owns the packet and may have
/// freed it, or changed it (veth has already pulled the Ethernet header, scrubbed the mark
/// and set skb->dev to its peer). There, a spec reads only what the tracepoint itself
/// recorded before the hand-over: `len` is its length argument, `ifname`, `ifindex` and
/// `netns` come from its device argument, and its other arguments are `args.NAME`. Any
/// other read of the packet is refused in a clause of such probes only, and absent
/// (`TypedExpr.Kind.optional`) at them in a clause that has others too (`skb:*`).
struct HandOver: Hashable {
  /// The argument holding `skb->len` as it was before the hand-over.
  var lengthArgument: String
  /// The argument holding the device the packet was handed to.
  var deviceArgument: String

  static let tracepoints: [String: HandOver] = [
    "net_dev_xmit": HandOver(lengthArgument: "skb_len", deviceArgument: "dev")
  ]

  static func at(_ point: AttachPoint) -> HandOver? {
    point.backend == .tracepoint ? tracepoints[point.name] : nil
  }
}

extension AttachPoint {
  /// Whether the point fires after the skb was handed on (`net_dev_xmit`).
  public var firesAfterHandOver: Bool { HandOver.at(self) != nil }
}

extension ClauseContext {
  /// The hand-over of the clause's attach points, when some fire after it (all have the same
  /// arguments for what they recorded: there is one such tracepoint).
  var handOver: HandOver? { attachPoints.lazy.compactMap(HandOver.at).first }

  /// Whether every attach point of the clause fires after the hand-over.
  var onlyAfterHandOver: Bool { attachPoints.allSatisfy { HandOver.at($0) != nil } }

  /// An argument of the attach points that fire after the hand-over (the others of the clause
  /// need not have it: it is used only at these).
  func handOverArgument(_ name: String, range: SourceRange) -> Reference? {
    let points = attachPoints.filter(\.firesAfterHandOver)
    guard let type = points.first?.arguments.first(where: { $0.name == name })?.type,
      points.allSatisfy({ $0.arguments.contains { $0.name == name && $0.type == type } })
    else { return nil }
    return .value(TypedExpr(.argument(name), type: valueType(of: type), range: range))
  }

  func afterHandOver(_ range: SourceRange) -> TypedExpr {
    TypedExpr(.afterHandOver, type: .bool, range: range)
  }

  /// A read of the packet's memory (`what` as the spec wrote it), guarded at attach points
  /// that fire after the hand-over; nil with a diagnostic in a clause of only such points.
  mutating func guardedPacketRead(_ value: TypedExpr, _ what: String) -> TypedExpr? {
    guard let handOver, guardsPacketReads else { return value }
    if onlyAfterHandOver {
      let names = attachPoints.map(\.name)
      let probe = Set(names).count == 1 ? names[0] : names.joined(separator: ", ")
      diagnostics.append(
        Diagnostic(
          "packet-after-hand-over",
          "'\(what)' cannot be read at \(probe): it fires after the driver has taken the packet, which it may already have freed or changed",
          at: value.range,
          notes: [
            .init(
              .help,
              "\(probe) recorded the packet's length (len, args.\(handOver.lengthArgument)) and device (ifname, ifindex, netns, args.\(handOver.deviceArgument)); its other arguments are args.NAME"
            ),
            .init(.help, "skb:net_dev_start_xmit fires just before the hand-over, with the whole packet"),
          ]))
      return nil
    }
    let readable = TypedExpr(.unary(.not, afterHandOver(value.range)), type: .bool, range: value.range)
    let presence = Self.bothPresent(readable, value.presence)!
    return Self.optional(presence, value.unwrapped)
  }

  /// `value` where the packet can be read, `recorded` after the hand-over.
  func recordedAfterHandOver(_ recorded: TypedExpr, otherwise value: TypedExpr) -> TypedExpr {
    if onlyAfterHandOver { return recorded }
    return TypedExpr(
      .select(condition: afterHandOver(value.range), value: recorded, otherwise: value), type: value.type, range: value.range)
  }

  /// Runs `body` with packet reads unguarded: for the arm of a value that has a recorded
  /// counterpart after the hand-over.
  mutating func unguarded<T>(_ body: (inout ClauseContext) -> T) -> T {
    let saved = guardsPacketReads
    guardsPacketReads = false
    defer { guardsPacketReads = saved }
    return body(&self)
  }

  /// Whether `expression` reads memory reached from the skb.
  static func isRootedAtSkb(_ expression: TypedExpr) -> Bool {
    switch expression.kind {
    case .skb, .packet: true
    default: expression.operands.contains(where: isRootedAtSkb)
    }
  }
}

extension CheckedClause {
  /// The clause as it runs at `point`: whether the point fires after the hand-over is known,
  /// so the arms that do not apply there are dropped (a recorded argument another point
  /// lacks, a packet read that is absent there).
  public func specialized(for point: AttachPoint) -> CheckedClause {
    guard attachPoints.contains(where: { HandOver.at($0) != nil }) else { return self }
    let after = HandOver.at(point) != nil
    func fold(_ expression: TypedExpr) -> TypedExpr { expression.replacingHandOver(after) }
    func fold(_ actions: [Action]) -> [Action] {
      actions.compactMap { action -> Action? in
        switch action {
        case .print(let values, let range):
          .print(values.map { PrintedValue(label: $0.label, value: fold($0.value)) }, range: range)
        case .printf(let format, let values, let range):
          .printf(format, values.map { PrintedValue(label: $0.label, value: fold($0.value)) }, range: range)
        case .assignVariable(let slot, let value, let range): .assignVariable(slot: slot, value: fold(value), range: range)
        case .conditional(let condition, let then, let otherwise):
          .conditional(fold(condition), then: fold(then), else: fold(otherwise))
        case .mapUpdate(let map, let keys, let value, let range):
          .mapUpdate(map: map, keys: keys.map(fold), value: value.map(fold), range: range)
        case .mapDelete(let map, let keys, let range): .mapDelete(map: map, keys: keys.map(fold), range: range)
        case .loop(var loop):
          {
            loop.condition = loop.condition.map(fold)
            loop.body = fold(loop.body)
            return Action.loop(loop)
          }()
        case .track, .exit, .jump: action
        case .capture(let capture, let range):
          // After the hand-over the packet may be gone: there is nothing to capture.
          after ? nil : .capture(capture.mapValues(fold), range: range)
        }
      }
    }
    var clause = self
    clause.filter = filter.map(fold)
    clause.actions = fold(actions)
    return clause
  }
}

extension TypedExpr {
  /// This expression with `.afterHandOver` replaced by `after`, and the choices it decides
  /// made.
  func replacingHandOver(_ after: Bool) -> TypedExpr {
    if case .afterHandOver = kind { return TypedExpr(.integer(after ? 1 : 0), type: .bool, range: range) }
    let operands = operands
    if operands.isEmpty { return self }
    let rebuilt = withOperands(operands.map { $0.replacingHandOver(after) })
    switch rebuilt.kind {
    case .select(let condition, let value, let otherwise):
      if case .integer(let decided) = condition.kind { return decided != 0 ? value : otherwise }
      return rebuilt
    case .unary(.not, _), .binary(.and, _, _), .binary(.or, _, _):
      return ConstantFolding.folded(rebuilt)
    default:
      return rebuilt
    }
  }
}
