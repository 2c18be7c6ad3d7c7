/// Prints a spec in the canonical layout.
///
/// - one clause per paragraph: `probes /filter/ block`, clauses separated by a blank line;
/// - each block keeps the style it was written in; a `< >` block with one simple statement stays
///   on one line (`skb:* < print(len) >`), every other block has one statement per line,
///   indented by two spaces;
/// - expressions get single spaces around binary operators and only the parentheses they need,
///   plus the ones the grammar demands: `>`, `>=` and `>>` directly inside `< >`, and `/`
///   directly inside a filter;
/// - comments are dropped, except the file's leading comment block (and `#!` line), which is
///   kept verbatim when `source` is given.
///
/// With `source` (the file `spec` was parsed from), integer literals keep their spelling
/// (`0xdead` stays hex); without it they are printed in decimal. The output parses back to
/// the same spec, and formatting it again changes nothing.
public enum SpecFormatter {
  public static func format(_ spec: Spec, source: SourceFile? = nil) -> String {
    FormatPrinter(source: source).format(spec)
  }

  /// The leading comment block of `file` (comments and a `#!` line before the first clause),
  /// without trailing whitespace; empty when there is none.
  public static func header(of file: SourceFile) -> String {
    let end = Lexer(bytes: file.bytes).leadingTriviaEnd()
    var text = file.text(of: SourceRange(0, end))[...]
    if text.first == "\u{FEFF}" { text = text.dropFirst() }
    while let last = text.last, last.isWhitespace { text = text.dropLast() }
    return String(text)
  }
}

private struct FormatPrinter {
  let source: SourceFile?

  struct Context {
    var angleTop = false
    var filterTop = false
  }

  func format(_ spec: Spec) -> String {
    var paragraphs: [String] = []
    if let source {
      let header = SpecFormatter.header(of: source)
      if !header.isEmpty { paragraphs.append(header) }
    }
    paragraphs += spec.clauses.map(clause)
    return paragraphs.isEmpty ? "" : paragraphs.joined(separator: "\n\n") + "\n"
  }

  func clause(_ clause: Clause) -> String {
    var out = clause.probes.map(probe).joined(separator: ", ")
    if let filter = clause.filter {
      out += " /" + expression(filter, Context(filterTop: true)) + "/"
    }
    return out + " " + block(clause.body, indent: 0)
  }

  func probe(_ probe: Probe) -> String {
    switch probe.kind {
    case .skb(let glob): "skb:\(glob)"
    case .tracepoint(let category, let name): "tracepoint:\(category):\(name)"
    case .kprobe(let function): "kprobe:\(function)"
    case .kretprobe(let function): "kretprobe:\(function)"
    case .fentry(let function): "fentry:\(function)"
    case .fexit(let function): "fexit:\(function)"
    case .begin: "BEGIN"
    case .end: "END"
    case .interval(let nanoseconds): "interval:" + Self.duration(nanoseconds)
    }
  }

  /// The largest unit that divides the period exactly.
  static func duration(_ nanoseconds: UInt64) -> String {
    let units: [(String, UInt64)] = [
      ("m", 60_000_000_000), ("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000),
    ]
    for (unit, size) in units where nanoseconds % size == 0 {
      return "\(nanoseconds / size)\(unit)"
    }
    return "\(nanoseconds)ns"
  }

  func block(_ block: Block, indent: Int) -> String {
    let (open, close) = block.style == .angle ? ("<", ">") : ("{", "}")
    if block.statements.isEmpty { return block.style == .angle ? "< >" : "{}" }
    if block.style == .angle, block.statements.count == 1, !Self.isIf(block.statements[0]) {
      return
        "\(open) \(statement(block.statements[0], style: block.style, indent: indent)) \(close)"
    }
    let pad = String(repeating: "  ", count: indent + 1)
    let body = block.statements.map { pad + statement($0, style: block.style, indent: indent + 1) }
    return open + "\n" + body.joined(separator: "\n") + "\n"
      + String(repeating: "  ", count: indent) + close
  }

  static func isIf(_ statement: Statement) -> Bool { statement.kind.endsWithBlock }

  func statement(_ statement: Statement, style: Block.Style, indent: Int) -> String {
    let context = Context(angleTop: style == .angle)
    switch statement.kind {
    case .expression(let value):
      return expression(value, context)
    case .assignVariable(let name, let value):
      return "$\(name) = " + expression(value, context)
    case .assignMap(let access, let value):
      return map(access) + " = " + expression(value, context)
    case .compoundAssign(let target, let op, let value):
      return expression(target, context) + " \(op.rawValue)= " + expression(value, context)
    case .increment(let target, let op, let prefix):
      return prefix ? op.rawValue + expression(target, context) : expression(target, context) + op.rawValue
    case .whileLoop(let condition, let body):
      return "while (" + expression(condition, Context()) + ") " + block(body, indent: indent)
    case .forRange(let variable, let start, let end, let body):
      return "for ($\(variable) : " + binaryOperand(start, minimum: 11, Context()) + ".."
        + binaryOperand(end, minimum: 11, Context()) + ") " + block(body, indent: indent)
    case .jump(let kind):
      return kind.rawValue
    case .ifElse(let condition, let then, let elseBlock):
      var out = "if (" + expression(condition, Context()) + ") " + block(then, indent: indent)
      guard let elseBlock else { return out }
      // Written back as `else if` only when the parser would rebuild the same else block.
      if elseBlock.statements.count == 1,
        case .ifElse(_, let nestedThen, _) = elseBlock.statements[0].kind,
        nestedThen.style == elseBlock.style
      {
        out += " else " + self.statement(elseBlock.statements[0], style: style, indent: indent)
      } else {
        out += " else " + block(elseBlock, indent: indent)
      }
      return out
    }
  }

  func map(_ access: MapAccess) -> String {
    let keys =
      access.keys.isEmpty
      ? "" : "[" + access.keys.map { expression($0, Context()) }.joined(separator: ", ") + "]"
    return "@" + access.name + keys
  }

  func expression(_ expr: Expr, _ context: Context) -> String {
    switch expr.kind {
    case .integer(let value):
      return integerSpelling(expr) ?? String(value)
    case .string(let value):
      return Self.quote(value)
    case .bool(let value):
      return value ? "true" : "false"
    case .ipv4(let value):
      return IPAddressText.formatIPv4(value)
    case .ipv6(let bytes):
      return IPAddressText.formatIPv6(bytes)
    case .cidr(let address, let prefixLength):
      return expression(address, Context()) + "/\(prefixLength)"
    case .identifier(let name):
      return name
    case .variable(let name):
      return "$" + name
    case .map(let access):
      return map(access)
    case .member(let base, let name, let arrow):
      return postfixBase(base, context) + (arrow ? "->" : ".") + name
    case .index(let base, let index):
      // `@m[k]` would read back as a map key, not as indexing the value of `@m`.
      if case .map(let access) = base.kind, access.keys.isEmpty {
        return "(" + map(access) + ")[" + expression(index, Context()) + "]"
      }
      return postfixBase(base, context) + "[" + expression(index, Context()) + "]"
    case .call(let name, let arguments):
      return name + "(" + arguments.map { expression($0, Context()) }.joined(separator: ", ") + ")"
    case .unary(let op, let operand):
      return op.rawValue + prefixOperand(operand, context)
    case .cast(let type, let operand):
      return "(\(type))" + prefixOperand(operand, context)
    case .positional(let number):
      return "$\(number)"
    case .positionalCount:
      return "$#"
    case .typeName(let type):
      return type.description
    case .conditional(let condition, let value, let otherwise):
      // The condition is an operand of `?`, tighter than `?:` itself; the rest groups to the right.
      let test =
        if case .conditional = condition.kind { "(" + expression(condition, Context()) + ")" } else {
          expression(condition, context)
        }
      return test + " ? " + expression(value, Context()) + " : " + expression(otherwise, context)
    case .binary(let op, let lhs, let rhs):
      let ambiguous =
        (context.angleTop && [.greater, .greaterEqual, .shiftRight].contains(op))
        || (context.filterTop && op == .divide)
      if ambiguous { return "(" + expression(expr, Context()) + ")" }
      return binaryOperand(lhs, minimum: op.precedence, context) + " \(op.rawValue) "
        + binaryOperand(rhs, minimum: op.precedence + 1, context)
    }
  }

  /// Binary operators are left-associative, so the right operand needs parentheses at equal
  /// precedence and the left one does not.
  func binaryOperand(_ expr: Expr, minimum: Int, _ context: Context) -> String {
    if case .binary(let op, _, _) = expr.kind, op.precedence < minimum {
      return "(" + expression(expr, Context()) + ")"
    }
    if case .conditional = expr.kind { return "(" + expression(expr, Context()) + ")" }
    return expression(expr, context)
  }

  func prefixOperand(_ expr: Expr, _ context: Context) -> String {
    switch expr.kind {
    case .binary, .conditional: return "(" + expression(expr, Context()) + ")"
    default: return expression(expr, context)
    }
  }

  func postfixBase(_ expr: Expr, _ context: Context) -> String {
    switch expr.kind {
    case .binary, .unary, .cast, .integer, .ipv4, .ipv6, .cidr, .conditional:
      return "(" + expression(expr, Context()) + ")"
    default:
      return expression(expr, context)
    }
  }

  /// The literal as written in `source` (`0xdead`, `1_000`), if the range still points at it.
  func integerSpelling(_ expr: Expr) -> String? {
    guard let source, case .integer(let value) = expr.kind, expr.range.end <= source.bytes.count
    else {
      return nil
    }
    let lexer = Lexer(bytes: source.bytes)
    var offset = expr.range.start
    // A parenthesized literal's range includes its parentheses.
    while true {
      let token = lexer.token(at: offset)
      guard token.range.end <= expr.range.end else { return nil }
      if token.is(.lParen) {
        offset = token.range.end
        continue
      }
      guard token.kind == .literal(.integer(value)), token.diagnostics.isEmpty else { return nil }
      return source.text(of: token.range)
    }
  }

  static func quote(_ value: String) -> String {
    var out: [UInt8] = [UInt8(ascii: "\"")]
    for byte in value.utf8 {
      switch byte {
      case UInt8(ascii: "\""), UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), byte]
      case 0x0A: out += Array("\\n".utf8)
      case 0x09: out += Array("\\t".utf8)
      case 0x0D: out += Array("\\r".utf8)
      case 0..<0x20, 0x7F:
        let hex = String(byte, radix: 16)
        out += Array(("\\x" + (byte < 0x10 ? "0" : "") + hex).utf8)
      default: out.append(byte)
      }
    }
    out.append(UInt8(ascii: "\""))
    return String(decoding: out, as: UTF8.self)
  }
}
