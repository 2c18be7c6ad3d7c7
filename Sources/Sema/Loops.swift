import SwtraceSyntax

/// Loops, compound assignments and increments.
///
/// Loops are unrolled: eBPF programs must end, and swtrace's own pre-check (like the kernel's
/// verifier of old) follows a program along every path, so each iteration is code of its own.
/// `for ($i : A..B)` needs constant bounds; `while (cond)` needs a bound the checker proves
/// from the loop's shape: a condition comparing a variable with a constant, the variable set
/// to a constant just before the loop and moved by a constant step exactly once per iteration.
/// At most `Loop.maximumIterations` iterations are unrolled; anything else is refused with a
/// diagnostic that says why no bound could be proven.
extension Loop {
  public static let maximumIterations = 1024
}

extension ClauseContext {
  /// `target op= value`, `target++`: a variable is assigned `target op value`; a map entry is
  /// read, combined and stored back (a new map holds 64-bit signed values, as in bpftrace).
  mutating func compoundAssignment(_ target: Expr, _ op: BinaryOperator, _ valueExpression: Expr, range: SourceRange)
    -> [Action]
  {
    let combined = Expr(.binary(op, target, valueExpression), range: range)
    switch target.kind {
    case .variable(let name):
      return assignVariable(name, combined, range: range)
    case .map(let access):
      if !maps.contains(where: { $0.name == access.name }) {
        var keys: [TypedExpr] = []
        for keyExpression in access.keys {
          guard let key = value(keyExpression) else { return [] }
          keys.append(key)
        }
        let declaration = MapDeclaration(
          name: access.name,
          keys: zip(access.keys, keys).map {
            MapKey(label: sourceText($0.0.range), type: Self.keyType($0.1.type), optional: $0.1.presence != nil)
          },
          aggregation: .value, valueType: .s64, range: access.range)
        guard declare(declaration, at: access.range) != nil else { return [] }
      }
      return mapAssignment(access, combined, range: range).map { [$0] } ?? []
    default:
      return []
    }
  }

  /// `for ($i : start..end) { ... }`: `end - start` iterations, `$i` a 64-bit signed integer.
  mutating func forRange(_ name: String, _ startExpression: Expr, _ endExpression: Expr, _ body: Block, range: SourceRange)
    -> [Action]
  {
    guard let start = value(startExpression), let end = value(endExpression) else { return [] }
    guard case .integer(let low) = start.kind, case .integer(let high) = end.kind else {
      let culprit = if case .integer = start.kind { end } else { start }
      diagnostics.append(
        Diagnostic(
          "for-range-not-constant", "the range of a for loop must be constants: '\(sourceText(culprit.range))' is not",
          at: culprit.range,
          notes: [.init(.help, "loops are unrolled when the spec is compiled, so their bounds must be known then; a while loop whose variable counts up to a constant works too")]))
      return []
    }
    let (first, last) = (Int64(bitPattern: low), Int64(bitPattern: high))
    let count: (partialValue: Int64, overflow: Bool) = last > first ? last.subtractingReportingOverflow(first) : (0, false)
    guard !count.overflow, count.partialValue <= Int64(Loop.maximumIterations) else {
      diagnostics.append(
        Diagnostic(
          "loop-too-long", "this loop runs \(count.overflow ? "more than 2^63" : String(count.partialValue)) times; loops are unrolled, at most \(Loop.maximumIterations) times",
          at: range))
      return []
    }
    let slot: Int
    if let existing = variables.firstIndex(where: { $0.name == name }) {
      guard case .integer = variables[existing].type else {
        diagnostics.append(
          Diagnostic(
            "variable-type-mismatch", "$\(name) holds \(Self.article(variables[existing].type)); a for loop's variable counts in integers",
            at: range, notes: [.init(.note, "$\(name) was first assigned here", at: variables[existing].range)]))
        return []
      }
      slot = existing
    } else {
      slot = variables.count
      variables.append(VariableDeclaration(name: name, type: .s64, range: range))
    }
    let before = assigned
    assigned.insert(slot)
    loopDepth += 1
    let actions = statements(body.statements)
    loopDepth -= 1
    // The body may not run (or stop early): what it assigns is not assigned after it.
    assigned = before
    guard count.partialValue > 0 else { return [] }
    return [
      .loop(
        Loop(condition: nil, body: actions, iterations: Int(count.partialValue), counter: (slot, low), range: range))
    ]
  }

  /// `while (condition) { ... }`, unrolled as often as the checker proves it can run.
  mutating func whileLoop(_ conditionExpression: Expr, _ body: Block, before: ArraySlice<Statement>, range: SourceRange)
    -> [Action]
  {
    guard let typed = value(conditionExpression) else { return [] }
    let test = condition(typed)
    let bound = provenIterations(conditionExpression, body, before: before)
    let saved = assigned
    loopDepth += 1
    let actions = statements(body.statements)
    loopDepth -= 1
    assigned = saved
    if case .integer(0) = test.kind { return [] }
    switch bound {
    case .success(let iterations):
      guard iterations > 0 else { return [] }
      return [.loop(Loop(condition: test, body: actions, iterations: iterations, counter: nil, range: range))]
    case .failure(let reason):
      diagnostics.append(
        Diagnostic(
          "loop-unbounded", "swtrace cannot prove that this loop ends: \(reason.message)", at: reason.range ?? conditionExpression.range,
          notes: [
            .init(
              .help,
              "loops are unrolled when the spec is compiled: write for ($i : 0..N), or a while loop over a variable set to a constant before it, compared with a constant and moved by a constant once per iteration (at most \(Loop.maximumIterations) iterations)")
          ]))
      return []
    }
  }

  struct UnprovenBound: Error {
    var message: String
    var range: SourceRange?
  }

  /// How many times the loop can run at most, from its shape (see the type's comment).
  func provenIterations(_ conditionExpression: Expr, _ body: Block, before: ArraySlice<Statement>) -> Result<Int, UnprovenBound> {
    // The condition: $v OP constant, or constant OP $v.
    guard case .binary(var op, let lhs, let rhs) = conditionExpression.kind,
      [.less, .lessEqual, .greater, .greaterEqual, .notEqual].contains(op)
    else {
      return .failure(UnprovenBound(message: "its condition does not compare a variable with a constant (<, <=, >, >= or !=)"))
    }
    var name: String
    var limitExpression: Expr
    if case .variable(let left) = lhs.kind {
      (name, limitExpression) = (left, rhs)
    } else if case .variable(let right) = rhs.kind {
      (name, limitExpression) = (right, lhs)
      op = Self.mirrored(op)
    } else {
      return .failure(UnprovenBound(message: "its condition does not compare a variable with a constant"))
    }
    guard let limit = constantValue(limitExpression) else {
      return .failure(UnprovenBound(message: "'\(sourceText(limitExpression.range))' is not a constant", range: limitExpression.range))
    }
    guard let declaration = variables.first(where: { $0.name == name }), case .integer(let bytes, let signed) = declaration.type
    else {
      return .failure(UnprovenBound(message: "$\(name) is not an integer variable assigned before the loop"))
    }
    // Its value before the loop: the last assignment in the statements before it.
    var start: UInt64?
    for statement in before.reversed() {
      if case .assignVariable(name, let value) = statement.kind {
        guard let constant = constantValue(value) else {
          return .failure(UnprovenBound(message: "$\(name) is not set to a constant before the loop", range: statement.range))
        }
        start = constant
        break
      }
      if Self.assigns(statement, name) {
        return .failure(UnprovenBound(message: "$\(name) is changed between its last constant value and the loop", range: statement.range))
      }
    }
    guard var current = start else {
      return .failure(UnprovenBound(message: "$\(name) is not set to a constant before the loop, in the same block"))
    }
    // The step: exactly one update at the top of the body, nothing else assigning it, and no
    // `continue` that could skip it.
    var step: Int64?
    for (index, statement) in body.statements.enumerated() {
      if let delta = stepOf(statement, name) {
        guard step == nil else {
          return .failure(UnprovenBound(message: "$\(name) is moved more than once per iteration", range: statement.range))
        }
        if body.statements[..<index].contains(where: Self.continuesLoop) {
          return .failure(UnprovenBound(message: "a 'continue' before '\(sourceText(statement.range))' would skip it", range: statement.range))
        }
        step = delta
      } else if Self.assigns(statement, name) {
        return .failure(UnprovenBound(message: "$\(name) is assigned inside the loop other than by one constant step", range: statement.range))
      }
    }
    guard let step, step != 0 else {
      return .failure(UnprovenBound(message: "$\(name) is not moved by a constant step in the loop's body (such as $\(name)++ or $\(name) += 2)"))
    }
    // Run the loop on the constants, with the variable's width and the comparison's signedness.
    let representation = IntegerRepresentation(bytes: bytes, isSigned: signed)
    current = ConstantFolding.converted(current, to: representation)
    var count = 0
    while ConstantFolding.compare(op, current, limit, signed: signed) == true {
      count += 1
      if count > Loop.maximumIterations {
        return .failure(
          UnprovenBound(message: "it runs more than \(Loop.maximumIterations) times (loops are unrolled, at most \(Loop.maximumIterations) times)"))
      }
      current = ConstantFolding.converted(current &+ UInt64(bitPattern: step), to: representation)
    }
    return .success(count)
  }

  /// The value of a constant expression, or nil; checking it leaves no diagnostics behind.
  func constantValue(_ expression: Expr) -> UInt64? {
    var scratch = self
    guard let typed = scratch.value(expression), case .integer(let value) = typed.kind else { return nil }
    return value
  }

  /// `$name++`, `$name--`, `$name += c`, `$name -= c`, `$name = $name + c`: the constant step.
  func stepOf(_ statement: Statement, _ name: String) -> Int64? {
    switch statement.kind {
    case .increment(let target, let op, _):
      guard case .variable(name) = target.kind else { return nil }
      return op == .increment ? 1 : -1
    case .compoundAssign(let target, let op, let value):
      guard case .variable(name) = target.kind, op == .add || op == .subtract, let constant = constantValue(value) else { return nil }
      let delta = Int64(bitPattern: constant)
      return op == .add ? delta : 0 &- delta
    case .assignVariable(name, let value):
      guard case .binary(let op, let lhs, let rhs) = value.kind, op == .add || op == .subtract,
        case .variable(name) = lhs.kind, let constant = constantValue(rhs)
      else { return nil }
      let delta = Int64(bitPattern: constant)
      return op == .add ? delta : 0 &- delta
    default:
      return nil
    }
  }

  /// Whether a statement (or one nested in it) assigns `$name`.
  static func assigns(_ statement: Statement, _ name: String) -> Bool {
    switch statement.kind {
    case .assignVariable(let target, _): return target == name
    case .compoundAssign(let target, _, _), .increment(let target, _, _):
      if case .variable(name) = target.kind { return true }
      return false
    case .ifElse(_, let then, let otherwise):
      return then.statements.contains { assigns($0, name) } || (otherwise?.statements.contains { assigns($0, name) } ?? false)
    case .whileLoop(_, let body): return body.statements.contains { assigns($0, name) }
    case .forRange(let variable, _, _, let body): return variable == name || body.statements.contains { assigns($0, name) }
    case .expression, .assignMap, .jump: return false
    }
  }

  /// Whether a statement may `continue` the loop it is in (not a loop nested in it).
  static func continuesLoop(_ statement: Statement) -> Bool {
    switch statement.kind {
    case .jump(.continueLoop): return true
    case .ifElse(_, let then, let otherwise):
      return then.statements.contains(where: continuesLoop) || (otherwise?.statements.contains(where: continuesLoop) ?? false)
    default: return false
    }
  }

  /// `c < $v` is `$v > c`.
  static func mirrored(_ op: BinaryOperator) -> BinaryOperator {
    switch op {
    case .less: .greater
    case .lessEqual: .greaterEqual
    case .greater: .less
    case .greaterEqual: .lessEqual
    default: op
    }
  }
}
