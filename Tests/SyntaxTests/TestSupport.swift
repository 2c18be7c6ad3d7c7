import Foundation

@testable import SwtraceSyntax

/// Parses `text` as a spec named `<spec>`.
func parse(_ text: String) -> (ParseResult, SourceFile) {
  let file = SourceFile(name: "<spec>", text: text)
  return (Parser.parse(file), file)
}

/// Renders diagnostics the way the CLI does, without colour.
func render(_ result: ParseResult, _ file: SourceFile) -> String {
  DiagnosticRenderer(useColor: false).render(result.diagnostics, in: file)
}

/// A range-free S-expression of the tree, for comparing trees parsed from different text.
enum Dump {
  static func spec(_ spec: Spec) -> String { spec.clauses.map(clause).joined(separator: "\n") }

  static func clause(_ clause: Clause) -> String {
    let probes = clause.probes.map { "\($0.kind)" }.joined(separator: " ")
    let filter = clause.filter.map { " /\(expr($0))/" } ?? ""
    return "(clause [\(probes)]\(filter) \(block(clause.body)))"
  }

  static func block(_ block: Block) -> String {
    let open = block.style == .angle ? "<" : "{"
    let close = block.style == .angle ? ">" : "}"
    return open + block.statements.map(statement).joined(separator: " ") + close
  }

  static func statement(_ statement: Statement) -> String {
    switch statement.kind {
    case .expression(let e): return expr(e)
    case .assignVariable(let name, let value): return "(= $\(name) \(expr(value)))"
    case .assignMap(let access, let value): return "(= \(map(access)) \(expr(value)))"
    case .ifElse(let condition, let then, let elseBlock):
      return "(if \(expr(condition)) \(block(then))"
        + (elseBlock.map { " else " + block($0) } ?? "") + ")"
    case .compoundAssign(let target, let op, let value): return "(\(op.rawValue)= \(expr(target)) \(expr(value)))"
    case .increment(let target, let op, let prefix):
      return prefix ? "(\(op.rawValue)pre \(expr(target)))" : "(\(op.rawValue)post \(expr(target)))"
    case .whileLoop(let condition, let body): return "(while \(expr(condition)) \(block(body)))"
    case .forRange(let variable, let start, let end, let body):
      return "(for $\(variable) \(expr(start)) \(expr(end)) \(block(body)))"
    case .jump(let kind): return kind.rawValue
    }
  }

  static func map(_ access: MapAccess) -> String {
    "@\(access.name)"
      + (access.keys.isEmpty ? "" : "[" + access.keys.map(expr).joined(separator: " ") + "]")
  }

  static func expr(_ e: Expr) -> String {
    switch e.kind {
    case .integer(let v): return "\(v)"
    case .string(let s): return "\(s.debugDescription)"
    case .bool(let b): return "\(b)"
    case .ipv4(let v): return "ipv4(\(IPAddressText.formatIPv4(v)))"
    case .ipv6(let bytes): return "ipv6(\(IPAddressText.formatIPv6(bytes)))"
    case .cidr(let address, let length): return "cidr(\(expr(address))/\(length))"
    case .identifier(let name): return name
    case .variable(let name): return "$\(name)"
    case .map(let access): return map(access)
    case .member(let base, let name, let arrow):
      return "(\(arrow ? "->" : ".") \(expr(base)) \(name))"
    case .index(let base, let index): return "(index \(expr(base)) \(expr(index)))"
    case .call(let name, let args): return "(\(name)" + args.map { " " + expr($0) }.joined() + ")"
    case .unary(let op, let operand): return "(\(op.rawValue) \(expr(operand)))"
    case .binary(let op, let l, let r): return "(\(op.rawValue) \(expr(l)) \(expr(r)))"
    case .cast(let type, let operand): return "(cast \(type) \(expr(operand)))"
    case .conditional(let condition, let value, let otherwise):
      return "(? \(expr(condition)) \(expr(value)) \(expr(otherwise)))"
    case .positional(let number): return "$\(number)"
    case .positionalCount: return "$#"
    case .typeName(let type): return "(type \(type))"
    }
  }
}

/// The same tree with every range set to 0..<0, so trees parsed from different text compare equal.
enum StripRanges {
  static let zero = SourceRange(0, 0)

  static func spec(_ spec: Spec) -> Spec { Spec(clauses: spec.clauses.map(clause)) }

  static func clause(_ clause: Clause) -> Clause {
    Clause(
      probes: clause.probes.map { Probe(kind: $0.kind, range: zero) },
      filter: clause.filter.map(expr),
      body: block(clause.body), range: zero)
  }

  static func block(_ block: Block) -> Block {
    Block(statements: block.statements.map(statement), style: block.style, range: zero)
  }

  static func statement(_ statement: Statement) -> Statement {
    let kind: Statement.Kind =
      switch statement.kind {
      case .expression(let e): .expression(expr(e))
      case .assignVariable(let name, let value): .assignVariable(name: name, value: expr(value))
      case .assignMap(let access, let value): .assignMap(map(access), value: expr(value))
      case .ifElse(let condition, let then, let elseBlock):
        .ifElse(condition: expr(condition), then: block(then), else: elseBlock.map(block))
      case .compoundAssign(let target, let op, let value): .compoundAssign(target: expr(target), op, value: expr(value))
      case .increment(let target, let op, let prefix): .increment(target: expr(target), op, prefix: prefix)
      case .whileLoop(let condition, let body): .whileLoop(condition: expr(condition), body: block(body))
      case .forRange(let variable, let start, let end, let body):
        .forRange(variable: variable, start: expr(start), end: expr(end), body: block(body))
      case .jump: statement.kind
      }
    return Statement(kind: kind, range: zero)
  }

  static func map(_ access: MapAccess) -> MapAccess {
    MapAccess(name: access.name, keys: access.keys.map(expr), range: zero)
  }

  static func expr(_ e: Expr) -> Expr {
    let kind: Expr.Kind =
      switch e.kind {
      case .integer, .string, .bool, .ipv4, .ipv6, .identifier, .variable, .positional, .positionalCount: e.kind
      case .conditional(let condition, let value, let otherwise):
        .conditional(condition: expr(condition), value: expr(value), otherwise: expr(otherwise))
      case .typeName(let type): .typeName(TypeName(name: type.name, pointerDepth: type.pointerDepth, range: zero))
      case .cidr(let address, let length): .cidr(address: expr(address), prefixLength: length)
      case .map(let access): .map(map(access))
      case .member(let base, let name, let arrow):
        .member(base: expr(base), name: name, arrow: arrow)
      case .index(let base, let index): .index(base: expr(base), index: expr(index))
      case .call(let name, let arguments): .call(name: name, arguments: arguments.map(expr))
      case .unary(let op, let operand): .unary(op, expr(operand))
      case .binary(let op, let lhs, let rhs): .binary(op, expr(lhs), expr(rhs))
      case .cast(let type, let operand):
        .cast(
          TypeName(name: type.name, pointerDepth: type.pointerDepth, range: zero), expr(operand))
      }
    return Expr(kind, range: zero)
  }
}
