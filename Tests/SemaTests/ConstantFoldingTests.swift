import BTF
import Sema
import SwtraceSyntax
import Testing
import TestSupport

/// Conditions known at compile time are decided by the checker, so code generation sees a
/// constant (and emits a program that only returns, or no test at all).
@Suite struct ConstantFoldingOfConditions {
  func filter(_ condition: String) throws -> TypedExpr? {
    let (spec, rendered) = try check("tracepoint:net:netif_receive_skb /\(condition)/ { print(len) }")
    let clause = try #require(spec?.clauses.first, "\(rendered)")
    return clause.filter
  }

  func isConstant(_ expression: TypedExpr?, _ value: UInt64) -> Bool {
    if case .integer(let folded)? = expression?.kind { return folded == value }
    return false
  }

  @Test(arguments: [
    ("1 > 2", UInt64(0)), ("2 >= 2", 1), ("-1 < 0", 1), ("0x10 == 16", 1), ("3 != 3", 0),
    ("!(1 == 1)", 0), ("0 && len > 1", 0), ("len > 1 && 0", 0), ("1 || len > 1", 1), ("len > 1 || 7", 1),
  ])
  func decidedConditions(condition: String, expected: UInt64) throws {
    #expect(isConstant(try filter(condition), expected), "\(condition)")
  }

  @Test func aConstantSideOfAndOrLeavesTheOtherSide() throws {
    for condition in ["1 && len > 100", "len > 100 && 1 == 1", "0 || len > 100", "len > 100 || 2 < 1"] {
      guard case .binary(.greater, let lhs, let rhs)? = try filter(condition)?.kind else {
        Issue.record("\(condition) should fold to 'len > 100'")
        continue
      }
      #expect(isConstant(rhs, 100), "\(condition)")
      if case .load = lhs.kind {} else { Issue.record("\(condition): left side should read len") }
    }
  }

  @Test func fieldComparisonsAreNotFolded() throws {
    guard case .binary(.equal, _, _)? = try filter("mark == 0xdead")?.kind else {
      Issue.record("mark == 0xdead must stay a comparison")
      return
    }
  }
}
