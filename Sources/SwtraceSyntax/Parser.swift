/// The outcome of parsing one spec: the clauses that parsed, and every problem found.
///
/// Parsing never fails as a whole; a clause with errors is left out of `spec` (or kept without
/// its broken statements) and the errors are in `diagnostics`.
public struct ParseResult: Sendable {
  public var spec: Spec
  public var diagnostics: [Diagnostic]
  public init(spec: Spec, diagnostics: [Diagnostic]) {
    self.spec = spec
    self.diagnostics = diagnostics
  }
  public var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }
}

public enum Parser {
  /// Parses a whole spec, recovering after each error so one run reports as many as possible.
  public static func parse(_ file: SourceFile) -> ParseResult {
    var parser = SpecParser(file: file)
    let spec = parser.parseSpec()
    return ParseResult(spec: spec, diagnostics: parser.diagnostics)
  }
}

/// Where an expression sits, which decides what ends it.
struct ExpressionContext {
  /// Directly inside a `< ... >` block (not within parentheses or brackets): `>` ends the block.
  var angleTop = false
  /// Directly inside a `/ ... /` filter: `/` ends the filter.
  var filterTop = false
  /// Inside a block outside any brackets: a newline ends the statement.
  var newlineSensitive = false

  static let nested = ExpressionContext()
}

/// A recursive-descent parser for clauses and statements with precedence climbing for
/// binary expressions.
struct SpecParser {
  static let maxNesting = 100
  static let maxChain = 1000
  static let probeTypes = ProbeType.allCases.map(\.rawValue)
  /// Short spellings people bring from other tracers; suggested, not accepted.
  static let probeAliases = [
    "t": "tracepoint", "tp": "tracepoint", "k": "kprobe", "kr": "kretprobe", "f": "fentry",
    "fr": "fexit", "i": "interval", "begin": "BEGIN", "end": "END",
  ]
  static let castTypes: Set<String> = Set([
    "u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64", "bool",
  ]).union(castTypeAliases.keys)
  /// bpftrace's other spellings of the integer types, read as swtrace's own.
  static let castTypeAliases: [String: String] = [
    "uint8": "u8", "uint16": "u16", "uint32": "u32", "uint64": "u64",
    "int8": "s8", "int16": "s16", "int32": "s32", "int64": "s64",
  ]
  /// Words that start or end statements: never names in expressions.
  static let keywords: Set<String> = ["if", "else", "in", "while", "for", "break", "continue", "return"]

  let file: SourceFile
  let lexer: Lexer
  private(set) var diagnostics: [Diagnostic] = []
  /// Byte offset just past the last consumed token.
  private var position = 0
  /// Tokens already lexed from `position`.
  private var lookahead: [Token] = []
  /// Counts consumed tokens, so loops can check that they made progress.
  private var consumed = 0
  private var nesting = 0
  /// Set when nesting got too deep: everything after is skipped.
  private var abandoned = false
  /// Enclosing `{ }` blocks; a stray `}` inside `< >` is left to them.
  private var braceDepth = 0
  /// Where the last parser diagnostic points; recovery skips that token even at a line start.
  private var lastErrorStart = -1

  init(file: SourceFile) {
    self.file = file
    self.lexer = Lexer(bytes: file.bytes)
  }

  // MARK: - Tokens

  private mutating func peek(_ offset: Int = 0) -> Token {
    if abandoned { return Token(kind: .eof, range: .at(file.bytes.count), newlineBefore: true) }
    while lookahead.count <= offset {
      let start = lookahead.last?.range.end ?? position
      lookahead.append(lexer.token(at: start))
    }
    return lookahead[offset]
  }

  @discardableResult
  private mutating func advance() -> Token {
    let token = peek()
    guard token.kind != .eof else {
      diagnostics += token.diagnostics
      if !lookahead.isEmpty { lookahead[0].diagnostics = [] }
      return token
    }
    lookahead.removeFirst()
    position = token.range.end
    consumed += 1
    diagnostics += token.diagnostics
    return token
  }

  private mutating func at(_ punct: Punct, _ offset: Int = 0) -> Bool { peek(offset).is(punct) }

  private mutating func atIdentifier(_ name: String, _ offset: Int = 0) -> Bool {
    peek(offset).isIdentifier(name)
  }

  private mutating func report(_ diagnostic: Diagnostic) {
    if !abandoned { diagnostics.append(diagnostic) }
    lastErrorStart = diagnostic.range.start
  }

  /// Tracks recursion so deeply nested input ends in a diagnostic instead of a stack overflow.
  private mutating func enter() -> Bool {
    guard !abandoned else { return false }
    nesting += 1
    if nesting > Self.maxNesting {
      report(
        Diagnostic(
          .nestingTooDeep, "the spec is nested too deeply (more than \(Self.maxNesting) levels)",
          at: here(peek())))
      abandoned = true
      lookahead = []
      position = file.bytes.count
      return false
    }
    return true
  }

  private mutating func leave() { nesting -= 1 }

  /// Where to point for a diagnostic about `token`: at the end of the spec's last token
  /// rather than after trailing blank lines.
  private func here(_ token: Token) -> SourceRange {
    token.kind == .eof ? .at(position) : token.range
  }

  private func describe(_ token: Token) -> String {
    switch token.kind {
    case .eof: "the end of the spec"
    case .identifier(let name): "'\(name)'"
    case .punct(let punct): "'\(punct.rawValue)'"
    default: "'\(file.text(of: token.range))'"
    }
  }

  // MARK: - Spec and clauses

  mutating func parseSpec() -> Spec {
    var clauses: [Clause] = []
    if peek().kind == .eof {
      let token = advance()  // reports an unterminated comment
      report(
        Diagnostic(
          .emptySpec, "the spec has no clauses; write at least one, such as skb:* < print(len) >",
          at: here(token)))
      return Spec(clauses: [])
    }
    while true {
      let token = peek()
      if token.kind == .eof {
        advance()  // reports an unterminated trailing comment
        break
      }
      let before = consumed
      if token.identifierName != nil {
        if let clause = parseClause() { clauses.append(clause) }
      } else {
        // An invalid character already has its own diagnostic.
        if token.kind != .invalid { report(expectedProbe(at: token)) }
        skipToNextClause()
      }
      if consumed == before { advance() }
    }
    return Spec(clauses: clauses)
  }

  private func expectedProbe(at token: Token) -> Diagnostic {
    Diagnostic(
      .expectedProbe,
      "expected a probe, such as 'skb:*' or 'kprobe:tcp_sendmsg', found \(describe(token))",
      at: here(token))
  }

  /// A probe can start here: `type:` (no space) or `BEGIN`/`END`.
  private mutating func isProbeStart(_ offset: Int) -> Bool {
    let token = peek(offset)
    guard let name = token.identifierName else { return false }
    if name == "BEGIN" || name == "END" { return true }
    let next = peek(offset + 1)
    return next.is(.colon) && next.range.start == token.range.end
  }

  /// Recovery at clause level: skip to a line that starts like a probe.
  private mutating func skipToNextClause() {
    repeat {
      advance()
    } while peek().kind != .eof && !(peek().newlineBefore && isProbeStart(0))
  }

  private mutating func parseClause() -> Clause? {
    var probes: [Probe] = []
    let start = peek().range.start
    var probesValid = true
    while true {
      if peek().identifierName != nil {
        if let probe = parseProbe() { probes.append(probe) } else { probesValid = false }
      } else {
        report(expectedProbe(at: peek()))
        probesValid = false
      }
      guard at(.comma) else { break }
      advance()
    }
    var filter: Expr?
    var filterValid = true
    if at(.slash) {
      filter = parseFilter()
      filterValid = filter != nil
    }
    guard at(.lBrace) || at(.less) else {
      let token = peek()
      if probesValid && filterValid {
        report(
          Diagnostic(
            .expectedBlock,
            "expected '{' or '<' to start the body of the clause, found \(describe(token))",
            at: here(token)))
      }
      if token.kind != .eof { skipToNextClause() }
      return nil
    }
    guard let body = parseBlock(), probesValid, filterValid, !probes.isEmpty else { return nil }
    return Clause(
      probes: probes, filter: filter, body: body, range: SourceRange(start, body.range.end))
  }

  /// Probe words are not tokens: globs such as `net_dev_*` and `[a-c]` are read raw.
  private mutating func scanProbeWord() -> (String, SourceRange) {
    lookahead = []
    let (start, _) = lexer.skipTrivia(from: position, diagnostics: &diagnostics)
    var end = start
    let bytes = file.bytes
    while end < bytes.count, Self.isProbeByte(bytes[end]) { end += 1 }
    position = end
    consumed += 1
    let range = SourceRange(start, end)
    return (file.text(of: range), range)
  }

  private static func isProbeByte(_ byte: UInt8) -> Bool {
    ASCII.isIdentifierContinue(byte) || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "*")
      || byte == UInt8(ascii: "?") || byte == UInt8(ascii: "[") || byte == UInt8(ascii: "]")
      || byte == UInt8(ascii: ".")
  }

  private mutating func parseProbe() -> Probe? {
    let (word, range) = scanProbeWord()
    let parts = word.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
    let type = parts[0]

    func malformed(_ message: String) -> Probe? {
      report(Diagnostic(.malformedProbe, message, at: range))
      return nil
    }
    func glob(_ text: String) -> Bool {
      if let problem = Self.globProblem(text) {
        report(Diagnostic(.invalidGlob, "invalid glob '\(text)': \(problem)", at: range))
        return false
      }
      return true
    }

    switch type {
    case "BEGIN", "END":
      guard parts.count == 1 else {
        return malformed("'\(type)' takes no argument: write just \(type)")
      }
      return Probe(kind: type == "BEGIN" ? .begin : .end, range: range)
    case "skb":
      guard parts.count == 2, !parts[1].isEmpty else {
        return malformed("expected 'skb:GLOB', such as skb:* or skb:net_dev_*")
      }
      return glob(parts[1]) ? Probe(kind: .skb(glob: parts[1]), range: range) : nil
    case "tracepoint":
      guard parts.count == 3, !parts[1].isEmpty, !parts[2].isEmpty else {
        return malformed("expected 'tracepoint:CATEGORY:NAME', such as tracepoint:net:net_dev_xmit")
      }
      guard glob(parts[1]), glob(parts[2]) else { return nil }
      return Probe(kind: .tracepoint(category: parts[1], name: parts[2]), range: range)
    case "kprobe", "kretprobe", "fentry", "fexit":
      guard parts.count == 2, !parts[1].isEmpty else {
        return malformed("expected '\(type):FUNCTION', such as \(type):tcp_sendmsg")
      }
      guard glob(parts[1]) else { return nil }
      let function = parts[1]
      let kind: Probe.Kind =
        switch type {
        case "kprobe": .kprobe(function: function)
        case "kretprobe": .kretprobe(function: function)
        case "fentry": .fentry(function: function)
        default: .fexit(function: function)
        }
      return Probe(kind: kind, range: range)
    case "interval":
      if parts.count == 3, !parts[1].isEmpty, !parts[2].isEmpty {
        // bpftrace's spelling: interval:s:1, interval:ms:500, interval:hz:99.
        return parseInterval(unit: parts[1], count: parts[2], range: range).map {
          Probe(kind: .interval(nanoseconds: $0), range: range)
        }
      }
      guard parts.count == 2, !parts[1].isEmpty else {
        return malformed("expected 'interval:DURATION', such as interval:1s, interval:500ms or interval:s:1")
      }
      return parseInterval(parts[1], range: range).map {
        Probe(kind: .interval(nanoseconds: $0), range: range)
      }
    default:
      var diagnostic = Diagnostic(
        .unknownProbeType,
        "unknown probe type '\(type)'; the probe types are \(Self.probeTypes.joined(separator: ", "))",
        at: SourceRange(range.start, range.start + type.utf8.count))
      if let suggestion = Self.suggestProbeType(type) {
        diagnostic = diagnostic.with(.init(.help, "did you mean '\(suggestion)'?"))
      }
      report(diagnostic)
      return nil
    }
  }

  /// Brackets in a glob must pair up and enclose something.
  static func globProblem(_ glob: String) -> String? {
    var open = false
    var classLength = 0
    for character in glob {
      switch character {
      case "[":
        if open { return "'[' inside a bracket expression" }
        open = true
        classLength = 0
      case "]":
        if !open { return "']' without a matching '['" }
        if classLength == 0 { return "empty bracket expression '[]'" }
        open = false
      default:
        classLength += 1
      }
    }
    return open ? "'[' without a matching ']'" : nil
  }

  private mutating func parseInterval(_ text: String, range: SourceRange) -> UInt64? {
    let units: [(String, UInt64)] = [
      ("ns", 1), ("us", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000), ("m", 60_000_000_000),
    ]
    let digits = text.prefix { $0.isASCII && ($0.isNumber || $0 == "_") }
    let unit = text.dropFirst(digits.count)
    guard let multiplier = units.first(where: { $0.0 == unit })?.1,
      digits.contains(where: \.isNumber),
      digits.first != "_"
    else {
      report(
        Diagnostic(
          .invalidInterval,
          "invalid interval '\(text)': write a number followed by a unit: ns, us, ms, s or m",
          at: range))
      return nil
    }
    guard let count = UInt64(digits.filter { $0 != "_" }),
      case (let total, let overflow) = count.multipliedReportingOverflow(by: multiplier), !overflow
    else {
      report(Diagnostic(.invalidInterval, "interval '\(text)' is too long", at: range))
      return nil
    }
    guard total > 0 else {
      report(Diagnostic(.zeroInterval, "interval must be greater than zero", at: range))
      return nil
    }
    return total
  }

  /// `interval:UNIT:COUNT`: every COUNT units, or COUNT times a second for `hz`.
  private mutating func parseInterval(unit: String, count: String, range: SourceRange) -> UInt64? {
    let units: [String: UInt64] = ["ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000]
    guard units[unit] != nil || unit == "hz", count.first?.isNumber == true,
      count.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "_") })
    else {
      report(
        Diagnostic(
          .invalidInterval,
          "invalid interval 'interval:\(unit):\(count)': write a unit (ns, us, ms, s, m or hz) and a number, such as interval:s:1",
          at: range))
      return nil
    }
    guard let number = UInt64(count.filter { $0 != "_" }) else {
      report(Diagnostic(.invalidInterval, "interval 'interval:\(unit):\(count)' is too long", at: range))
      return nil
    }
    guard number > 0 else {
      report(Diagnostic(.zeroInterval, "interval must be greater than zero", at: range))
      return nil
    }
    if unit == "hz" {
      guard number <= 1_000_000_000 else {
        report(Diagnostic(.invalidInterval, "interval:hz:\(count) is more often than once a nanosecond", at: range))
        return nil
      }
      return 1_000_000_000 / number
    }
    let (total, overflow) = number.multipliedReportingOverflow(by: units[unit]!)
    guard !overflow else {
      report(Diagnostic(.invalidInterval, "interval 'interval:\(unit):\(count)' is too long", at: range))
      return nil
    }
    return total
  }

  static func suggestProbeType(_ name: String) -> String? {
    if let alias = probeAliases[name] { return alias }
    // Case does not count: `Tracepoint` and `begin` are one step from what was meant.
    let lowered = probeTypes.map { $0.lowercased() }
    let limit = name.count <= 3 ? 1 : 2
    guard let match = Spelling.closest(to: name.lowercased(), among: lowered, limit: limit),
      let index = lowered.firstIndex(of: match)
    else { return nil }
    return probeTypes[index]
  }

  private mutating func parseFilter() -> Expr? {
    let open = advance()
    var context = ExpressionContext()
    context.filterTop = true
    let expression = parseExpression(context)
    if at(.slash) {
      advance()
      return expression
    }
    if expression != nil {
      let token = peek()
      report(
        Diagnostic(
          .unclosedFilter, "expected '/' to close the filter, found \(describe(token))",
          at: here(token)
        ).with(.init(.note, "filter opened here", at: open.range)))
    }
    // Skip to where the body would start.
    while !(at(.lBrace) || at(.less) || peek().kind == .eof
      || (peek().newlineBefore && isProbeStart(0)))
    {
      if at(.slash) {
        advance()
        break
      }
      advance()
    }
    return nil
  }

  // MARK: - Blocks and statements

  private func closes(_ token: Token, _ style: Block.Style) -> Bool {
    token.is(style == .angle ? .greater : .rBrace)
  }

  private func unclosedBlock(_ style: Block.Style, at range: SourceRange, opener: SourceRange)
    -> Diagnostic
  {
    Diagnostic(
      .unclosedBlock, "expected '\(style == .angle ? ">" : "}")' to close the block", at: range
    ).with(.init(.note, "block opened here", at: opener))
  }

  /// Parses `{ ... }` or `< ... >`; the caller has checked that one of them starts here.
  private mutating func parseBlock() -> Block? {
    guard enter() else { return nil }
    defer { leave() }
    let open = advance()
    let style: Block.Style = open.is(.less) ? .angle : .brace
    if style == .brace { braceDepth += 1 }
    defer { if style == .brace { braceDepth -= 1 } }

    var context = ExpressionContext()
    context.angleTop = style == .angle
    context.newlineSensitive = true

    var statements: [Statement] = []
    var end = open.range.end
    while true {
      while at(.semicolon) { advance() }
      let token = peek()
      if closes(token, style) {
        end = advance().range.end
        break
      }
      if token.kind == .eof {
        if !abandoned { report(unclosedBlock(style, at: here(token), opener: open.range)) }
        end = token.range.start
        break
      }
      if style == .angle && token.is(.rBrace) {
        // `< ... }`: a mismatched closer. Leave it to an enclosing `{` if there is one.
        report(unclosedBlock(style, at: here(token), opener: open.range))
        if braceDepth == 0 { end = advance().range.end } else { end = token.range.start }
        break
      }
      if token.is(.rParen) || token.is(.rBracket) || token.is(.greater) || token.is(.rBrace) {
        report(Diagnostic(.unexpectedToken, "unexpected \(describe(token))", at: here(token)))
        advance()
        continue
      }
      let before = consumed
      if let statement = parseStatement(context) {
        statements.append(statement)
        // A statement that ends with its own block (`if (...) { ... }`) needs no separator.
        if statement.kind.endsWithBlock {
          while at(.semicolon) { advance() }
        } else {
          expectSeparator(style)
        }
      } else {
        skipStatement(style)
      }
      if consumed == before { advance() }
    }
    return Block(statements: statements, style: style, range: SourceRange(open.range.start, end))
  }

  private mutating func expectSeparator(_ style: Block.Style) {
    let token = peek()
    if token.is(.semicolon) {
      while at(.semicolon) { advance() }
      return
    }
    if token.newlineBefore || token.kind == .eof || closes(token, style) || token.is(.rBrace) {
      return
    }
    if token.kind == .invalid {
      skipStatement(style)  // the character has its own diagnostic
      return
    }
    report(
      Diagnostic(
        .expectedStatementSeparator,
        "expected ';' or a newline after the statement, found \(describe(token))", at: here(token)))
    skipStatement(style)
  }

  /// Recovery inside a block: skip to the next `;` or line, or to the block's closer.
  private mutating func skipStatement(_ style: Block.Style) {
    var depth = 0
    while true {
      let token = peek()
      if token.kind == .eof { return }
      if depth == 0 {
        if token.is(.semicolon) {
          advance()
          return
        }
        let lineStart = token.newlineBefore && token.range.start != lastErrorStart
        if lineStart || closes(token, style) || token.is(.rBrace) { return }
      }
      if token.is(.lParen) || token.is(.lBracket) || token.is(.lBrace) {
        depth += 1
      } else if (token.is(.rParen) || token.is(.rBracket) || token.is(.rBrace)) && depth > 0 {
        depth -= 1
      }
      advance()
    }
  }

  private mutating func parseStatement(_ context: ExpressionContext) -> Statement? {
    let token = peek()
    if token.isIdentifier("if") { return parseIf() }
    if token.isIdentifier("while") { return parseWhile() }
    if token.isIdentifier("for") { return parseFor() }
    if let name = token.identifierName, let jump = JumpKind(rawValue: name) {
      advance()
      return Statement(kind: .jump(jump), range: token.range)
    }
    if token.is(.plusPlus) || token.is(.minusMinus) {
      // `++$x`, `--@m[k]`
      advance()
      guard let target = parseUnary(context) else { return nil }
      guard isAssignable(target, operator: token.is(.plusPlus) ? "++" : "--") else { return nil }
      return Statement(
        kind: .increment(target: target, token.is(.plusPlus) ? .increment : .decrement, prefix: true),
        range: SourceRange(token.range.start, target.range.end))
    }
    if token.isIdentifier("else") {
      report(Diagnostic(.misplacedElse, "'else' without a matching 'if'", at: here(token)))
      advance()
      // Parse what follows so its own errors are reported and its braces are balanced.
      if atIdentifier("if") {
        _ = parseIf()
      } else if at(.lBrace) || at(.less) {
        _ = parseBlock()
      }
      return nil
    }
    guard let target = parseExpression(context) else { return nil }
    let next = peek()
    if !next.newlineBefore, next.is(.plusPlus) || next.is(.minusMinus) {
      let op = advance()
      guard isAssignable(target, operator: op.is(.plusPlus) ? "++" : "--") else { return nil }
      return Statement(
        kind: .increment(target: target, op.is(.plusPlus) ? .increment : .decrement, prefix: false),
        range: SourceRange(target.range.start, op.range.end))
    }
    if !next.newlineBefore, let (op, tokens) = compoundOperator() {
      for _ in 0..<tokens { advance() }
      guard isAssignable(target, operator: op.rawValue + "=") else { return nil }
      guard let value = parseExpression(context) else { return nil }
      return Statement(kind: .compoundAssign(target: target, op, value: value), range: target.range.union(value.range))
    }
    guard at(.assign), !peek().newlineBefore else {
      return Statement(kind: .expression(target), range: target.range)
    }
    advance()
    guard let value = parseExpression(context) else { return nil }
    let range = target.range.union(value.range)
    switch target.kind {
    case .variable(let name):
      return Statement(kind: .assignVariable(name: name, value: value), range: range)
    case .map(let access):
      return Statement(kind: .assignMap(access, value: value), range: range)
    default:
      report(
        Diagnostic(
          .invalidAssignmentTarget,
          "cannot assign to '\(file.text(of: target.range))'; only '$variable' and '@map[...]' can be assigned",
          at: target.range))
      return nil
    }
  }

  /// The compound assignment operator here (`+=` ... `<<=`, or `>>=` as three adjacent
  /// tokens) and how many tokens spell it.
  private mutating func compoundOperator() -> (BinaryOperator, Int)? {
    let token = peek()
    if case .punct(let punct) = token.kind, let op = punct.compoundOperator { return (op, 1) }
    if token.is(.greater), at(.greater, 1), at(.assign, 2), peek(1).range.start == token.range.end,
      peek(2).range.start == peek(1).range.end
    {
      return (.shiftRight, 3)
    }
    return nil
  }

  /// Whether `target` can be assigned to: a variable or a map entry; reports it otherwise.
  private mutating func isAssignable(_ target: Expr, operator op: String) -> Bool {
    switch target.kind {
    case .variable, .map: return true
    default:
      report(
        Diagnostic(
          .invalidAssignmentTarget,
          "cannot apply '\(op)' to '\(file.text(of: target.range))'; only '$variable' and '@map[...]' can be assigned",
          at: target.range))
      return false
    }
  }

  /// `while (condition) block`
  private mutating func parseWhile() -> Statement? {
    let whileToken = advance()
    guard let condition = parseParenthesizedCondition(after: "while") else { return nil }
    guard let body = parseLoopBody(after: "while") else { return nil }
    return Statement(
      kind: .whileLoop(condition: condition, body: body), range: SourceRange(whileToken.range.start, body.range.end))
  }

  /// `for ($i : start..end) block`
  private mutating func parseFor() -> Statement? {
    let forToken = advance()
    guard at(.lParen) else {
      report(
        Diagnostic(
          .expectedToken, "expected '(' after 'for': write for ($i : 0..10) { ... }", at: here(peek())))
      return nil
    }
    let open = advance()
    guard case .variable(let name) = peek().kind else {
      report(
        Diagnostic(
          .expectedToken, "expected a variable after 'for (', such as for ($i : 0..10), found \(describe(peek()))",
          at: here(peek())))
      skipToClosing(.rParen)
      return nil
    }
    advance()
    guard at(.colon) else {
      report(
        Diagnostic(
          .expectedToken, "expected ':' after the loop variable, as in for ($\(name) : 0..10), found \(describe(peek()))",
          at: here(peek())))
      skipToClosing(.rParen)
      return nil
    }
    advance()
    guard let start = parseExpression(.nested) else {
      skipToClosing(.rParen)
      return nil
    }
    guard at(.range) else {
      report(
        Diagnostic(
          .expectedToken, "expected '..' after the start of the range, as in for ($\(name) : 0..10), found \(describe(peek()))",
          at: here(peek())
        ).with(.init(.help, "for takes a range of integers, START..END (END excluded); iterating over a map is not supported")))
      skipToClosing(.rParen)
      return nil
    }
    advance()
    guard let end = parseExpression(.nested) else {
      skipToClosing(.rParen)
      return nil
    }
    guard expectClosing(.rParen, open: open) != nil else { return nil }
    guard let body = parseLoopBody(after: "for") else { return nil }
    return Statement(
      kind: .forRange(variable: name, start: start, end: end, body: body),
      range: SourceRange(forToken.range.start, body.range.end))
  }

  /// `( condition )` after `while`; nil after a diagnostic.
  private mutating func parseParenthesizedCondition(after keyword: String) -> Expr? {
    guard at(.lParen) else {
      report(
        Diagnostic(
          .expectedToken, "expected '(' after '\(keyword)': write \(keyword) (condition) { ... }", at: here(peek())))
      return nil
    }
    let open = advance()
    guard let condition = parseExpression(.nested) else {
      skipToClosing(.rParen)
      return nil
    }
    guard expectClosing(.rParen, open: open) != nil else { return nil }
    return condition
  }

  private mutating func parseLoopBody(after keyword: String) -> Block? {
    guard at(.lBrace) || at(.less) else {
      report(
        Diagnostic(
          .expectedBlock, "expected '{' or '<' to start the body of '\(keyword)', found \(describe(peek()))",
          at: here(peek())))
      return nil
    }
    return parseBlock()
  }

  private mutating func parseIf() -> Statement? {
    let ifToken = advance()
    var condition: Expr?
    if at(.lParen) {
      let open = advance()
      condition = parseExpression(.nested)
      if at(.rParen) {
        advance()
      } else if condition != nil {
        report(
          Diagnostic(
            .expectedToken, "expected ')' after the condition, found \(describe(peek()))",
            at: here(peek())
          ).with(.init(.note, "'(' opened here", at: open.range)))
        condition = nil
      }
    } else {
      report(
        Diagnostic(
          .expectedToken, "expected '(' after 'if': write if (condition) { ... }", at: here(peek()))
      )
      var context = ExpressionContext()
      context.newlineSensitive = true
      _ = parseExpression(context)
    }
    guard at(.lBrace) || at(.less) else {
      if condition != nil {
        report(
          Diagnostic(
            .expectedBlock,
            "expected '{' or '<' to start the body of 'if', found \(describe(peek()))",
            at: here(peek())))
      }
      return nil
    }
    guard let then = parseBlock() else { return nil }
    var elseBlock: Block?
    var end = then.range.end
    if atIdentifier("else") {
      let elseToken = advance()
      if atIdentifier("if") {
        guard let nested = parseIf() else { return nil }
        // `else if` is an else block holding the one `if`, in the style of that `if`'s body so
        // the formatter can write it back as `else if`.
        guard case .ifElse(_, let nestedThen, _) = nested.kind else { return nil }
        elseBlock = Block(statements: [nested], style: nestedThen.style, range: nested.range)
        end = nested.range.end
      } else if at(.lBrace) || at(.less) {
        guard let block = parseBlock() else { return nil }
        elseBlock = block
        end = block.range.end
      } else {
        report(
          Diagnostic(
            .expectedBlock, "expected '{', '<' or 'if' after 'else', found \(describe(peek()))",
            at: here(peek())
          ).with(.init(.note, "'else' is here", at: elseToken.range)))
        return nil
      }
    }
    guard let condition else { return nil }
    return Statement(
      kind: .ifElse(condition: condition, then: then, else: elseBlock),
      range: SourceRange(ifToken.range.start, end))
  }

  // MARK: - Expressions

  /// `binary [? expression : expression]`: the conditional operator binds loosest and groups
  /// to the right; its middle part is delimited by `?` and `:`, so nothing in it ends a block
  /// or a filter.
  mutating func parseExpression(_ context: ExpressionContext) -> Expr? {
    // Each nesting passes through parseUnary, which counts it.
    guard let condition = parseBinary(minimumPrecedence: 1, context) else { return nil }
    let question = peek()
    guard question.is(.question), !(context.newlineSensitive && question.newlineBefore) else { return condition }
    advance()
    guard let value = parseExpression(.nested) else { return nil }
    guard at(.colon) else {
      report(
        Diagnostic(
          .expectedToken, "expected ':' in the conditional expression, found \(describe(peek()))", at: here(peek())
        ).with(.init(.note, "'?' is here", at: question.range)))
      return nil
    }
    advance()
    guard let otherwise = parseExpression(context) else { return nil }
    return Expr(
      .conditional(condition: condition, value: value, otherwise: otherwise),
      range: condition.range.union(otherwise.range))
  }

  /// Which kind of ambiguous token the binary loop accepted as an operator while recovering.
  private enum Ambiguity {
    case greater, shift, division
  }

  private mutating func parseBinary(minimumPrecedence: Int, _ context: ExpressionContext) -> Expr? {
    guard var lhs = parseUnary(context) else { return nil }
    // Each operator of a chain (`a + b + c ...`) deepens the tree by one; a tree thousands
    // deep would overflow the stack of every recursive pass, down to its deallocation.
    var chain = 0
    while let (op, tokenCount, ambiguity) = binaryOperator(context),
      op.precedence >= minimumPrecedence
    {
      chain += 1
      if chain > Self.maxChain {
        report(
          Diagnostic(
            .nestingTooDeep, "the expression chains more than \(Self.maxChain) operators",
            at: here(peek())))
        abandoned = true
        lookahead = []
        position = file.bytes.count
        return nil
      }
      let operatorStart = peek().range.start
      var operatorEnd = operatorStart
      for _ in 0..<tokenCount { operatorEnd = advance().range.end }
      guard let rhs = parseBinary(minimumPrecedence: op.precedence + 1, context) else { return nil }
      let range = lhs.range.union(rhs.range)
      if let ambiguity {
        reportAmbiguity(ambiguity, at: SourceRange(operatorStart, operatorEnd), expression: range)
      }
      lhs = Expr(.binary(op, lhs, rhs), range: range)
    }
    return lhs
  }

  private mutating func reportAmbiguity(
    _ ambiguity: Ambiguity, at range: SourceRange, expression: SourceRange
  ) {
    let text = file.text(of: expression)
    let diagnostic: Diagnostic
    switch ambiguity {
    case .greater:
      diagnostic = Diagnostic(
        .unparenthesizedGreaterInAngleBlock,
        "a comparison with '>' inside a '< ... >' block must be parenthesized: write (a > b)",
        at: range)
    case .shift:
      diagnostic = Diagnostic(
        .unparenthesizedShiftInAngleBlock,
        "a shift with '>>' inside a '< ... >' block must be parenthesized: write (a >> b)",
        at: range)
    case .division:
      diagnostic = Diagnostic(
        .unparenthesizedDivisionInFilter,
        "a division inside a filter must be parenthesized: write (a / b)", at: range)
    }
    report(
      diagnostic.with(
        .init(
          .help,
          ambiguity == .division
            ? "the unparenthesized '/' ends the filter; write (\(text))"
            : "the unparenthesized '>' ends the block; write (\(text))")))
  }

  /// The binary operator at the current token, how many tokens spell it, and whether it was
  /// only taken as an operator to recover from an ambiguity.
  private mutating func binaryOperator(_ context: ExpressionContext) -> (
    BinaryOperator, Int, Ambiguity?
  )? {
    let token = peek()
    if context.newlineSensitive && token.newlineBefore { return nil }
    if token.isIdentifier("in") { return (.in, 1, nil) }
    guard case .punct(let punct) = token.kind else { return nil }
    switch punct {
    case .pipePipe: return (.or, 1, nil)
    case .ampAmp: return (.and, 1, nil)
    case .pipe: return (.bitOr, 1, nil)
    case .caret: return (.bitXor, 1, nil)
    case .amp: return (.bitAnd, 1, nil)
    case .equal: return (.equal, 1, nil)
    case .notEqual: return (.notEqual, 1, nil)
    case .less: return (.less, 1, nil)
    case .lessEqual: return (.lessEqual, 1, nil)
    case .shiftLeft: return (.shiftLeft, 1, nil)
    case .plus: return (.add, 1, nil)
    case .minus: return (.subtract, 1, nil)
    case .star: return (.multiply, 1, nil)
    case .percent: return (.modulo, 1, nil)
    case .slash:
      guard context.filterTop else { return (.divide, 1, nil) }
      // The `/` ends the filter, unless an operand follows on the same line: then the user
      // meant division, which is reported and parsed as such.
      return continuesExpression(at: 1) ? (.divide, 1, .division) : nil
    case .greater:
      let next = peek(1)
      let adjacent = next.range.start == token.range.end
      if adjacent && next.is(.assign) {
        // A block cannot be followed by `=`, so `>=` is always a comparison.
        return (.greaterEqual, 2, context.angleTop ? .greater : nil)
      }
      if adjacent && next.is(.greater) {
        // `>>=` is a compound assignment, not a shift.
        if at(.assign, 2), peek(2).range.start == next.range.end { return nil }
        guard context.angleTop else { return (.shiftRight, 2, nil) }
        return continuesExpression(at: 2) ? (.shiftRight, 2, .shift) : nil
      }
      guard context.angleTop else { return (.greater, 1, nil) }
      return continuesExpression(at: 1) ? (.greater, 1, .greater) : nil
    default:
      return nil
    }
  }

  /// Whether the token at `offset` on the same line starts an operand that cannot begin
  /// anything else (a new clause, an `else`), i.e. a `>` or `/` before it was meant as an operator.
  private mutating func continuesExpression(at offset: Int) -> Bool {
    let token = peek(offset)
    if token.newlineBefore { return false }
    switch token.kind {
    case .literal, .variable, .map, .positional, .positionalCount: return true
    case .punct(let punct):
      return punct == .lParen || punct == .bang || punct == .tilde || punct == .minus
    case .identifier(let name):
      if Self.keywords.contains(name) { return false }
      return !isProbeStart(offset)
    case .invalid, .eof: return false
    }
  }

  private mutating func parseUnary(_ context: ExpressionContext) -> Expr? {
    guard enter() else { return nil }
    defer { leave() }
    let token = peek()
    let unary: UnaryOperator? =
      switch token.kind {
      case .punct(.bang): .not
      case .punct(.minus): .negate
      case .punct(.tilde): .complement
      default: nil
      }
    if let unary {
      advance()
      guard let operand = parseUnary(context) else { return nil }
      return Expr(.unary(unary, operand), range: SourceRange(token.range.start, operand.range.end))
    }
    if token.is(.lParen), isCastAhead() { return parseCast(context) }
    guard var expression = parsePrimary(context) else { return nil }
    // Postfix: member access and indexing; a newline ends them in statement position.
    while true {
      let next = peek()
      if context.newlineSensitive && next.newlineBefore { break }
      if next.is(.dot) || next.is(.arrow) {
        advance()
        guard let name = peek().identifierName else {
          report(
            Diagnostic(
              .expectedMemberName,
              "expected a field name after '\(next.is(.dot) ? "." : "->")', found \(describe(peek()))",
              at: here(peek())))
          return nil
        }
        let nameToken = advance()
        expression = Expr(
          .member(base: expression, name: name, arrow: next.is(.arrow)),
          range: SourceRange(expression.range.start, nameToken.range.end))
      } else if next.is(.lBracket) {
        let open = advance()
        guard let index = parseExpression(.nested) else { return nil }
        guard let close = expectClosing(.rBracket, open: open) else { return nil }
        expression = Expr(
          .index(base: expression, index: index),
          range: SourceRange(expression.range.start, close.range.end))
      } else {
        break
      }
    }
    return expression
  }

  /// `(` followed by a type name and `)`: `(u32)`, `(struct sk_buff *)`.
  private mutating func isCastAhead() -> Bool {
    guard let name = peek(1).identifierName else { return false }
    if ["struct", "union", "enum"].contains(name) { return true }
    guard Self.castTypes.contains(name) else { return false }
    var offset = 2
    while at(.star, offset) { offset += 1 }
    return at(.rParen, offset)
  }

  private mutating func parseCast(_ context: ExpressionContext) -> Expr? {
    let open = advance()
    let first = advance()
    var name = first.identifierName ?? ""
    var typeEnd = first.range.end
    if ["struct", "union", "enum"].contains(name) {
      guard let tag = peek().identifierName else {
        report(
          Diagnostic(
            .malformedCast,
            "expected a name after '\(name)' in the cast, found \(describe(peek()))",
            at: here(peek())))
        return nil
      }
      name += " " + tag
      typeEnd = advance().range.end
    }
    var pointerDepth = 0
    while at(.star) {
      pointerDepth += 1
      typeEnd = advance().range.end
    }
    guard at(.rParen) else {
      report(
        Diagnostic(
          .malformedCast,
          "expected ')' after the type '\(name)' in the cast, found \(describe(peek()))",
          at: here(peek())
        ).with(.init(.note, "'(' opened here", at: open.range)))
      return nil
    }
    advance()
    let type = TypeName(
      name: Self.castTypeAliases[name] ?? name, pointerDepth: pointerDepth,
      range: SourceRange(first.range.start, typeEnd))
    guard let operand = parseUnary(context) else { return nil }
    return Expr(.cast(type, operand), range: SourceRange(open.range.start, operand.range.end))
  }

  private mutating func parsePrimary(_ context: ExpressionContext) -> Expr? {
    let token = peek()
    switch token.kind {
    case .literal(let kind):
      advance()
      return Expr(kind, range: token.range)
    case .identifier(let name):
      switch name {
      case "true", "false":
        advance()
        return Expr(.bool(name == "true"), range: token.range)
      case _ where Self.keywords.contains(name):
        report(
          Diagnostic(
            .expectedExpression, "expected an expression, found the keyword '\(name)'",
            at: here(token)))
        return nil
      default:
        break
      }
      advance()
      let next = peek()
      guard next.is(.lParen), !(context.newlineSensitive && next.newlineBefore) else {
        return Expr(.identifier(name), range: token.range)
      }
      let open = advance()
      guard let (arguments, close) = parseList(closer: .rParen, open: open, typesAllowed: Self.typeTakingCalls.contains(name))
      else { return nil }
      return Expr(
        .call(name: name, arguments: arguments),
        range: SourceRange(token.range.start, close.range.end))
    case .variable(let name):
      advance()
      return Expr(.variable(name), range: token.range)
    case .positional(let number):
      advance()
      return Expr(.positional(number), range: token.range)
    case .positionalCount:
      advance()
      return Expr(.positionalCount, range: token.range)
    case .map(let name):
      advance()
      var keys: [Expr] = []
      var end = token.range.end
      let next = peek()
      if next.is(.lBracket), !(context.newlineSensitive && next.newlineBefore) {
        let open = advance()
        guard let (list, close) = parseList(closer: .rBracket, open: open) else { return nil }
        if list.isEmpty {
          report(
            Diagnostic(
              .emptyMapKey, "a map key list cannot be empty: write @\(name) for a map without keys",
              at: SourceRange(open.range.start, close.range.end)))
        }
        keys = list
        end = close.range.end
      }
      let access = MapAccess(name: name, keys: keys, range: SourceRange(token.range.start, end))
      return Expr(.map(access), range: access.range)
    case .punct(.lParen):
      let open = advance()
      guard let inner = parseExpression(.nested) else { return nil }
      guard let close = expectClosing(.rParen, open: open) else { return nil }
      return Expr(inner.kind, range: SourceRange(open.range.start, close.range.end))
    case .invalid:
      advance()  // reports the unexpected character
      return nil
    default:
      report(
        Diagnostic(
          .expectedExpression, "expected an expression, found \(describe(token))", at: here(token)))
      return nil
    }
  }

  /// Calls whose arguments may be types: `sizeof(struct sock)`, `offsetof(struct sock, sk_mark)`.
  static let typeTakingCalls: Set<String> = ["sizeof", "offsetof"]

  /// A comma-separated list up to `closer` (a trailing comma is allowed); `open` is consumed.
  /// With `typesAllowed`, an item may be a type name (`struct sock`, `u32`).
  private mutating func parseList(closer: Punct, open: Token, typesAllowed: Bool = false) -> ([Expr], Token)? {
    var items: [Expr] = []
    if at(closer) { return (items, advance()) }
    while true {
      if typesAllowed, let type = parseTypeArgument() {
        items.append(type)
      } else if let item = parseExpression(.nested) {
        items.append(item)
      } else {
        skipToClosing(closer)
        return nil
      }
      if at(.comma) {
        advance()
        if at(closer) { return (items, advance()) }
        continue
      }
      if at(closer) { return (items, advance()) }
      if peek().kind != .invalid {
        report(
          Diagnostic(
            .expectedToken,
            "expected ',' or '\(closer.rawValue)' in the list, found \(describe(peek()))",
            at: here(peek())
          ).with(.init(.note, "'\(file.text(of: open.range))' opened here", at: open.range)))
      }
      skipToClosing(closer)
      return nil
    }
  }

  /// A type name followed by `,` or `)`: `struct sock`, `u32`, `struct sk_buff *`; nil (with
  /// nothing consumed) when the next tokens are not one.
  private mutating func parseTypeArgument() -> Expr? {
    guard let first = peek().identifierName else { return nil }
    var offset = 1
    var name = first
    if ["struct", "union", "enum"].contains(first) {
      guard let tag = peek(1).identifierName else { return nil }
      name += " " + tag
      offset = 2
    } else if !Self.castTypes.contains(first) {
      return nil
    }
    var pointerDepth = 0
    while at(.star, offset) {
      pointerDepth += 1
      offset += 1
    }
    guard at(.comma, offset) || at(.rParen, offset) else { return nil }
    let start = peek().range.start
    var end = start
    for _ in 0..<offset { end = advance().range.end }
    let type = TypeName(name: Self.castTypeAliases[name] ?? name, pointerDepth: pointerDepth, range: SourceRange(start, end))
    return Expr(.typeName(type), range: type.range)
  }

  private mutating func expectClosing(_ closer: Punct, open: Token) -> Token? {
    if at(closer) { return advance() }
    if peek().kind == .invalid {
      skipToClosing(closer)
      return nil
    }
    report(
      Diagnostic(
        .expectedToken, "expected '\(closer.rawValue)', found \(describe(peek()))", at: here(peek())
      ).with(.init(.note, "'\(file.text(of: open.range))' opened here", at: open.range)))
    skipToClosing(closer)
    return nil
  }

  /// Recovery inside brackets: skip past the matching closer, but stop at a line break or a
  /// block boundary so one unclosed `(` does not swallow the rest of the spec.
  private mutating func skipToClosing(_ closer: Punct) {
    var depth = 0
    while true {
      let token = peek()
      if token.kind == .eof || token.newlineBefore || token.is(.semicolon) || token.is(.lBrace) {
        return
      }
      if depth == 0 && (token.is(.rBrace) || token.is(.greater)) { return }
      if depth == 0 && token.is(closer) {
        advance()
        return
      }
      if token.is(.lParen) || token.is(.lBracket) {
        depth += 1
      } else if token.is(.rParen) || token.is(.rBracket) {
        depth = max(0, depth - 1)
      }
      advance()
    }
  }
}
