import SwtraceSyntax

/// Checks BEGIN, END and interval clauses: they run in swtrace, so only statements about
/// maps and the trace itself are allowed there.
struct UserClauseChecker {
  let source: SourceFile
  let maps: [MapDeclaration]
  var diagnostics: [Diagnostic] = []

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
    guard case .expression(let expression) = statement.kind, case .call(let name, let arguments) = expression.kind
    else {
      return unsupported(statement)
    }
    switch (name, arguments.first?.kind, arguments.count) {
    case ("print", .map(let access), 1):
      return mapIndex(access).map(UserClause.Step.printMap)
    case ("clear", .map(let access), 1):
      return mapIndex(access).map(UserClause.Step.clearMap)
    case ("print", .string(let text), 1):
      return .printText(text)
    case ("printf", _, _):
      return printfText(arguments, statement: statement)
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
        "BEGIN, END and interval: clauses can only print(@map), clear(@map), print(\"text\"), printf(\"text\") and exit()",
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
}
