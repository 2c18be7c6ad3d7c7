/// Folds conditions whose outcome is known at compile time: comparisons of two constants,
/// and `&&`, `||`, `!` over constants. A clause whose filter folds to false loads a program
/// that only returns; a constant side of `&&` or `||` disappears.
enum ConstantFolding {
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
      guard let a = constant(lhs), let b = constant(rhs) else { return expression }
      let signed = isSigned(lhs.type) || isSigned(rhs.type)
      let (x, y) = (Int64(bitPattern: a), Int64(bitPattern: b))
      switch op {
      case .equal: return boolean(a == b)
      case .notEqual: return boolean(a != b)
      case .less: return boolean(signed ? x < y : a < b)
      case .lessEqual: return boolean(signed ? x <= y : a <= b)
      case .greater: return boolean(signed ? x > y : a > b)
      case .greaterEqual: return boolean(signed ? x >= y : a >= b)
      default: return expression
      }
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

  private static func isSigned(_ type: ValueType) -> Bool {
    if case .integer(_, let signed) = type { return signed }
    return false
  }
}
