/// The syntax tree of a spec. Value types throughout; every node carries the source range
/// it was parsed from so later stages can point at it.
public struct Spec: Hashable, Sendable {
  public var clauses: [Clause]
  public init(clauses: [Clause]) { self.clauses = clauses }
}

/// `probe[, probe...] [/filter/] block`
public struct Clause: Hashable, Sendable {
  public var probes: [Probe]
  public var filter: Expr?
  public var body: Block
  public var range: SourceRange
  public init(probes: [Probe], filter: Expr?, body: Block, range: SourceRange) {
    self.probes = probes
    self.filter = filter
    self.body = body
    self.range = range
  }
}

/// One probe of a clause, as written.
/// The types of probe a spec can name, as written before the first `:`.
public enum ProbeType: String, Hashable, Sendable, CaseIterable {
  case skb, tracepoint, kprobe, kretprobe, fentry, fexit, interval, BEGIN, END
}

public struct Probe: Hashable, Sendable {
  public enum Kind: Hashable, Sendable {
    /// `skb:GLOB`: every attach point with a `struct sk_buff *` argument whose name matches.
    case skb(glob: String)
    /// `tracepoint:CATEGORY:NAME`, each part a glob.
    case tracepoint(category: String, name: String)
    case kprobe(function: String)
    case kretprobe(function: String)
    case fentry(function: String)
    case fexit(function: String)
    case begin
    case end
    /// `interval:1s`, `interval:500ms`; the period in nanoseconds.
    case interval(nanoseconds: UInt64)
  }
  public var kind: Kind
  public var range: SourceRange
  public init(kind: Kind, range: SourceRange) {
    self.kind = kind
    self.range = range
  }
}

extension Probe.Kind {
  public var type: ProbeType {
    switch self {
    case .skb: .skb
    case .tracepoint: .tracepoint
    case .kprobe: .kprobe
    case .kretprobe: .kretprobe
    case .fentry: .fentry
    case .fexit: .fexit
    case .begin: .BEGIN
    case .end: .END
    case .interval: .interval
    }
  }
}

/// `< ... >` or `{ ... }`; which one was used matters only to the formatter.
public struct Block: Hashable, Sendable {
  public enum Style: Hashable, Sendable { case angle, brace }
  public var statements: [Statement]
  public var style: Style
  public var range: SourceRange
  public init(statements: [Statement], style: Style, range: SourceRange) {
    self.statements = statements
    self.style = style
    self.range = range
  }
}

public struct Statement: Hashable, Sendable {
  public indirect enum Kind: Hashable, Sendable {
    /// A call used as a statement: `print(...)`, `printf(...)`, `track()`, `exit()`,
    /// `delete(@m[k])`, `clear(@m)`. Sema decides which names are statements.
    case expression(Expr)
    /// `$name = value`
    case assignVariable(name: String, value: Expr)
    /// `@name[keys] = value`, where value is an aggregate call (`count()`) or a plain expression.
    case assignMap(MapAccess, value: Expr)
    /// `if (cond) block [else block]`; `else if` is an else block holding one `if` statement.
    case ifElse(condition: Expr, then: Block, else: Block?)
    /// `$x += 1`, `@m[k] <<= 2`: the target (a `.variable` or `.map`) combined with the value.
    case compoundAssign(target: Expr, BinaryOperator, value: Expr)
    /// `$x++`, `--@m[k]`: the target (a `.variable` or `.map`) moved by one.
    case increment(target: Expr, IncrementOperator, prefix: Bool)
    /// `while (cond) block`
    case whileLoop(condition: Expr, body: Block)
    /// `for ($i : start..end) block`: `$i` takes start, start + 1, ..., end - 1.
    case forRange(variable: String, start: Expr, end: Expr, body: Block)
    /// `break`, `continue`, `return`
    case jump(JumpKind)
  }
  public var kind: Kind
  public var range: SourceRange
  public init(kind: Kind, range: SourceRange) {
    self.kind = kind
    self.range = range
  }
}

extension Statement.Kind {
  /// Whether the statement ends with a block of its own (`if`, `while`, `for`), so that no
  /// separator needs to follow it.
  public var endsWithBlock: Bool {
    switch self {
    case .ifElse, .whileLoop, .forRange: true
    default: false
    }
  }
}

/// `++` and `--`.
public enum IncrementOperator: String, Hashable, Sendable {
  case increment = "++"
  case decrement = "--"
}

/// The statements that leave a loop or a clause early.
public enum JumpKind: String, Hashable, Sendable {
  /// Leaves the innermost loop.
  case breakLoop = "break"
  /// Goes on with the innermost loop's next iteration.
  case continueLoop = "continue"
  /// Ends this run of the clause.
  case returnFromClause = "return"
}

/// `@name` or `@name[key, ...]`; a bare `@` has the empty name.
public struct MapAccess: Hashable, Sendable {
  public var name: String
  public var keys: [Expr]
  public var range: SourceRange
  public init(name: String, keys: [Expr], range: SourceRange) {
    self.name = name
    self.keys = keys
    self.range = range
  }
}

/// A type name written in a cast: `(u32)x`, `(struct sk_buff *)arg0`.
public struct TypeName: Hashable, Sendable, CustomStringConvertible {
  /// `u8 u16 u32 u64 s8 s16 s32 s64 bool`, or `struct NAME`, `union NAME`, `enum NAME`.
  public var name: String
  public var pointerDepth: Int
  public var range: SourceRange
  public init(name: String, pointerDepth: Int, range: SourceRange) {
    self.name = name
    self.pointerDepth = pointerDepth
    self.range = range
  }
  public var description: String {
    pointerDepth == 0 ? name : name + " " + String(repeating: "*", count: pointerDepth)
  }
}

public enum UnaryOperator: String, Hashable, Sendable {
  case not = "!"
  case negate = "-"
  case complement = "~"
}

public enum BinaryOperator: String, Hashable, Sendable, CaseIterable {
  case or = "||"
  case and = "&&"
  case bitOr = "|"
  case bitXor = "^"
  case bitAnd = "&"
  case equal = "=="
  case notEqual = "!="
  case less = "<"
  case lessEqual = "<="
  case greater = ">"
  case greaterEqual = ">="
  /// `addr in 10.0.0.0/8`
  case `in` = "in"
  case shiftLeft = "<<"
  case shiftRight = ">>"
  case add = "+"
  case subtract = "-"
  case multiply = "*"
  case divide = "/"
  case modulo = "%"

  /// C precedence, higher binds tighter; `in` sits with the equality operators.
  public var precedence: Int {
    switch self {
    case .or: 1
    case .and: 2
    case .bitOr: 3
    case .bitXor: 4
    case .bitAnd: 5
    case .equal, .notEqual, .in: 6
    case .less, .lessEqual, .greater, .greaterEqual: 7
    case .shiftLeft, .shiftRight: 8
    case .add, .subtract: 9
    case .multiply, .divide, .modulo: 10
    }
  }

  public var isComparison: Bool {
    switch self {
    case .equal, .notEqual, .less, .lessEqual, .greater, .greaterEqual, .in: true
    default: false
    }
  }
}

public struct Expr: Hashable, Sendable {
  public indirect enum Kind: Hashable, Sendable {
    case integer(UInt64)
    case string(String)
    case bool(Bool)
    /// An IPv4 address in host order (`10.0.0.10` is 0x0a00000a).
    case ipv4(UInt32)
    /// 16 bytes in network order.
    case ipv6([UInt8])
    /// An address prefix: `10.0.0.0/8`, `fd00::/8`; the address is `.ipv4` or `.ipv6`.
    case cidr(address: Expr, prefixLength: Int)
    /// A bare name: builtin (`ts`), probe argument (`skb`), skb field (`len`) or derived field (`gso_type`).
    case identifier(String)
    /// `$name`
    case variable(String)
    /// `@name[keys]` read as a value.
    case map(MapAccess)
    /// `base.name` (`arrow` false) or `base->name` (`arrow` true).
    case member(base: Expr, name: String, arrow: Bool)
    case index(base: Expr, index: Expr)
    case call(name: String, arguments: [Expr])
    case unary(UnaryOperator, Expr)
    case binary(BinaryOperator, Expr, Expr)
    case cast(TypeName, Expr)
    /// `condition ? value : otherwise`
    case conditional(condition: Expr, value: Expr, otherwise: Expr)
    /// `$1`, `$2`, ...: a positional parameter given on the command line.
    case positional(Int)
    /// `$#`: how many positional parameters the command line gave.
    case positionalCount
    /// A type as an argument of `sizeof` or `offsetof`: `sizeof(struct sock)`.
    case typeName(TypeName)
  }
  public var kind: Kind
  public var range: SourceRange
  public init(_ kind: Kind, range: SourceRange) {
    self.kind = kind
    self.range = range
  }
}
