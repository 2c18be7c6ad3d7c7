import BTF
import SwtraceSyntax

/// The fields a `tracepoint:` clause can read from the records its tracepoints write: the
/// fields every attach point's record has, at the same offset and of the same type.
struct TracepointRecordFields {
  /// The first attach point's record, for typing the record pointer.
  var structID: BTFTypeID
  var fields: [String: KernelTypes.RecordField]
}

/// `args.NAME` in `tracepoint:` clauses: as in bpftrace, the fields the tracepoint recorded
/// (`struct trace_event_raw_<class>`, typed from BTF), read by a classic tracepoint program
/// whose context is the record. A clause that reads none of them keeps the tracepoint's typed
/// arguments (`tp_btf`), where packet fields can be read through its skb.
extension ClauseContext {
  /// bpftrace's default length of strings read from kernel memory.
  static let recordStringCapacity = 64

  /// Decides, before checking the clause, whether it reads the records: when one of its
  /// `args.NAME` (or a bare name nothing else takes) is a recorded field of every attach point.
  /// False after a diagnostic.
  mutating func chooseRecordOrArguments(_ clause: Clause) -> Bool {
    let tracepointsOnly = clause.probes.allSatisfy { if case .tracepoint = $0.kind { true } else { false } }
    guard tracepointsOnly, attachPoints.allSatisfy({ $0.backend == .tracepoint }) else { return true }
    var argumentNames: Set<String> = []
    var bareNames: Set<String> = []
    for expression in Self.expressions(of: clause) {
      Self.collectNames(expression, arguments: &argumentNames, bare: &bareNames)
    }
    // Bare names that are something else (a builtin, an argument, a packet field) never read
    // the record: decided first, so that a clause such as `{ @[comm] = count(); @h = hist(len) }`
    // does not have tracefs read (and mounted) for a record it will not use.
    bareNames = bareNames.filter { !isNameOfSomethingElse($0) }
    guard !argumentNames.isEmpty || !bareNames.isEmpty else { return true }
    let records = attachPoints.map { checker.resolver.tracepointRecord($0) }
    let known = records.compactMap { $0 }
    var common: [String: KernelTypes.RecordField]? = nil
    for id in known {
      let mine = Dictionary(types.recordFields(id).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
      common = common.map { $0.filter { mine[$0.key] == $0.value } } ?? mine
    }
    let fields = known.count == records.count ? common ?? [:] : [:]
    let wanted = argumentNames.filter { fields[$0] != nil }.sorted()
      + bareNames.filter { fields[$0] != nil }.sorted()
    guard let first = wanted.first else {
      // An args.NAME that is no argument but that some record would have: say why it is missing.
      for name in argumentNames.sorted() where commonArguments[name] == nil {
        if known.count < records.count, let point = zip(attachPoints, records).first(where: { $0.1 == nil })?.0 {
          diagnostics.append(
            Diagnostic(
              "tracepoint-record-unknown",
              "the fields \(point.name) records cannot be told from \(types.origin): its record's struct is ambiguous or missing",
              at: clause.probes[0].range,
              notes: [.init(.help, "its arguments (swtrace -l tracepoint:*:\(point.name)) can be read instead")]))
          return false
        }
      }
      return true
    }
    guard let firstRecord = known.first else { return true }
    record = TracepointRecordFields(structID: firstRecord, fields: fields)
    // The record replaces the arguments: no typed skb, no argument of the raw tracepoint.
    hasSkb = false
    recordReason = first
    return true
  }

  /// Whether a bare name means something other than a recorded field in this clause.
  func isNameOfSomethingElse(_ name: String) -> Bool {
    if Builtin(rawValue: name) != nil || commonArguments[name] != nil { return true }
    return attachPoints.contains { Checker.packetNameHides(name, at: $0, types: types) }
  }

  /// `args.NAME` and `args->NAME` (or a bare NAME) in a clause whose probes write records.
  mutating func recordField(_ name: String, range: SourceRange, quietly: Bool = false) -> Reference? {
    guard let record else { return nil }
    guard let field = record.fields[name] else {
      if quietly { return nil }
      var diagnostic = Diagnostic(
        "unknown-argument",
        attachPoints.count == 1
          ? "\(attachPoints[0].name) records no field '\(name)'"
          : "'\(name)' is not a field every tracepoint of this clause records",
        at: range)
      if commonArguments[name] != nil || attachPoints.contains(where: { $0.argumentIndex(name) != nil }) {
        diagnostic.notes.append(
          .init(
            .note,
            "'\(name)' is an argument of the tracepoint, but this clause reads its record (for '\(recordReason ?? "")'), where the arguments are not available"))
        diagnostic.notes.append(.init(.help, "read the argument in a clause of its own, or through skb: probes"))
      } else if let best = closestName(to: name, among: record.fields.keys) {
        diagnostic.notes.append(.init(.help, "did you mean 'args.\(best)'?"))
      } else {
        diagnostic.notes.append(.init(.help, "its fields are: \(record.fields.keys.sorted().joined(separator: ", "))"))
      }
      diagnostics.append(diagnostic)
      return nil
    }
    let recordPointer = TypedExpr(
      .record, type: .pointer(pointee: record.structID, description: types.describe(record.structID) + " *"),
      range: range)
    if field.dataLocation {
      // `__data_loc` fields: the low 16 bits are where the data starts in the record.
      let location = TypedExpr(.load(base: recordPointer, offset: field.offset, size: 4, bitfield: nil), type: .u32, range: range)
      let start = TypedExpr(
        .binary(.bitAnd, location, TypedExpr(.integer(0xffff), type: .u64, range: range)), type: .u64, range: range)
      let address = TypedExpr(.binary(.add, recordPointer, start), type: recordPointer.type, range: range)
      return .value(
        TypedExpr(
          .loadString(base: address, offset: 0, capacity: Self.recordStringCapacity),
          type: .string(capacity: Self.recordStringCapacity), range: range))
    }
    return .place(Place(base: recordPointer, offset: field.offset, type: field.type, bitfield: nil, range: range))
  }

  /// The filter and every expression of the clause's statements, for scanning names.
  static func expressions(of clause: Clause) -> [Expr] {
    var result: [Expr] = clause.filter.map { [$0] } ?? []
    func walk(_ block: Block) {
      for statement in block.statements {
        switch statement.kind {
        case .expression(let e): result.append(e)
        case .assignVariable(_, let value): result.append(value)
        case .assignMap(let access, let value): result += access.keys + [value]
        case .ifElse(let condition, let then, let otherwise):
          result.append(condition)
          walk(then)
          if let otherwise { walk(otherwise) }
        case .compoundAssign(let target, _, let value): result += [target, value]
        case .increment(let target, _, _): result.append(target)
        case .whileLoop(let condition, let body):
          result.append(condition)
          walk(body)
        case .forRange(_, let start, let end, let body):
          result += [start, end]
          walk(body)
        case .jump: break
        }
      }
    }
    walk(clause.body)
    return result
  }

  /// Names read as `args.NAME` (or `args->NAME`) and bare names, anywhere in `expression`.
  static func collectNames(_ expression: Expr, arguments: inout Set<String>, bare: inout Set<String>) {
    switch expression.kind {
    case .member(let base, let name, _):
      if case .identifier("args") = base.kind {
        arguments.insert(name)
      } else {
        collectNames(base, arguments: &arguments, bare: &bare)
      }
    case .identifier(let name):
      bare.insert(name)
    case .map(let access):
      for key in access.keys { collectNames(key, arguments: &arguments, bare: &bare) }
    case .index(let base, let index):
      collectNames(base, arguments: &arguments, bare: &bare)
      collectNames(index, arguments: &arguments, bare: &bare)
    case .call(_, let list):
      for item in list { collectNames(item, arguments: &arguments, bare: &bare) }
    case .unary(_, let operand), .cast(_, let operand):
      collectNames(operand, arguments: &arguments, bare: &bare)
    case .binary(_, let lhs, let rhs):
      collectNames(lhs, arguments: &arguments, bare: &bare)
      collectNames(rhs, arguments: &arguments, bare: &bare)
    case .conditional(let condition, let value, let otherwise):
      for part in [condition, value, otherwise] { collectNames(part, arguments: &arguments, bare: &bare) }
    case .cidr(let address, _):
      collectNames(address, arguments: &arguments, bare: &bare)
    case .integer, .string, .bool, .ipv4, .ipv6, .variable, .positional, .positionalCount, .typeName:
      break
    }
  }
}
