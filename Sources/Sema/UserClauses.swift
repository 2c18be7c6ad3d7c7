import SwtraceSyntax

/// A constant a BEGIN, END or interval clause prints or stores, with its type.
public struct UserValue: Hashable, Sendable {
  public enum Constant: Hashable, Sendable {
    /// A number's 64 bits (extended as its type says).
    case number(UInt64)
    case text(String)
    /// Bytes in memory order (an IPv6 address).
    case bytes([UInt8])
  }
  public var type: ValueType
  public var constant: Constant
}

/// Checks BEGIN, END and interval clauses: they run in swtrace, so only statements about
/// maps and the trace itself are allowed there, with constant values.
struct UserClauseChecker {
  let checker: Checker
  let source: SourceFile
  var maps: [MapDeclaration]
  var diagnostics: [Diagnostic] = []

  init(checker: Checker, source: SourceFile, maps: [MapDeclaration]) {
    self.checker = checker
    self.source = source
    self.maps = maps
  }

  static func isUserClause(_ clause: Clause) -> Bool {
    clause.probes.contains { probe in
      switch probe.kind {
      case .begin, .end, .interval: true
      default: false
      }
    }
  }

  mutating func check(_ clause: Clause) -> UserClause? {
    guard clause.probes.count == 1, let probe = clause.probes.first else {
      diagnostics.append(
        Diagnostic(
          "user-clause-mixed", "BEGIN, END and interval: clauses take exactly one probe", at: clause.range))
      return nil
    }
    let trigger: UserClause.Trigger
    switch probe.kind {
    case .begin: trigger = .begin
    case .end: trigger = .end
    case .interval(let nanoseconds): trigger = .interval(nanoseconds: nanoseconds)
    default: return nil
    }
    if let filter = clause.filter {
      diagnostics.append(
        Diagnostic("user-clause-filter", "BEGIN, END and interval: clauses cannot have a filter", at: filter.range))
    }
    var steps: [UserClause.Step] = []
    for statement in clause.body.statements {
      if let step = self.step(statement) { steps.append(step) }
    }
    return UserClause(trigger: trigger, steps: steps, range: clause.range)
  }

  mutating func step(_ statement: Statement) -> UserClause.Step? {
    if case .assignMap(let access, let value) = statement.kind {
      return mapAssignment(access, value, statement: statement)
    }
    guard case .expression(let expression) = statement.kind, case .call(let name, let arguments) = expression.kind
    else {
      return unsupported(statement)
    }
    switch (name, arguments.first?.kind, arguments.count) {
    case ("print", .map(let access), 1):
      return mapIndex(access).map(UserClause.Step.printMap)
    case ("print", .map(let access), 2):
      guard let index = mapIndex(access) else { return nil }
      guard let top = constant(arguments[1]), case .number(let count) = top.constant, count > 0, count <= UInt64(Int32.max) else {
        diagnostics.append(
          Diagnostic("print-top", "print(@map, N) prints the N largest entries: N must be a constant above 0", at: arguments[1].range))
        return nil
      }
      return .printMapTop(index, top: Int(count))
    case ("clear", .map(let access), 1):
      return mapIndex(access).map(UserClause.Step.clearMap)
    case ("zero", .map(let access), 1):
      return mapIndex(access).map(UserClause.Step.zeroMap)
    case ("print", .string(let text), 1):
      return .printText(text)
    case ("printf", _, _):
      return printf(arguments, statement: statement)
    case ("time", _, _):
      var format = "%H:%M:%S\n"
      if let first = arguments.first {
        guard arguments.count == 1, case .string(let text) = first.kind else { return unsupported(statement) }
        format = text
      }
      return .printTime(format: format)
    case ("exit", nil, 0):
      return .exit
    default:
      return unsupported(statement)
    }
  }

  /// The one message for any statement these clauses cannot run.
  mutating func unsupported(_ statement: Statement) -> UserClause.Step? {
    diagnostics.append(
      Diagnostic(
        "user-clause-statement",
        "BEGIN, END and interval: clauses can only print(@map), print(@map, N), clear(@map), zero(@map), print(\"text\"), printf(\"format\", constants), time(), exit() and assign constants to maps (@map[key] = value)",
        at: statement.range))
    return nil
  }

  mutating func mapIndex(_ access: MapAccess) -> Int? {
    if let index = maps.firstIndex(where: { $0.name == access.name }), access.keys.isEmpty { return index }
    if !access.keys.isEmpty {
      diagnostics.append(
        Diagnostic("user-clause-map-key", "print and clear take a whole map, without keys: @\(access.name)", at: access.range))
      return nil
    }
    var diagnostic = Diagnostic("unknown-map", "no clause assigns @\(access.name)", at: access.range)
    if let best = closestName(to: access.name, among: maps.map(\.name)) {
      diagnostic.notes.append(.init(.help, "did you mean '@\(best)'?"))
    }
    diagnostics.append(diagnostic)
    return nil
  }

  /// A context for typing constants: no attach point, so only constants, enum and family names,
  /// positional parameters and arithmetic on them have a value.
  func constantContext() -> ClauseContext {
    ClauseContext(checker: checker, source: source, maps: maps)
  }

  /// The constant `expression` computes, or nil after a diagnostic.
  mutating func constant(_ expression: Expr) -> UserValue? {
    var context = constantContext()
    let typed = context.value(expression)
    diagnostics += context.diagnostics
    guard let typed else { return nil }
    switch typed.kind {
    case .integer(let value): return UserValue(type: typed.type, constant: .number(value))
    case .string(let text): return UserValue(type: typed.type, constant: .text(text))
    case .bytes(let bytes): return UserValue(type: typed.type, constant: .bytes(bytes))
    default:
      diagnostics.append(
        Diagnostic(
          "user-clause-constant", "BEGIN, END and interval: clauses run in swtrace, where '\(source.text(of: expression.range))' has no value; only constants can be used there",
          at: expression.range))
      return nil
    }
  }

  /// `@map[keys] = value` with constants: written into the kernel's map by swtrace (in
  /// BEGIN, before the probes are attached, so lookup tables are there for the first event).
  mutating func mapAssignment(_ access: MapAccess, _ valueExpression: Expr, statement: Statement) -> UserClause.Step? {
    if case .call(let name, _) = valueExpression.kind, ClauseContext.aggregationNames.contains(name) {
      diagnostics.append(
        Diagnostic(
          "user-clause-aggregate", "\(name)() aggregates events in the kernel; BEGIN, END and interval: clauses can only store constants",
          at: valueExpression.range))
      return nil
    }
    var keys: [UserValue] = []
    for key in access.keys {
      guard let constant = constant(key) else { return nil }
      keys.append(constant)
    }
    guard let value = constant(valueExpression) else { return nil }
    var context = constantContext()
    let declaration = MapDeclaration(
      name: access.name,
      keys: zip(access.keys, keys).map {
        MapKey(label: source.text(of: $0.0.range), type: ClauseContext.keyType($0.1.type))
      },
      aggregation: .value, valueType: value.type, range: access.range)
    let index = context.declare(declaration, at: access.range)
    diagnostics += context.diagnostics
    maps = context.maps
    guard let index else { return nil }
    guard maps[index].aggregation == .value else { return nil }
    return .assignMap(index, keys: keys, value: value)
  }
}

extension UserClauseChecker {
  /// `printf("format", constants...)`: formatted by swtrace when the clause runs. Text that
  /// does not end its line is continued by the next printf, as in bpftrace.
  mutating func printf(_ arguments: [Expr], statement: Statement) -> UserClause.Step? {
    guard let first = arguments.first, case .string(let text) = first.kind else { return unsupported(statement) }
    let (parsed, problems) = FormatString.parse(text, literal: first.range, spelling: source.text(of: first.range))
    diagnostics += problems
    guard let parsed else { return nil }
    var values: [UserValue] = []
    for argument in arguments.dropFirst() {
      guard let value = constant(argument) else { return nil }
      values.append(value)
    }
    let conversions = parsed.conversions
    guard conversions.count == values.count else {
      let problem =
        conversions.count > values.count
        ? "'\(conversions[values.count].spelling)' has no value to print" : "the format has fewer conversions than values"
      diagnostics.append(
        Diagnostic(
          conversions.count > values.count ? "printf-missing-argument" : "printf-extra-argument", problem,
          at: conversions.count > values.count ? conversions[values.count].range : statement.range))
      return nil
    }
    for (conversion, value) in zip(conversions, values) {
      guard let needed = conversion.accepts(value.type) else { continue }
      diagnostics.append(
        Diagnostic(
          "printf-argument-type", "'\(conversion.spelling)' prints \(needed), but this is \(ClauseContext.article(value.type))",
          at: conversion.range))
      return nil
    }
    return .printf(parsed, values)
  }
}
