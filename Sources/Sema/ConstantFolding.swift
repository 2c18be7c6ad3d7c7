public import SwtraceSyntax

/// The one place that computes with constants at compile time, with the generated code's
/// semantics (64-bit registers that wrap; `/` and `%` as C computes them, signed when an
/// operand's type is signed) and the signedness the operands' types carry. The checker folds arithmetic, casts and conditions with it; the code
/// generator asks it to decide comparisons whose outcome it knows.
///
/// Conditions known at compile time are decided here: a clause whose filter folds to false
/// loads a program that only returns; a constant side of `&&` or `||` disappears.
public enum ConstantFolding {
  /// `a op b` for the arithmetic operators, or nil for a division by zero (which the checker
  /// reports) and for operators that are not arithmetic.
  public static func arithmetic(_ op: BinaryOperator, _ a: UInt64, _ b: UInt64, signed: Bool) -> UInt64? {
    switch op {
    case .add: a &+ b
    case .subtract: a &- b
    case .multiply: a &* b
    // Signed division rounds toward zero and the remainder takes the dividend's sign, as in
    // C and as the generated code computes them (`ProgramBuilder.signedDivision`); the
    // smallest s64 divided by -1 wraps to itself, with remainder 0.
    case .divide where signed:
      b == 0 ? nil : UInt64(bitPattern: Int64(bitPattern: a).dividedReportingOverflow(by: Int64(bitPattern: b)).partialValue)
    case .modulo where signed:
      b == 0
        ? nil : UInt64(bitPattern: Int64(bitPattern: a).remainderReportingOverflow(dividingBy: Int64(bitPattern: b)).partialValue)
    case .divide: b == 0 ? nil : a / b
    case .modulo: b == 0 ? nil : a % b
    case .bitAnd: a & b
    case .bitOr: a | b
    case .bitXor: a ^ b
    case .shiftLeft: b >= 64 ? 0 : a << b
    case .shiftRight: b >= 64 ? 0 : (signed ? UInt64(bitPattern: Int64(bitPattern: a) >> b) : a >> b)
    default: nil
    }
  }

  /// `a op b` for the comparison operators, or nil for other operators.
  public static func compare(_ op: BinaryOperator, _ a: UInt64, _ b: UInt64, signed: Bool) -> Bool? {
    let (x, y) = (Int64(bitPattern: a), Int64(bitPattern: b))
    switch op {
    case .equal: return a == b
    case .notEqual: return a != b
    case .less: return signed ? x < y : a < b
    case .lessEqual: return signed ? x <= y : a <= b
    case .greater: return signed ? x > y : a > b
    case .greaterEqual: return signed ? x >= y : a >= b
    default: return nil
    }
  }

  /// `-a` and `~a` on a 64-bit register.
  static func unary(_ op: UnaryOperator, _ a: UInt64) -> UInt64 {
    switch op {
    case .negate: 0 &- a
    case .complement: ~a
    case .not: a == 0 ? 1 : 0
    }
  }

  /// `value` converted to `representation` as C converts: truncated to its width, then zero-
  /// or sign-extended back to 64 bits.
  static func converted(_ value: UInt64, to representation: IntegerRepresentation) -> UInt64 {
    guard representation.bytes < 8 else { return value }
    let shift = UInt64(64 - 8 * representation.bytes)
    return representation.isSigned
      ? UInt64(bitPattern: Int64(bitPattern: value << shift) >> Int64(shift)) : (value << shift) >> shift
  }

  /// A condition with the parts known at compile time decided.
  static func folded(_ expression: TypedExpr) -> TypedExpr {
    func boolean(_ value: Bool) -> TypedExpr {
      TypedExpr(.integer(value ? 1 : 0), type: .bool, range: expression.range)
    }
    func constant(_ expression: TypedExpr) -> UInt64? {
      if case .integer(let value) = expression.kind { return value }
      return nil
    }
    switch expression.kind {
    case .unary(.not, let operand):
      let inner = folded(operand)
      if let value = constant(inner) { return boolean(value == 0) }
      return TypedExpr(.unary(.not, inner), type: expression.type, range: expression.range)
    case .binary(let op, let lhs, let rhs) where op == .and || op == .or:
      let left = folded(lhs)
      let right = folded(rhs)
      // `false && x` and `true || x` decide without x: x has no side effects to keep.
      switch (op, constant(left), constant(right)) {
      case (.and, 0?, _), (.and, _, 0?): return boolean(false)
      case (.or, let value?, _) where value != 0: return boolean(true)
      case (.or, _, let value?) where value != 0: return boolean(true)
      case (.and, _?, _), (.or, 0?, _): return asCondition(right)
      case (.and, _, _?), (.or, _, 0?): return asCondition(left)
      default: return TypedExpr(.binary(op, left, right), type: expression.type, range: expression.range)
      }
    case .binary(let op, let lhs, let rhs):
      guard let a = constant(lhs), let b = constant(rhs),
        let outcome = compare(op, a, b, signed: lhs.type.isSigned || rhs.type.isSigned)
      else { return expression }
      return boolean(outcome)
    default:
      return expression
    }
  }

  /// A kept operand of `&&`/`||` is a condition already unless it is a bare number.
  private static func asCondition(_ expression: TypedExpr) -> TypedExpr {
    if case .integer(let value) = expression.kind {
      return TypedExpr(.integer(value != 0 ? 1 : 0), type: .bool, range: expression.range)
    }
    return expression
  }
}
