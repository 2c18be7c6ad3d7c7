public import BTF
public import SwtraceSyntax

/// The kernel mechanism a program is attached with.
public enum Backend: String, Hashable, Sendable, CaseIterable, Comparable {
  /// BTF-typed tracepoint (`tp_btf`): typed arguments, plain loads through the skb.
  case tracepoint
  /// Classic tracepoint program (perf event): the context is the record the tracepoint
  /// wrote (`struct trace_event_raw_<class>`), for `args.NAME` in `tracepoint:` clauses.
  /// Available wherever `tracepoint` is; chosen by the checker, never resolved directly.
  case tracepointRecord
  case fentry
  case fexit
  case kprobe
  case kretprobe

  public static func < (a: Backend, b: Backend) -> Bool {
    allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
  }
}

/// What the kernel allows on the machine the spec will run on. Detected by the runtime by
/// probing; assumed all-capable when checking against a BTF file.
public struct BackendSupport: Hashable, Sendable {
  public var available: Set<Backend>
  /// Whether kprobes attach through kprobe.multi links, where the many functions of `skb:*`
  /// share a few programs and links: then kprobes are preferred to fentry for them, whose
  /// trampolines attach and detach one function at a time.
  public var kprobesAttachInBulk: Bool
  public init(available: Set<Backend>, kprobesAttachInBulk: Bool = false) {
    self.available = available
    self.kprobesAttachInBulk = kprobesAttachInBulk
  }
  public static let all = BackendSupport(available: Set(Backend.allCases))
  public static let tracepointsOnly = BackendSupport(available: [.tracepoint])

  /// Whether resolving the probes of `spec` can ask for a function backend (fentry,
  /// kprobes): `skb:` probes (which match functions too) and function probes can;
  /// tracepoints, BEGIN, END and intervals cannot, so for them the kernel need not be asked
  /// what it allows on functions (which takes this kernel over a second to refuse fentry).
  public static func functionBackendsMatter(to spec: Spec) -> Bool {
    spec.clauses.flatMap(\.probes).contains { probe in
      switch probe.kind {
      case .skb, .kprobe, .kretprobe, .fentry, .fexit: true
      case .tracepoint, .begin, .end, .interval: false
      }
    }
  }
}

/// One kernel hook a program is attached to, with its typed arguments.
public struct AttachPoint: Hashable, Sendable {
  public var name: String
  public var backend: Backend
  /// `btf_trace_<name>` typedef for tracepoints, the FUNC record for functions.
  public var btfID: BTFTypeID
  public var arguments: [BTFParameter]
  /// Position of the `struct sk_buff *` argument, if there is one.
  public var skbArgument: Int?
  /// The function's return type for kretprobe/fexit.
  public var returnType: BTFTypeID?
  /// The tracepoint's category (`sock` of `sock:inet_sock_set_state`), where a program
  /// attaches through tracefs's id of the tracepoint (`Backend.tracepointRecord`).
  public var category: String?

  public init(
    name: String, backend: Backend, btfID: BTFTypeID, arguments: [BTFParameter],
    skbArgument: Int?, returnType: BTFTypeID? = nil
  ) {
    self.name = name
    self.backend = backend
    self.btfID = btfID
    self.arguments = arguments
    self.skbArgument = skbArgument
    self.returnType = returnType
  }

  public func argumentIndex(_ name: String) -> Int? {
    arguments.firstIndex { $0.name == name }
  }

  /// Names the attach point among those of one clause: a tracepoint and a kernel function
  /// can share a name (`consume_skb` in `skb:*` on function backends), not a backend too.
  public var qualifiedName: String { "\(backend.rawValue):\(name)" }
}

/// A clause after checking: where it attaches, when it acts, and what it does.
public struct CheckedClause: Hashable, Sendable {
  public var attachPoints: [AttachPoint]
  public var filter: TypedExpr?
  public var actions: [Action]
  public var range: SourceRange
  /// The clause's `$variables`; `TypedExpr.Kind.variable(slot:)` indexes them.
  public var variables: [VariableDeclaration]

  public init(
    attachPoints: [AttachPoint], filter: TypedExpr?, actions: [Action], range: SourceRange,
    variables: [VariableDeclaration] = []
  ) {
    self.attachPoints = attachPoints
    self.filter = filter
    self.actions = actions
    self.range = range
    self.variables = variables
  }
}
