public import BTF
public import SwtraceSyntax

/// A spec after name resolution and type checking: everything code generation needs.
public struct CheckedSpec: Hashable, Sendable {
  /// Clauses that run in the kernel, one program per attach point.
  public var clauses: [CheckedClause]
  /// Maps in order of first use; `Action.mapUpdate` and friends refer to them by index.
  public var maps: [MapDeclaration]
  /// BEGIN, END and interval clauses, run by swtrace itself.
  public var userClauses: [UserClause]
  /// The types of probe the spec names as written (`skb` even where every attach point it
  /// matched is a tracepoint).
  public var probeTypes: Set<ProbeType> = []

  /// Whether any clause tracks packets, so every skb program consults the tracked set.
  public var usesTracking: Bool { clauses.contains { $0.tracks } }

  /// `-f paths`: every skb a print reports joins the tracked set, and the points where the
  /// kernel frees an skb report the free of such a packet whatever their filter says (a
  /// scrubbed mark, a filter that never looks there), so that each path ends where its skb is
  /// freed and a reused address starts a new one. Set by `Desugaring`.
  public var followsPacketFrees = false
}

/// The attach points of every probe of a spec, or why a probe has none, by the probe's place
/// in the spec: resolution as a step of its own, before type checking.
public struct ResolvedProbes: Sendable {
  var byRange: [SourceRange: Result<[AttachPoint], Diagnostic>] = [:]

  /// Resolves every kernel probe of `spec`.
  public init(_ spec: Spec, resolver: ProbeResolver) {
    for clause in spec.clauses where !UserClauseChecker.isUserClause(clause) {
      for probe in clause.probes where byRange[probe.range] == nil {
        do throws(Diagnostic) {
          byRange[probe.range] = .success(try resolver.resolve(probe))
        } catch {
          byRange[probe.range] = .failure(error)
        }
      }
    }
  }

  func attachPoints(of probe: Probe, resolver: ProbeResolver) throws(Diagnostic) -> [AttachPoint] {
    guard let known = byRange[probe.range] else { return try resolver.resolve(probe) }
    return try known.get()
  }
}

/// Resolves every name of a spec against BTF and types every expression. What the spec only
/// implies (tracking with `--track`, the free probes tracking needs, the fields `-f paths`
/// prints) is added afterwards by `Desugaring`.
public struct Checker: Sendable {
  public let types: KernelTypes
  public let resolver: ProbeResolver
  /// The command line's positional parameters: `$1` is the first.
  public var positionalParameters: [String]

  public init(resolver: ProbeResolver, positionalParameters: [String] = []) {
    self.types = resolver.types
    self.resolver = resolver
    self.positionalParameters = positionalParameters
  }

  /// Checks a whole spec. Diagnostics of all clauses are collected, not just the first.
  /// Probes are resolved here unless `resolved` has them already.
  public func check(_ spec: Spec, source: SourceFile, resolved: ResolvedProbes? = nil)
    -> (spec: CheckedSpec?, diagnostics: [Diagnostic])
  {
    let first = check(spec, source: source, resolved: resolved, knownMaps: [])
    // A map read in a clause before the clause that assigns it (or in a filter, before the
    // block, or from BEGIN's assignments) is known once every clause has been seen: check
    // again with the maps the first pass declared, as bpftrace allows any order.
    guard first.diagnostics.contains(where: { $0.id == "unknown-map" }), !first.maps.isEmpty else {
      return (first.spec, first.diagnostics)
    }
    let second = check(spec, source: source, resolved: resolved, knownMaps: first.maps)
    return (second.spec, second.diagnostics)
  }

  func check(_ spec: Spec, source: SourceFile, resolved: ResolvedProbes?, knownMaps: [MapDeclaration])
    -> (spec: CheckedSpec?, diagnostics: [Diagnostic], maps: [MapDeclaration])
  {
    var clauses: [CheckedClause] = []
    var userClauses: [UserClause] = []
    var maps: [MapDeclaration] = knownMaps
    var diagnostics: [Diagnostic] = []
    if spec.clauses.isEmpty {
      diagnostics.append(Diagnostic("empty-spec", "the spec has no clause", at: .at(0),
        notes: [.init(.help, "write a probe and a block, such as: skb:* < print(len) >")]))
    }
    // Kernel clauses first, so maps they assign are known to BEGIN/END/interval clauses.
    for clause in spec.clauses where !UserClauseChecker.isUserClause(clause) {
      var context = ClauseContext(checker: self, source: source, maps: maps, resolved: resolved)
      if let checked = context.check(clause) { clauses.append(checked) }
      maps = context.maps
      diagnostics += context.diagnostics
    }
    for clause in spec.clauses where UserClauseChecker.isUserClause(clause) {
      var checker = UserClauseChecker(checker: self, source: source, maps: maps)
      if let checked = checker.check(clause) { userClauses.append(checked) }
      maps = checker.maps
      diagnostics += checker.diagnostics
    }
    if clauses.isEmpty, !spec.clauses.isEmpty, !diagnostics.contains(where: { $0.severity == .error }) {
      diagnostics.append(
        Diagnostic(
          "no-kernel-clause", "the spec has no probe that runs in the kernel, so there is nothing to trace",
          at: spec.clauses[0].range, notes: [.init(.help, "add a clause such as: skb:* { print(len) }")]))
    }
    let hasErrors = diagnostics.contains { $0.severity == .error }
    let probeTypes = Set(spec.clauses.flatMap(\.probes).map(\.kind.type))
    return (
      hasErrors ? nil : CheckedSpec(clauses: clauses, maps: maps, userClauses: userClauses, probeTypes: probeTypes),
      diagnostics, maps
    )
  }
}

extension Checker {
  /// Whether, in a clause over `point`, the bare name of its argument `name` means the
  /// packet instead (such an argument is reachable as `args.NAME` only). Used by `-l`.
  public static func packetNameHides(_ name: String, at point: AttachPoint, types: KernelTypes) -> Bool {
    if Builtin(rawValue: name) != nil || name == "retval" { return true }
    guard point.skbArgument != nil else { return false }
    if name == "skb" || DerivedField(rawValue: name) != nil || ClauseContext.packetShortcuts.contains(name) { return true }
    if let skb = types.structure("sk_buff"), types.member(name, of: skb) != nil { return true }
    return false
  }
}

/// Memory that a name denotes before it is read: `skb->dev` is a place until a member of it
/// or its value is asked for.
struct Place {
  var base: TypedExpr
  var offset: Int
  var type: BTFTypeID
  var bitfield: TypedExpr.Bitfield?
  var range: SourceRange
  /// An array index checked at run time: the place reads as 0 when this is false.
  var condition: TypedExpr? = nil
}

enum Reference {
  case value(TypedExpr)
  case place(Place)
}

/// Checking state of one clause: its attach points and the names they make available.
struct ClauseContext {
  let checker: Checker
  var types: KernelTypes { checker.types }
  var diagnostics: [Diagnostic] = []
  var attachPoints: [AttachPoint] = []
  /// Arguments every attach point of the clause has, with the same type.
  var commonArguments: [String: BTFTypeID] = [:]
  var hasSkb = false
  var depth = 0
  static let maximumDepth = 200
  var maps: [MapDeclaration]
  let source: SourceFile
  /// `$variables` in order of first assignment; their index is their slot.
  var variables: [VariableDeclaration] = []
  /// Slots assigned on every path to the statement being checked.
  var assigned: Set<Int> = []
  /// The filter runs before the block, so it cannot read variables.
  var checkingFilter = false
  /// Whether reads of the packet are guarded at attach points that fire after the skb was
  /// handed on (`HandOver`); off while building a value's arm that is not used there.
  var guardsPacketReads = true
  /// Loops around the statement being checked; `break` and `continue` need one.
  var loopDepth = 0
  /// In a `tracepoint:` clause that reads what the tracepoint recorded (`args.sport`): the
  /// record of each attach point, shared by all of them. nil where arguments are read.
  var record: TracepointRecordFields? = nil
  /// The name that made the clause read the record, for diagnostics.
  var recordReason: String? = nil

  /// Probes resolved before checking, if they were.
  let resolved: ResolvedProbes?

  init(checker: Checker, source: SourceFile, maps: [MapDeclaration], resolved: ResolvedProbes? = nil) {
    self.checker = checker
    self.source = source
    self.maps = maps
    self.resolved = resolved
  }

  mutating func check(_ clause: Clause) -> CheckedClause? {
    for probe in clause.probes {
      do throws(Diagnostic) {
        if let resolved {
          attachPoints += try resolved.attachPoints(of: probe, resolver: checker.resolver)
        } else {
          attachPoints += try checker.resolver.resolve(probe)
        }
      } catch {
        diagnostics.append(error)
      }
    }
    guard !attachPoints.isEmpty else { return nil }
    hasSkb = attachPoints.allSatisfy { $0.skbArgument != nil }
    commonArguments = Self.commonArguments(of: attachPoints)
    guard chooseRecordOrArguments(clause) else { return nil }

    var filter: TypedExpr?
    checkingFilter = true
    if let expression = clause.filter, let typed = value(expression) {
      filter = condition(typed)
    }
    checkingFilter = false
    let actions = statements(clause.body.statements)
    if record != nil {
      attachPoints = attachPoints.map { point in
        var recorded = point
        recorded.backend = .tracepointRecord
        recorded.category = checker.resolver.tracepointCategory(of: point.name)
        // The program sees the record only: no skb, no argument of the raw tracepoint.
        recorded.skbArgument = nil
        return recorded
      }
    }
    return CheckedClause(
      attachPoints: attachPoints, filter: filter, actions: actions, range: clause.range, variables: variables)
  }

  /// Arguments every attach point has, with the same type.
  static func commonArguments(of attachPoints: [AttachPoint]) -> [String: BTFTypeID] {
    var common: [String: BTFTypeID]? = nil
    for point in attachPoints {
      let mine = Dictionary(point.arguments.map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })
      common = common.map { $0.filter { mine[$0.key] == $0.value } } ?? mine
    }
    return common ?? [:]
  }

  // MARK: Statements

  mutating func statements(_ list: [Statement]) -> [Action] {
    var actions: [Action] = []
    for (index, statement) in list.enumerated() {
      switch statement.kind {
      case .assignVariable(let name, let valueExpression):
        // An assignment of a value that may be absent also stores whether it is present.
        actions += assignVariable(name, valueExpression, range: statement.range)
      case .compoundAssign(let target, let op, let value):
        actions += compoundAssignment(target, op, value, range: statement.range)
      case .increment(let target, let op, _):
        let one = Expr(.integer(1), range: statement.range)
        actions += compoundAssignment(target, op == .increment ? .add : .subtract, one, range: statement.range)
      case .whileLoop(let condition, let body):
        actions += whileLoop(condition, body, before: list[..<index], range: statement.range)
      case .forRange(let variable, let start, let end, let body):
        actions += forRange(variable, start, end, body, range: statement.range)
      default:
        if let action = self.statement(statement) { actions.append(action) }
      }
    }
    return Self.joiningOpenLines(actions)
  }

  mutating func statement(_ statement: Statement) -> Action? {
    switch statement.kind {
    case .expression(let expression):
      guard case .call(let name, let arguments) = expression.kind else {
        diagnostics.append(
          Diagnostic(
            "expression-statement-unused", "this expression's value is not used",
            at: expression.range,
            notes: [.init(.help, "print it with print(...), or store it in a map: @name = ...")]))
        return nil
      }
      return call(name, arguments, range: expression.range)
    case .ifElse(let conditionExpression, let thenBlock, let elseBlock):
      // The branches are checked even when the condition is wrong: they may be what assigns
      // the maps the condition reads (`if (@seen[k] == 0) { @seen[k] = 1 }`), which the
      // second pass over the spec then knows.
      let typed = value(conditionExpression)
      // A variable is assigned after the if only when both branches assign it.
      let before = assigned
      let then = statements(thenBlock.statements)
      let afterThen = assigned
      assigned = before
      let otherwise = elseBlock.map { statements($0.statements) } ?? []
      assigned = afterThen.intersection(assigned)
      guard let typed else { return nil }
      return .conditional(condition(typed), then: then, else: otherwise)
    case .assignVariable(let name, let valueExpression):
      return assignVariable(name, valueExpression, range: statement.range).first
    case .assignMap(let access, let value):
      return mapAssignment(access, value, range: statement.range)
    case .jump(let kind):
      return jump(kind, range: statement.range)
    case .compoundAssign, .increment, .whileLoop, .forRange:
      return statements([statement]).first
    }
  }

  mutating func call(_ name: String, _ arguments: [Expr], range: SourceRange) -> Action? {
    switch name {
    case "print" where (arguments.count == 1 || arguments.count == 2) && { if case .map(let access) = arguments[0].kind { access.keys.isEmpty || arguments.count == 2 } else { false } }():
      diagnostics.append(
        Diagnostic(
          "user-statement-in-kernel-clause",
          "printing a whole map happens in swtrace, not in the kernel: use it in an interval: or END clause",
          at: range, notes: [.init(.help, "maps are printed at exit anyway; for periodic output: interval:1s { print(@name); clear(@name) }")]))
      return nil
    case "print":
      guard !arguments.isEmpty else {
        diagnostics.append(
          Diagnostic("print-needs-arguments", "print() needs at least one value to print", at: range,
                     notes: [.init(.help, "for example: print(len, gso_type)")]))
        return nil
      }
      var values: [PrintedValue] = []
      for argument in arguments {
        guard let typed = value(argument) else { continue }
        values.append(PrintedValue(label: sourceText(argument.range), value: typed))
      }
      guard values.count == arguments.count else { return nil }
      return .print(values, range: range)
    case "printf":
      return printf(arguments, range: range)
    case "delete":
      guard arguments.count == 1, case .map(let access) = arguments[0].kind else {
        diagnostics.append(
          Diagnostic("delete-needs-map-entry", "delete() takes one map entry, such as delete(@start[skb])", at: range))
        return nil
      }
      guard let index = maps.firstIndex(where: { $0.name == access.name }) else {
        diagnostics.append(Diagnostic("unknown-map", "@\(access.name) is not assigned anywhere before", at: access.range))
        return nil
      }
      guard let keys = entryKeys(access, of: index) else { return nil }
      return .mapDelete(map: index, keys: keys, range: range)
    case "clear", "zero":
      diagnostics.append(
        Diagnostic(
          "user-statement-in-kernel-clause", "\(name)() runs in swtrace, not in the kernel: use it in an interval: or END clause",
          at: range))
      return nil
    case "time":
      return time(arguments, range: range)
    case "track":
      guard hasSkb else {
        diagnostics.append(
          Diagnostic("track-needs-skb", "track() follows a packet, but this probe has no struct sk_buff argument", at: range))
        return nil
      }
      return .track(range: range)
    case "exit":
      if !arguments.isEmpty {
        diagnostics.append(Diagnostic("exit-takes-no-arguments", "exit() takes no arguments", at: range))
      }
      return .exit(range: range)
    default:
      let known = ["print", "printf", "exit", "track", "delete", "clear", "zero", "time"]
      var diagnostic = Diagnostic("unknown-statement", "'\(name)' is not a statement swtrace knows", at: range)
      if let best = closestName(to: name, among: known) {
        diagnostic.notes.append(.init(.help, "did you mean '\(best)'?"))
      }
      diagnostics.append(diagnostic)
      return nil
    }
  }

  func sourceText(_ range: SourceRange) -> String { source.text(of: range) }

  // MARK: Expressions

  /// A derived field's value, or nil without any diagnostic on kernels that cannot compute it.
  func quietDerivedValue(_ field: DerivedField, range: SourceRange) -> TypedExpr? {
    var scratch = self
    let before = diagnostics.count
    let value: TypedExpr?
    switch scratch.derivedField(field, range: range) {
    case .value(let typed)?: value = typed
    case .place(let place)?: value = scratch.read(place)
    case nil: value = nil
    }
    return scratch.diagnostics.count == before ? value : nil
  }

  /// A condition: non-boolean values are compared with zero, as in C; a value that may be
  /// absent holds only when it is present.
  func condition(_ unfolded: TypedExpr) -> TypedExpr {
    if let presence = unfolded.presence {
      if unfolded.type == .ipAddress { return condition(presence) }
      return TypedExpr(.binary(.and, condition(presence), condition(unfolded.unwrapped)), type: .bool, range: unfolded.range)
    }
    let expression = ConstantFolding.folded(unfolded)
    if case .integer(let value) = expression.kind {
      return TypedExpr(.integer(value != 0 ? 1 : 0), type: .bool, range: expression.range)
    }
    if expression.type == .bool { return expression }
    return TypedExpr(
      .binary(.notEqual, expression, TypedExpr(.integer(0), type: .u64, range: expression.range)),
      type: .bool, range: expression.range)
  }

  mutating func value(_ expression: Expr) -> TypedExpr? {
    // Deeply nested expressions (a chain of 2,000 `+`) would exhaust the stack of this and
    // every later stage; no real spec comes close to the limit.
    depth += 1
    defer { depth -= 1 }
    if depth > Self.maximumDepth {
      if depth == Self.maximumDepth + 1 {
        diagnostics.append(
          Diagnostic(
            "expression-too-deep", "this expression nests more than \(Self.maximumDepth) operations deep",
            at: expression.range, notes: [.init(.help, "split it, or compute parts into maps or separate clauses")]))
      }
      return nil
    }
    guard let reference = reference(expression) else { return nil }
    switch reference {
    case .value(let typed): return typed
    case .place(let place): return read(place)
    }
  }

  mutating func reference(_ expression: Expr) -> Reference? {
    let range = expression.range
    switch expression.kind {
    case .integer(let value):
      return .value(TypedExpr(.integer(value), type: .u64, range: range))
    case .bool(let value):
      return .value(TypedExpr(.integer(value ? 1 : 0), type: .bool, range: range))
    case .string(let text):
      return .value(TypedExpr(.string(text), type: .string(capacity: text.utf8.count + 1), range: range))
    case .identifier(let name):
      return identifier(name, range: range)
    case .member(let baseExpression, let name, _):
      if case .identifier("args") = baseExpression.kind {
        return argument(name, range: range)
      }
      if hasSkb, case .identifier(let headerName) = baseExpression.kind, let header = PacketHeader(rawValue: headerName) {
        guard let field = packetField(header, name, range: range) else { return nil }
        return guardedPacketRead(field, sourceText(range)).map(Reference.value)
      }
      if hasSkb, let header = innerHeader(baseExpression) {
        guard let header, let field = packetField(header, name, range: range, layer: 1) else { return nil }
        return guardedPacketRead(field, sourceText(range)).map(Reference.value)
      }
      guard let base = reference(baseExpression) else { return nil }
      return member(name, of: base, range: range, nameRange: memberNameRange(expression, name))
    case .unary(let op, let operandExpression):
      guard let operand = value(operandExpression) else { return nil }
      return unary(op, operand, range: range).map(Reference.value)
    case .ipv4(let address):
      return .value(TypedExpr(.integer(UInt64(address)), type: .ipv4, range: range))
    case .binary(.in, let lhsExpression, let rhsExpression):
      guard let lhs = value(lhsExpression) else { return nil }
      return prefixMatch(lhs, rhsExpression, range: range).map(Reference.value)
    case .binary(let op, let lhsExpression, let rhsExpression):
      guard let lhs = value(lhsExpression), let rhs = value(rhsExpression) else { return nil }
      return binary(op, lhs, rhs, range: range).map(Reference.value)
    case .map(let access):
      return mapRead(access, range: range).map(Reference.value)
    case .call("kstack", let arguments):
      guard arguments.isEmpty else {
        diagnostics.append(
          Diagnostic(
            "kstack-arguments", "kstack takes no arguments in swtrace: it is always the whole kernel stack, as deep as the kernel records it",
            at: range, notes: [.init(.help, "write kstack")]))
        return nil
      }
      return .value(TypedExpr(.builtin(.kstack), type: .kernelStack, range: range))
    case .call("has", let arguments):
      return has(arguments, range: range).map(Reference.value)
    case .conditional(let conditionExpression, let valueExpression, let otherwiseExpression):
      return conditionalValue(conditionExpression, valueExpression, otherwiseExpression, range: range).map(Reference.value)
    case .positional(let number):
      return .value(positional(number, range: range))
    case .positionalCount:
      return .value(TypedExpr(.integer(UInt64(checker.positionalParameters.count)), type: .u64, range: range))
    case .typeName(let type):
      diagnostics.append(
        Diagnostic(
          "type-not-value", "the type '\(type)' is not a value; only sizeof() and offsetof() take types", at: range))
      return nil
    case .call(let name, let arguments) where Self.valueFunctions.contains(name):
      return function(name, arguments, range: range).map(Reference.value)
    case .call("ksym", let arguments):
      guard arguments.count == 1 else {
        diagnostics.append(Diagnostic("ksym-arity", "ksym() takes one kernel address, such as ksym(location)", at: range))
        return nil
      }
      guard var address = value(arguments[0]) else { return nil }
      switch address.type {
      case .pointer, .integer(8, _), .kernelSymbol: break
      default:
        diagnostics.append(
          Diagnostic("ksym-needs-address", "ksym() needs a kernel address, but this is a \(address.type)", at: arguments[0].range))
        return nil
      }
      address.type = .kernelSymbol
      address.range = range
      return .value(address)
    case .ipv6(let bytes):
      return .value(TypedExpr(.bytes(bytes), type: .ipv6, range: range))
    case .cidr:
      diagnostics.append(
        Diagnostic(
          "prefix-outside-in", "an address prefix is not a value; it can only be the right side of 'in'", at: range,
          notes: [.init(.help, "for example: saddr in \(sourceText(range))")]))
      return nil
    case .variable(let name):
      return variable(name, range: range).map(Reference.value)
    case .index(let baseExpression, let indexExpression):
      guard let base = reference(baseExpression), let index = value(indexExpression) else { return nil }
      return self.index(base, index, range: range)
    case .cast(let typeName, let operandExpression):
      guard let operand = value(operandExpression) else { return nil }
      return cast(operand, to: typeName, range: range).map(Reference.value)
    case .call(let name, _):
      if Self.aggregationNames.contains(name) {
        diagnostics.append(
          Diagnostic(
            "unknown-function", "\(name)() is an aggregate, not a value: it can only be assigned to a map", at: range,
            notes: [.init(.help, "for example: @name[key] = \(name)(\(name == "count" ? "" : name == "lhist" ? "len, 0, 1500, 100" : "len"))")]))
        return nil
      }
      if ["print", "printf", "exit", "track", "delete", "clear"].contains(name) {
        diagnostics.append(Diagnostic("unknown-function", "\(name)() is a statement, not a value", at: range))
        return nil
      }
      if ["zero", "time"].contains(name) {
        diagnostics.append(Diagnostic("unknown-function", "\(name)() is a statement, not a value", at: range))
        return nil
      }
      var diagnostic = Diagnostic("unknown-function", "'\(name)' is not a function swtrace knows", at: range)
      if let best = closestName(to: name, among: ["ksym", "has", "kstack"] + Self.valueFunctions) {
        diagnostic.notes.append(.init(.help, "did you mean '\(best)'?"))
      }
      diagnostics.append(diagnostic)
      return nil
    }
  }

  func memberNameRange(_ expression: Expr, _ name: String) -> SourceRange {
    SourceRange(expression.range.end - name.utf8.count, expression.range.end)
  }

  var skbValue: (SourceRange) -> TypedExpr {
    let type = skbPointerType
    return { range in TypedExpr(.skb, type: type, range: range) }
  }

  var skbPointerType: ValueType {
    let id = types.structure("sk_buff") ?? 0
    return .pointer(pointee: id, description: "struct sk_buff *")
  }

  mutating func identifier(_ name: String, range: SourceRange) -> Reference? {
    if let builtin = Builtin(rawValue: name) {
      return builtinValue(builtin, range: range).map(Reference.value)
    }
    if name == "skb", hasSkb {
      return .value(skbValue(range))
    }
    if name == "retval" {
      let returning = attachPoints.compactMap(\.returnType)
      guard returning.count == attachPoints.count, let first = returning.first else {
        diagnostics.append(
          Diagnostic(
            "retval-needs-return-probe", "'retval' exists only in kretprobe: and fexit: clauses", at: range))
        return nil
      }
      return .value(TypedExpr(.returnValue, type: valueType(of: first), range: range))
    }
    // In skb clauses a name means the packet first (`len` is skb->len even where the probe
    // has an argument `len`); the probe's arguments are always `args.NAME`, and bare where
    // no packet name hides them. Derived fields before members: `protocol` is also a
    // member, in network order.
    if hasSkb, let derived = DerivedField(rawValue: name) {
      return derivedField(derived, range: range)
    }
    if hasSkb, let skbStruct = types.structure("sk_buff"), let member = types.member(name, of: skbStruct) {
      let place = Place(
        base: skbValue(range), offset: member.byteOffset, type: member.type, bitfield: bitfield(member), range: range)
      if name == "len", let handOver {
        // The length the tracepoint recorded before the hand-over.
        guard case .value(let recorded)? = handOverArgument(handOver.lengthArgument, range: range) else { return nil }
        if onlyAfterHandOver { return .value(recorded) }
        guard let value = unguarded({ $0.read(place) }) else { return nil }
        return .value(recordedAfterHandOver(recorded, otherwise: value))
      }
      return .place(place)
    }
    if hasSkb, Self.packetShortcuts.contains(name) {
      guard let field = packetShortcut(name, range: range) else { return nil }
      return guardedPacketRead(field, name).map(Reference.value)
    }
    // A bare name a record has is its field; other bare names keep their other meanings
    // (enum constants such as TCP_CLOSE) and are diagnosed below when they have none.
    if let field = recordField(name, range: range, quietly: true) { return field }
    if commonArguments[name] != nil {
      return argument(name, range: range)
    }
    if let register = registerArgument(name, range: range) { return register.map(Reference.value) }
    if let constant = namedConstant(name, range: range) { return .value(constant) }
    diagnostics.append(unknownName(name, range: range))
    return nil
  }

  /// `args.NAME`, or a bare argument name: a probe argument every attach point of the clause has.
  mutating func argument(_ name: String, range: SourceRange) -> Reference? {
    if record != nil, let field = recordField(name, range: range) { return field }
    guard let argumentType = commonArguments[name] else {
      var diagnostic = Diagnostic(
        "unknown-argument",
        attachPoints.count == 1
          ? "\(attachPoints[0].name) has no argument '\(name)'"
          : "'\(name)' is not an argument every probe of this clause has", at: range)
      let names = commonArguments.keys.sorted()
      if let best = closestName(to: name, among: names) {
        diagnostic.notes.append(.init(.help, "did you mean 'args.\(best)'?"))
      } else if !names.isEmpty {
        diagnostic.notes.append(.init(.help, "its arguments are: \(names.joined(separator: ", "))"))
      }
      diagnostics.append(diagnostic)
      return nil
    }
    var type = valueType(of: argumentType)
    // kfree_skb's `location` is the code address that dropped the packet: print it as a symbol.
    if name == "location", case .pointer(let pointee, _) = type, pointee == 0 { type = .kernelSymbol }
    return .value(TypedExpr(.argument(name), type: type, range: range))
  }

  /// `inner.HEADER`: nil when the expression is not one, `.some(nil)` after a diagnostic for
  /// a header the inner packet cannot have.
  mutating func innerHeader(_ expression: Expr) -> PacketHeader?? {
    guard case .member(let base, let name, _) = expression.kind, case .identifier("inner") = base.kind else { return nil }
    if let header = PacketHeader(rawValue: name) { return .some(header) }
    var diagnostic = Diagnostic(
      "unknown-packet-field", "the packet inside a tunnel has no header '\(name)'", at: expression.range,
      notes: [.init(.help, "its headers are: \(PacketHeader.allCases.map { "inner." + $0.rawValue }.joined(separator: ", "))")])
    if let best = closestName(to: name, among: PacketHeader.allCases.map(\.rawValue)) {
      diagnostic.notes.insert(.init(.help, "did you mean 'inner.\(best)'?"), at: 0)
    }
    diagnostics.append(diagnostic)
    return .some(nil)
  }

  /// `has(udp)`: whether the packet has the header; `has(udp.dport)`, `has(saddr)`: whether
  /// the value is present (always, for a value that cannot be absent).
  mutating func has(_ arguments: [Expr], range: SourceRange) -> TypedExpr? {
    guard arguments.count == 1 else {
      diagnostics.append(
        Diagnostic("has-arity", "has() takes one header or field, such as has(udp) or has(tcp.dport)", at: range))
      return nil
    }
    if hasSkb, let inner = innerHeader(arguments[0]) {
      guard let inner, requirePacketMembers(range) else { return nil }
      return guardedPacketRead(headerPresent(inner, range, layer: 1), sourceText(range)).map(condition)
    }
    if case .identifier(let name) = arguments[0].kind, let header = PacketHeader(rawValue: name) {
      guard hasSkb else {
        diagnostics.append(
          Diagnostic("has-needs-skb", "has(\(name)) asks about a packet, but this probe has no struct sk_buff argument", at: range))
        return nil
      }
      guard requirePacketMembers(range) else { return nil }
      return guardedPacketRead(headerPresent(header, range), sourceText(range)).map(condition)
    }
    guard let value = value(arguments[0]) else { return nil }
    return value.presence.map(condition) ?? TypedExpr(.integer(1), type: .bool, range: range)
  }

  func unknownName(_ name: String, range: SourceRange) -> Diagnostic {
    var candidates = Builtin.allCases.map(\.rawValue) + Array(commonArguments.keys)
    if hasSkb {
      candidates += ["skb"] + DerivedField.allCases.map(\.rawValue) + Array(Self.packetShortcuts)
      if let skbStruct = types.structure("sk_buff") {
        candidates += types.members(of: skbStruct).map(\.name)
      }
    }
    var diagnostic = Diagnostic(
      "unknown-name",
      hasSkb
        ? "'\(name)' is not a builtin, a probe argument, a member of struct sk_buff in \(types.origin), or a derived packet field"
        : "'\(name)' is not a builtin or an argument of this probe",
      at: range)
    if let best = closestName(to: name, among: candidates) {
      diagnostic.notes.append(.init(.help, "did you mean '\(best)'?"))
    }
    return diagnostic
  }

  func bitfield(_ member: MemberLookup) -> TypedExpr.Bitfield? {
    member.bitfieldSize == 0
      ? nil : TypedExpr.Bitfield(bitOffset: member.bitOffset % 8, bitCount: member.bitfieldSize)
  }

  /// `base.name` / `base->name`: both follow a pointer or step into an embedded struct.
  mutating func member(_ name: String, of base: Reference, range: SourceRange, nameRange: SourceRange)
    -> Reference?
  {
    let place: Place
    switch base {
    case .place(let p):
      let resolved = types.resolved(p.type)
      if case .pointer(let pointee) = types.type(resolved) {
        guard let pointer = read(p) else { return nil }
        place = Place(base: pointer, offset: 0, type: pointee, bitfield: nil, range: range)
      } else {
        place = p
      }
    case .value(let value):
      guard case .pointer(let pointee, _) = value.type else {
        diagnostics.append(
          Diagnostic(
            "member-of-non-struct", "'\(sourceText(value.range))' is a \(value.type), which has no member '\(name)'",
            at: nameRange))
        return nil
      }
      place = Place(base: value, offset: 0, type: pointee, bitfield: nil, range: range)
    }
    let structID = types.resolved(place.type)
    switch types.type(structID) {
    case .structure, .union:
      break
    default:
      diagnostics.append(
        Diagnostic(
          "member-of-non-struct",
          "\(types.describe(place.type)) has no members, so it has no member '\(name)'", at: nameRange))
      return nil
    }
    guard let found = types.member(name, of: structID) else {
      var diagnostic = Diagnostic(
        "unknown-member", "\(types.describe(structID)) has no member '\(name)' in \(types.origin)",
        at: nameRange)
      if let best = closestName(to: name, among: types.members(of: structID).map(\.name)) {
        diagnostic.notes.append(.init(.help, "did you mean '\(best)'?"))
      }
      diagnostics.append(diagnostic)
      return nil
    }
    return .place(
      Place(
        base: place.base, offset: place.offset + found.byteOffset, type: found.type,
        bitfield: bitfield(found), range: range, condition: place.condition))
  }

  /// The value stored at a place, typed from BTF; 0 where a run-time index check fails.
  mutating func read(_ place: Place) -> TypedExpr? {
    if let presence = place.base.presence {
      // Memory behind a pointer that may be absent may be absent too.
      var present = place
      present.base = place.base.unwrapped
      return read(present).map { value in Self.optional(Self.bothPresent(presence, value.presence)!, value.unwrapped) }
    }
    guard var value = readUnchecked(place) else { return nil }
    if let condition = place.condition {
      value = TypedExpr(
        .select(condition: condition, value: value, otherwise: TypedExpr(.integer(0), type: value.type, range: value.range)),
        type: value.type, range: value.range)
    }
    if Self.isRootedAtSkb(place.base) { return guardedPacketRead(value, sourceText(place.range)) }
    return value
  }

  /// `id` without `const`, `volatile`, `restrict` and type tags (typedefs are kept).
  static func unqualified(_ id: BTFTypeID, types: KernelTypes) -> BTFTypeID {
    var current = id
    for _ in 0..<16 {
      switch types.type(current) {
      case .const(let next), .volatile(let next), .restrict(let next), .typeTag(_, let next): current = next
      default: return current
      }
    }
    return current
  }

  /// Whether an array of this element is text: `char`, not `u8` or `unsigned char`, which
  /// hold bytes (`__u8 saddr[4]`).
  static func isCharacter(_ element: BTFTypeID, types: KernelTypes) -> Bool {
    guard case .integer(let name, 1, _, _, let isChar, _) = types.type(types.resolved(element)) else { return false }
    return isChar || name == "char"
  }

  mutating func readUnchecked(_ place: Place) -> TypedExpr? {
    let id = types.resolved(place.type)
    let valueType = valueType(of: place.type)
    switch types.type(id) {
    case .integer, .enumeration, .pointer:
      let size = types.size(of: id) ?? 8
      return TypedExpr(
        .load(base: place.base, offset: place.offset, size: size, bitfield: place.bitfield),
        type: valueType, range: place.range)
    case .array(let element, let count):
      if Self.isCharacter(element, types: types) {
        return TypedExpr(
          .loadString(base: place.base, offset: place.offset, capacity: count),
          type: .string(capacity: count), range: place.range)
      }
      if types.size(of: element) == 1, count > 0 {
        // Bytes that are not text (`__u8 daddr[4]`): printed as numbers, ntop() reads them.
        return TypedExpr(
          .load(base: place.base, offset: place.offset, size: count, bitfield: nil), type: .byteArray(count: count),
          range: place.range)
      }
      diagnostics.append(
        Diagnostic(
          "array-needs-index", "'\(sourceText(place.range))' is an array (\(types.describe(id))); arrays other than strings cannot be printed whole",
          at: place.range))
      return nil
    default:
      let members = types.members(of: id).prefix(6).map(\.name).joined(separator: ", ")
      diagnostics.append(
        Diagnostic(
          "struct-needs-member", "'\(sourceText(place.range))' is a \(types.describe(place.type)); name one of its members",
          at: place.range, notes: members.isEmpty ? [] : [.init(.help, "its members include: \(members)")]))
      return nil
    }
  }

  /// The swtrace type of a BTF type.
  func valueType(of id: BTFTypeID) -> ValueType {
    let resolved = types.resolved(id)
    switch types.type(resolved) {
    case .integer(_, let size, let signed, let isBool, _, _):
      return isBool ? .bool : .integer(bytes: size, signed: signed)
    case .enumeration(let name, let size, let signed, let enumerators):
      var names: [Int64: String] = [:]
      for e in enumerators where names[e.value] == nil { names[e.value] = e.name }
      return .enumeration(
        EnumNames(
          typeName: name, names: names, representation: IntegerRepresentation(bytes: size, isSigned: signed)))
    case .pointer(let pointee):
      // Qualifiers are not part of the pointer's type: a `const struct sock *` and a
      // `struct sock *` are the same key of a map, and compare.
      let unqualified = Self.unqualified(pointee, types: types)
      return .pointer(pointee: unqualified, description: types.describe(unqualified) + " *")
    case .array(let element, let count):
      if Self.isCharacter(element, types: types) { return .string(capacity: count) }
      if types.size(of: element) == 1 { return .byteArray(count: count) }
      return .u64
    default:
      return .u64
    }
  }

  mutating func unary(_ op: UnaryOperator, _ operand: TypedExpr, range: SourceRange) -> TypedExpr? {
    switch op {
    case .not:
      return TypedExpr(.unary(.not, condition(operand)), type: .bool, range: range)
    case .negate, .complement:
      if let presence = operand.presence {
        return unary(op, operand.unwrapped, range: range).map { Self.optional(presence, $0) }
      }
      guard operand.type.isNumeric else {
        diagnostics.append(
          Diagnostic("operator-type-mismatch", "'\(op.rawValue)' needs a number, but this is a \(operand.type)", at: range))
        return nil
      }
      if case .integer(let value) = operand.kind {
        return TypedExpr(.integer(ConstantFolding.unary(op, value)), type: .s64, range: range)
      }
      return TypedExpr(.unary(op, operand), type: op == .negate ? .s64 : operand.type, range: range)
    }
  }

  /// A value that exists when `presence` holds.
  static func optional(_ presence: TypedExpr, _ value: TypedExpr) -> TypedExpr {
    TypedExpr(.optional(present: presence, value: value), type: value.type, range: value.range)
  }

  /// Both presence conditions, or the one there is.
  static func bothPresent(_ a: TypedExpr?, _ b: TypedExpr?) -> TypedExpr? {
    guard let a else { return b }
    guard let b else { return a }
    return TypedExpr(.binary(.and, a, b), type: .bool, range: a.range)
  }

  /// `lhs op rhs` where either may be absent: arithmetic on an absent value is absent, and a
  /// comparison with one is false (`udp.dport != 53` holds only for UDP packets). `saddr`
  /// and `daddr` compare as the IPv4 or IPv6 field the other side's family says.
  mutating func binary(_ op: BinaryOperator, _ lhs: TypedExpr, _ rhs: TypedExpr, range: SourceRange)
    -> TypedExpr?
  {
    if op == .and || op == .or { return plainBinary(op, lhs, rhs, range: range) }
    if let compared = familyComparison(op, lhs, rhs, range: range) { return compared }
    let presence = Self.bothPresent(lhs.presence, rhs.presence)
    guard let presence else { return plainBinary(op, lhs, rhs, range: range) }
    guard let result = plainBinary(op, lhs.unwrapped, rhs.unwrapped, range: range) else { return nil }
    if result.type == .bool {
      return TypedExpr(.binary(.and, presence, result), type: .bool, range: range)
    }
    return Self.optional(presence, result)
  }

  /// The IPv4 or IPv6 field inside `saddr`/`daddr` (an `.optional` `.eitherFamily`).
  static func familyFields(_ value: TypedExpr) -> (v4: TypedExpr, v6: TypedExpr)? {
    guard case .eitherFamily(_, let v4, let v6) = value.unwrapped.kind else { return nil }
    return (v4, v6)
  }

  /// `saddr == 10.0.0.1` is `ip.saddr == 10.0.0.1`, `saddr == fd00::1` is `ip6.saddr ==
  /// fd00::1`, and `saddr == daddr` compares the fields of whichever version the packet has.
  mutating func familyComparison(_ op: BinaryOperator, _ lhs: TypedExpr, _ rhs: TypedExpr, range: SourceRange)
    -> TypedExpr?
  {
    let left = Self.familyFields(lhs)
    let right = Self.familyFields(rhs)
    guard left != nil || right != nil else { return nil }
    if let left, let right {
      guard let v4 = binary(op, left.v4, right.v4, range: range), let v6 = binary(op, left.v6, right.v6, range: range) else {
        return nil
      }
      return TypedExpr(.binary(.or, v4, v6), type: .bool, range: range)
    }
    if let left {
      return binary(op, rhs.type == .ipv6 ? left.v6 : left.v4, rhs, range: range)
    }
    return binary(op, lhs, lhs.type == .ipv6 ? right!.v6 : right!.v4, range: range)
  }

  mutating func plainBinary(_ op: BinaryOperator, _ lhs: TypedExpr, _ rhs: TypedExpr, range: SourceRange)
    -> TypedExpr?
  {
    func mismatch(_ why: String) -> TypedExpr? {
      diagnostics.append(
        Diagnostic(
          "operator-type-mismatch",
          "'\(op.rawValue)' cannot combine \(lhs.type) ('\(sourceText(lhs.range))') with \(rhs.type) ('\(sourceText(rhs.range))')",
          at: range, notes: why.isEmpty ? [] : [.init(.help, why)]))
      return nil
    }
    switch op {
    case .and, .or:
      // `x && false` is false as a value too, not only as a condition: no code for x.
      return ConstantFolding.folded(TypedExpr(.binary(op, condition(lhs), condition(rhs)), type: .bool, range: range))
    case .equal, .notEqual:
      switch (lhs.type, rhs.type) {
      case (.pointer, .pointer):
        break
      case (.pointer, _), (_, .pointer):
        let other = if case .pointer = lhs.type { rhs } else { lhs }
        guard case .integer(0) = other.kind else {
          return mismatch("a pointer can only be compared with 0")
        }
      case (.string, .string):
        // One side must be a literal: the other is read from the kernel and compared in place.
        let literal: TypedExpr
        let field: TypedExpr
        if case .string = rhs.kind {
          (field, literal) = (lhs, rhs)
        } else if case .string = lhs.kind {
          (field, literal) = (rhs, lhs)
        } else {
          return mismatch("compare a string with a string literal, such as ifname == \"eth0\"")
        }
        if case .string(let text) = literal.kind, text.utf8.count >= field.type.storageSize {
          diagnostics.append(
            Diagnostic(
              "string-literal-too-long",
              "\"\(text)\" is \(text.utf8.count) bytes, but '\(sourceText(field.range))' holds at most \(field.type.storageSize - 1)",
              at: literal.range))
          return nil
        }
        return TypedExpr(.binary(op, field, literal), type: .bool, range: range)
      case (.string, _), (_, .string):
        return mismatch("a string compares only with a string literal")
      case (.ipv4, .ipv4), (.ipv6, .ipv6):
        break
      case (.ipv4, _), (_, .ipv4), (.ipv6, _), (_, .ipv6):
        return mismatch("an address compares only with an address of the same family, such as 10.0.0.1")
      default:
        guard lhs.type.isNumeric, rhs.type.isNumeric else { return mismatch("") }
      }
      return TypedExpr(.binary(op, lhs, rhs), type: .bool, range: range)
    case .less, .lessEqual, .greater, .greaterEqual:
      guard lhs.type.isNumeric, rhs.type.isNumeric else {
        return mismatch("ordering comparisons need numbers on both sides")
      }
      return TypedExpr(.binary(op, lhs, rhs), type: .bool, range: range)
    case .in:
      return mismatch("'in' needs an address and a prefix such as 10.0.0.0/8")
    case .bitOr, .bitXor, .bitAnd, .shiftLeft, .shiftRight, .add, .subtract, .multiply, .divide,
      .modulo:
      if let pointer = pointerArithmetic(op, lhs, rhs) { return pointer }
      guard lhs.type.isNumeric, rhs.type.isNumeric else { return mismatch("arithmetic needs numbers on both sides") }
      if op == .divide || op == .modulo, case .integer(0) = rhs.kind {
        diagnostics.append(Diagnostic("division-by-zero", "division by zero", at: rhs.range))
        return nil
      }
      let signed = lhs.type.isSigned || rhs.type.isSigned
      let type: ValueType = .integer(bytes: 8, signed: signed)
      if case .integer(let a) = lhs.kind, case .integer(let b) = rhs.kind,
        let folded = ConstantFolding.arithmetic(op, a, b, signed: signed)
      {
        return TypedExpr(.integer(folded), type: type, range: range)
      }
      return TypedExpr(.binary(op, lhs, rhs), type: type, range: range)
    }
  }

  /// `address in 10.0.0.0/8`: the address with the host bits cleared equals the network.
  mutating func prefixMatch(_ address: TypedExpr, _ prefix: Expr, range: SourceRange) -> TypedExpr? {
    guard case .cidr(let network, let length) = prefix.kind else {
      diagnostics.append(
        Diagnostic("operator-type-mismatch", "'in' needs an address prefix on its right, such as 10.0.0.0/8", at: prefix.range))
      return nil
    }
    if let fields = Self.familyFields(address) {
      // `saddr in 10.0.0.0/8` is `ip.saddr in 10.0.0.0/8`.
      let isIPv4 = if case .ipv4 = network.kind { true } else { false }
      return prefixMatch(isIPv4 ? fields.v4 : fields.v6, prefix, range: range)
    }
    if let presence = address.presence {
      guard let matched = prefixMatch(address.unwrapped, prefix, range: range) else { return nil }
      return TypedExpr(.binary(.and, presence, matched), type: .bool, range: range)
    }
    switch (network.kind, address.type) {
    case (.ipv4, .ipv4) where length == 0, (.ipv6, .ipv6) where length == 0:
      // Every address of the family is in a /0 prefix.
      return TypedExpr(.integer(1), type: .bool, range: range)
    case (.ipv4, .ipv4):
      break
    case (.ipv6(let bytes), .ipv6):
      return TypedExpr(.prefixMatch(address, network: bytes, prefixLength: length), type: .bool, range: range)
    default:
      let family = if case .ipv4 = network.kind { "an IPv4" } else { "an IPv6" }
      diagnostics.append(
        Diagnostic(
          "operator-type-mismatch",
          "'in' needs an address and a prefix of the same family, but '\(sourceText(address.range))' is \(Self.article(address.type)) and '\(sourceText(prefix.range))' \(family) prefix",
          at: range))
      return nil
    }
    guard case .ipv4(let networkAddress) = network.kind else { return nil }
    let mask: UInt64 = length == 0 ? 0 : UInt64(UInt32.max << UInt32(32 - length)) & 0xffff_ffff
    let masked = TypedExpr(
      .binary(.bitAnd, address, TypedExpr(.integer(mask), type: .u64, range: prefix.range)), type: .u64, range: range)
    let expected = TypedExpr(.integer(UInt64(networkAddress) & mask), type: .u64, range: prefix.range)
    return TypedExpr(.binary(.equal, masked, expected), type: .bool, range: range)
  }
}
