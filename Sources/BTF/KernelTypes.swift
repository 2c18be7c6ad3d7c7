import Glibc

/// Why BTF could not be loaded.
public enum BTFLoadError: Error, Sendable, CustomStringConvertible {
  case kernelHasNoBTF(BTFReadError)
  case unreadableFile(path: String, BTFReadError)
  /// Reading the BTF ran out of memory (ENOMEM): what it is (the running kernel's BTF, a
  /// file), and the address-space limit when swtrace has one.
  case outOfMemory(what: String, BTFReadError, addressSpaceLimit: UInt64?)
  /// A pipe, FIFO or device given as the BTF file could not be read (too long, stalled).
  case unreadableStream(path: String, reason: String)

  public var description: String {
    switch self {
    case .kernelHasNoBTF(let error):
      "the running kernel has no BTF at /sys/kernel/btf/vmlinux (\(error)); "
        + "use a kernel built with CONFIG_DEBUG_INFO_BTF=y, or give a BTF file with --btf"
    case .unreadableFile(let path, let error):
      "'\(path)' is not a readable BTF file (\(error.description)); give raw BTF "
        + "(such as a copy of /sys/kernel/btf/vmlinux) or an ELF file with a .BTF section"
    case .unreadableStream(let path, let reason):
      "cannot read BTF from '\(path)': \(reason)"
    case .outOfMemory(let what, let error, let limit?):
      "not enough memory to read \(what) (\(error.description)): swtrace's address space is limited to "
        + "\(limit / (1 << 20)) MiB ('ulimit -v'), and BTF alone takes some 10 to 100 MiB; raise or remove that limit"
    case .outOfMemory(let what, let error, nil):
      "not enough memory to read \(what) (\(error.description)); free memory and try again"
    }
  }
}

/// A member found by name, with anonymous structs and unions looked through.
public struct MemberLookup: Hashable, Sendable {
  public var name: String
  /// Bits from the start of the outer type.
  public var bitOffset: Int
  public var type: BTFTypeID
  /// Non-zero for bitfields.
  public var bitfieldSize: Int

  public var byteOffset: Int { bitOffset / 8 }
}

/// One argument of an attach point: a tracepoint or a kernel function.
public struct BTFParameter: Hashable, Sendable {
  public var name: String
  public var type: BTFTypeID
}

/// A kernel tracepoint as BTF describes it: the `btf_trace_<name>` typedef the program
/// attaches to, and its arguments (without the leading context pointer).
public struct TracepointDescription: Hashable, Sendable {
  public var name: String
  public var typedefID: BTFTypeID
  public var parameters: [BTFParameter]
}

/// A kernel function with its prototype.
public struct FunctionDescription: Hashable, Sendable {
  public var name: String
  public var functionID: BTFTypeID
  public var parameters: [BTFParameter]
  public var returnType: BTFTypeID
}

/// A Swift view of one kernel's BTF: types, members, tracepoints and functions.
///
/// Scans over the whole BTF (tracepoints, functions) run once and are cached; everything
/// else is looked up on demand, so loading stays cheap for one-liners.
public final class KernelTypes: @unchecked Sendable {
  let handle: BTFHandle
  /// Where the BTF came from, for messages ("running kernel", a file path).
  public let origin: String
  public let isRunningKernel: Bool
  private let lock = Lock()
  private var cachedTracepointIndex: TracepointIndex?
  private var cachedTracepoints: [TracepointDescription]?
  private var cachedFunctions: [FunctionDescription]?
  private var cachedFunctionIndex: [BTFTypeID]?
  private var tracepointsByStruct: [String: [TracepointDescription]] = [:]
  private var functionsByStruct: [String: [FunctionDescription]] = [:]
  private var cachedNamedTypes: [String: BTFTypeID?] = [:]
  /// Records decoded so far: code generation asks for the same structs for every attach point.
  private var decodedTypes: [BTFTypeID: BTFType] = [:]
  private var enumeratorIndex: [String: (BTFTypeID, Int64)]?

  init(handle: BTFHandle, origin: String, isRunningKernel: Bool) {
    self.handle = handle
    self.origin = origin
    self.isRunningKernel = isRunningKernel
  }

  public static func loadRunningKernel() throws(BTFLoadError) -> KernelTypes {
    do {
      return KernelTypes(handle: try BTFHandle.loadKernel(), origin: "the running kernel", isRunningKernel: true)
    } catch {
      if error.code == ENOMEM { throw .outOfMemory(what: "the running kernel's BTF", error, addressSpaceLimit: addressSpaceLimit) }
      throw .kernelHasNoBTF(error)
    }
  }

  /// BTF from a file; `origin` names it in messages (the path unless given).
  public static func load(path: String, origin: String? = nil) throws(BTFLoadError) -> KernelTypes {
    do {
      return KernelTypes(handle: try BTFHandle.load(path: path), origin: origin ?? path, isRunningKernel: false)
    } catch {
      if error.code == ENOMEM { throw .outOfMemory(what: "'\(path)'", error, addressSpaceLimit: addressSpaceLimit) }
      throw .unreadableFile(path: path, error)
    }
  }

  /// BTF already read into memory (from a pipe or FIFO given with `--btf`): raw BTF, or an
  /// ELF file with a .BTF section. `path` names it in messages.
  public static func load(bytes: [UInt8], path: String) throws(BTFLoadError) -> KernelTypes {
    do {
      return KernelTypes(handle: try BTFHandle.load(bytes: bytes, name: path), origin: path, isRunningKernel: false)
    } catch {
      if error.code == ENOMEM { throw .outOfMemory(what: "'\(path)'", error, addressSpaceLimit: addressSpaceLimit) }
      throw .unreadableFile(path: path, error)
    }
  }

  /// swtrace's address-space limit (RLIMIT_AS) in bytes, or nil when it has none.
  static var addressSpaceLimit: UInt64? {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_AS.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return nil }
    return UInt64(limit.rlim_cur)
  }

  // MARK: Types

  public func type(_ id: BTFTypeID) -> BTFType {
    if let decoded = lock.withLock({ decodedTypes[id] }) { return decoded }
    let decoded = handle.type(id)
    lock.withLock { decodedTypes[id] = decoded }
    return decoded
  }

  /// Follows typedefs, qualifiers and type tags to the underlying type.
  public func resolved(_ id: BTFTypeID) -> BTFTypeID {
    var current = id
    for _ in 0..<64 {
      switch handle.kind(of: current) {
      case .typedef, .volatile, .const, .restrict, .typeTag:
        current = handle.sizeOrType(of: current)
      default:
        return current
      }
    }
    return current
  }

  public func size(of id: BTFTypeID) -> Int? { handle.resolvedSize(of: id) }

  /// The id of a named struct, union, enum or typedef.
  public func namedType(_ name: String, kind: BTFKind) -> BTFTypeID? {
    let key = "\(kind.rawValue):\(name)"
    if let known = lock.withLock({ cachedNamedTypes[key] }) { return known }
    let id = handle.find(name, kind: kind)
    lock.withLock { cachedNamedTypes[key] = id }
    return id
  }

  public func structure(_ name: String) -> BTFTypeID? { namedType(name, kind: .structure) }

  /// If `id` is (after typedefs) a pointer to a struct, that struct's name.
  public func pointeeStructName(_ id: BTFTypeID) -> String? {
    pointeeStruct(id).map { handle.name(of: $0) }
  }

  /// Whether `id` is `struct NAME *` (any qualifiers).
  public func isPointer(_ id: BTFTypeID, toStruct name: String) -> Bool {
    pointeeStruct(id).map { handle.name(of: $0, equals: name) } ?? false
  }

  /// If `id` is (after typedefs) a pointer to a struct, union or forward declaration, that
  /// record. Reads kinds and referenced ids only: a struct's members are never decoded here.
  private func pointeeStruct(_ id: BTFTypeID) -> BTFTypeID? {
    let pointer = resolved(id)
    guard handle.kind(of: pointer) == .pointer else { return nil }
    let pointee = resolved(handle.sizeOrType(of: pointer))
    switch handle.kind(of: pointee) {
    case .structure, .union, .forward: return pointee
    default: return nil
    }
  }

  /// The members of a struct or union, with anonymous members flattened into their parent.
  public func members(of id: BTFTypeID) -> [MemberLookup] {
    var result: [MemberLookup] = []
    collectMembers(of: resolved(id), baseBits: 0, into: &result, depth: 0)
    return result
  }

  public func member(_ name: String, of id: BTFTypeID) -> MemberLookup? {
    members(of: id).first { $0.name == name }
  }

  private func collectMembers(
    of id: BTFTypeID, baseBits: Int, into result: inout [MemberLookup], depth: Int
  ) {
    guard depth < 16 else { return }
    let members: [BTFType.Member]
    switch type(id) {
    case .structure(_, _, let m), .union(_, _, let m): members = m
    default: return
    }
    for member in members {
      let offset = baseBits + Int(member.bitOffset)
      if member.name.isEmpty {
        collectMembers(of: resolved(member.type), baseBits: offset, into: &result, depth: depth + 1)
      } else {
        result.append(
          MemberLookup(
            name: member.name, bitOffset: offset, type: member.type,
            bitfieldSize: Int(member.bitfieldSize)))
      }
    }
  }

  /// Enumerators whose names start with `prefix`, across all enums (such as `SKB_GSO_`).
  public func enumerators(withPrefix prefix: String) -> [BTFType.Enumerator] {
    guard let id = enumContaining(prefix: prefix) else { return [] }
    guard case .enumeration(_, _, _, let values) = type(id) else { return [] }
    return values.filter { $0.name.hasPrefix(prefix) }
  }

  /// The enum that has an enumerator named `name` and its value (`TCP_CLOSE`,
  /// `SKB_DROP_REASON_NO_SOCKET`): the first such enum in BTF order. Every enum is read
  /// once, on the first call.
  public func enumerator(named name: String) -> (BTFTypeID, Int64)? {
    if let index = lock.withLock({ enumeratorIndex }) { return index[name] }
    var index: [String: (BTFTypeID, Int64)] = [:]
    for id in 1..<handle.typeCount {
      let kind = handle.kind(of: id)
      guard kind == .enumeration || kind == .enum64, case .enumeration(_, _, _, let values) = type(id) else { continue }
      for value in values where index[value.name] == nil { index[value.name] = (id, value.value) }
    }
    lock.withLock { enumeratorIndex = index }
    return index[name]
  }

  private func enumContaining(prefix: String) -> BTFTypeID? {
    let key = "enum-prefix:\(prefix)"
    if let known = lock.withLock({ cachedNamedTypes[key] }) { return known }
    let found = (1..<handle.typeCount).first { id in
      let kind = handle.kind(of: id)
      return (kind == .enumeration || kind == .enum64) && handle.hasEnumerator(in: id, withPrefix: prefix)
    }
    lock.withLock { cachedNamedTypes[key] = found }
    return found
  }

  /// C spelling of a type, for messages and listings: `struct sk_buff *`, `unsigned int`.
  public func describe(_ id: BTFTypeID) -> String {
    describe(id, depth: 0)
  }

  private func describe(_ id: BTFTypeID, depth: Int) -> String {
    guard depth < 16 else { return "..." }
    switch type(id) {
    case .void: return "void"
    case .integer(let name, _, _, _, _, _), .float(let name, _): return name
    case .pointer(let to):
      let inner = describe(to, depth: depth + 1)
      return inner.hasSuffix("*") ? inner + "*" : inner + " *"
    case .array(let element, let count): return "\(describe(element, depth: depth + 1))[\(count)]"
    case .structure(let name, _, _): return "struct \(name.isEmpty ? "(anon)" : name)"
    case .union(let name, _, _): return "union \(name.isEmpty ? "(anon)" : name)"
    case .enumeration(let name, _, _, _): return "enum \(name.isEmpty ? "(anon)" : name)"
    case .forward(let name, let isUnion): return (isUnion ? "union " : "struct ") + name
    case .typedef(let name, _): return name
    case .const(let next): return "const " + describe(next, depth: depth + 1)
    case .volatile(let next): return "volatile " + describe(next, depth: depth + 1)
    case .restrict(let next), .typeTag(_, let next): return describe(next, depth: depth + 1)
    case .functionPrototype: return "function"
    case .function(let name, _, _): return name
    default: return "?"
    }
  }

  // MARK: Attach points

  /// Every tracepoint the kernel describes with a `btf_trace_<name>` typedef, sorted by name.
  public func tracepoints() -> [TracepointDescription] {
    if let cached = lock.withLock({ cachedTracepoints }) { return cached }
    let index = tracepointIndex()
    let result = index.records.sorted { $0.name < $1.name }.map { describe($0, in: index) }
    lock.withLock { cachedTracepoints = result }
    return result
  }

  /// The tracepoints whose names pass `nameMatches` and, with `structName`, that have a
  /// `struct structName *` argument, sorted by name. Only those are described: argument
  /// names are looked up for the few that match, not for all of the kernel's tracepoints.
  public func tracepoints(
    where nameMatches: (String) -> Bool, takingPointerTo structName: String? = nil
  ) -> [TracepointDescription] {
    guard let structName else {
      let index = tracepointIndex()
      return index.records.filter { nameMatches($0.name) }.sorted { $0.name < $1.name }.map {
        describe($0, in: index)
      }
    }
    return tracepoints(takingPointerTo: structName).filter { nameMatches($0.name) }
  }

  /// Remembered per struct: resolving and then checking a spec both ask for `sk_buff`'s.
  private func tracepoints(takingPointerTo structName: String) -> [TracepointDescription] {
    if let cached = lock.withLock({ tracepointsByStruct[structName] }) { return cached }
    let index = tracepointIndex()
    var test = PointerTest(structName, types: self)
    let result = index.records.filter { $0.argumentTypes.contains { test.passes($0) } }
      .sorted { $0.name < $1.name }.map { describe($0, in: index) }
    lock.withLock { tracepointsByStruct[structName] = result }
    return result
  }

  /// Whether types are `struct NAME *`, each type looked at once: tracepoints and functions
  /// share argument types, and a table indexed by id is cheaper than hashing them.
  private struct PointerTest {
    let structName: String
    let types: KernelTypes
    /// 0 not yet known, 1 no, 2 yes.
    var verdicts: [UInt8]

    init(_ structName: String, types: KernelTypes) {
      self.structName = structName
      self.types = types
      verdicts = [UInt8](repeating: 0, count: Int(types.handle.typeCount))
    }

    mutating func passes(_ type: BTFTypeID) -> Bool {
      guard Int(type) < verdicts.count else { return types.isPointer(type, toStruct: structName) }
      if verdicts[Int(type)] == 0 { verdicts[Int(type)] = types.isPointer(type, toStruct: structName) ? 2 : 1 }
      return verdicts[Int(type)] == 2
    }
  }

  /// A tracepoint as the scan finds it: its name and argument types, without argument names.
  private struct TracepointRecord {
    var name: String
    var typedefID: BTFTypeID
    var argumentTypes: [BTFTypeID]
  }

  private struct TracepointIndex {
    /// In id order; sorted by name only after filtering, since most callers want a few.
    var records: [TracepointRecord]
    var names: TracepointNames
  }

  private func tracepointIndex() -> TracepointIndex {
    if let cached = lock.withLock({ cachedTracepointIndex }) { return cached }
    let found = handle.records(named: [(.typedef, "btf_trace_"), (.function, "__bpf_trace_")])
    var records: [TracepointRecord] = []
    records.reserveCapacity(found[0].count)
    for id in found[0] {
      // btf_trace_<name> is a typedef of a pointer to the probe function's prototype.
      let target = handle.sizeOrType(of: id)
      guard handle.kind(of: target) == .pointer,
        let parameterTypes = handle.parameterTypes(of: handle.sizeOrType(of: target))
      else { continue }
      records.append(
        TracepointRecord(
          name: handle.name(of: id, droppingFirst: "btf_trace_".utf8.count), typedefID: id,
          // The first parameter is the tracepoint's private data pointer, not an argument.
          argumentTypes: Array(parameterTypes.dropFirst())))
    }
    let index = TracepointIndex(records: records, names: TracepointNames(classFunctions: found[1], handle: handle))
    lock.withLock { cachedTracepointIndex = index }
    return index
  }

  private func describe(_ record: TracepointRecord, in index: TracepointIndex) -> TracepointDescription {
    let named = index.names.forTracepoint(record.name, types: record.argumentTypes)
    return TracepointDescription(
      name: record.name, typedefID: record.typedefID,
      parameters: record.argumentTypes.enumerated().map { position, type in
        BTFParameter(name: named?[position] ?? "arg\(position)", type: type)
      })
  }

  /// Argument names of tracepoints, taken from the `__bpf_trace_<class>` functions the kernel
  /// generates per event class; the typedefs themselves carry no parameter names. Only the
  /// classes' argument types are read up front; names are decoded for the classes asked about.
  private struct TracepointNames {
    let handle: BTFHandle
    /// Class name -> its function, the last one where a name repeats.
    var byClassName: [String: BTFTypeID] = [:]
    /// Argument types -> the functions of the classes with exactly those, in id order.
    var byTypes: [[BTFTypeID]: [BTFTypeID]] = [:]

    init(classFunctions: [BTFTypeID], handle: BTFHandle) {
      self.handle = handle
      for id in classFunctions {
        guard handle.kind(of: id) == .function,
          let types = handle.parameterTypes(of: handle.sizeOrType(of: id))
        else { continue }
        byClassName[handle.name(of: id, droppingFirst: "__bpf_trace_".utf8.count)] = id
        byTypes[Array(types.dropFirst()), default: []].append(id)
      }
    }

    /// The event classes a tracepoint may belong to: its own name when a class has it and
    /// the same argument types, else every class with exactly its argument types.
    func classes(forTracepoint name: String, types: [BTFTypeID]) -> [String] {
      if let exact = byClassName[name], handle.parameterTypes(of: handle.sizeOrType(of: exact)).map({ Array($0.dropFirst()) }) == types {
        return [name]
      }
      let prefix = "__bpf_trace_".utf8.count
      return (byTypes[types] ?? []).map { handle.name(of: $0, droppingFirst: prefix) }
    }

    func forTracepoint(_ name: String, types: [BTFTypeID]) -> [String]? {
      if let exact = byClassName[name], let arguments = arguments(of: exact), arguments.map(\.type) == types {
        return arguments.map(\.name)
      }
      // Several classes can share a prototype; use their names only when they agree.
      guard let candidates = byTypes[types]?.compactMap({ arguments(of: $0)?.map(\.name) }),
        let first = candidates.first, candidates.allSatisfy({ $0 == first })
      else { return nil }
      return first
    }

    private func arguments(of function: BTFTypeID) -> [BTFType.Parameter]? {
      guard case .functionPrototype(_, let parameters, _) = handle.type(handle.sizeOrType(of: function)) else {
        return nil
      }
      return Array(parameters.dropFirst())
    }
  }

  /// The record a tracepoint writes, `struct trace_event_raw_<class>`, for BPF programs of the
  /// classic tracepoint type (whose context points at it). The class is the tracepoint's own
  /// name where it has one; a tracepoint defined from a shared class (`DEFINE_EVENT`) is
  /// matched to the classes with its argument types, and `recorded` (the fields tracefs says
  /// the record has, name and offset, when known) picks among several. Without it, classes
  /// whose records have the same fields at the same offsets are as good as one; otherwise
  /// the record cannot be told and nil is returned.
  public func tracepointRecord(_ tracepoint: String, recorded: [(name: String, offset: Int)]? = nil) -> BTFTypeID? {
    let index = tracepointIndex()
    guard let entry = index.records.first(where: { $0.name == tracepoint }) else { return nil }
    let candidates = index.names.classes(forTracepoint: tracepoint, types: entry.argumentTypes)
      .compactMap { structure("trace_event_raw_" + $0) }
    let layouts = candidates.map { id in
      recordFields(id).map { ($0.name, $0.offset) }
    }
    if let recorded {
      let wanted = recorded.map { "\($0.name)@\($0.offset)" }.sorted()
      return zip(candidates, layouts).first { _, layout in layout.map { "\($0.0)@\($0.1)" }.sorted() == wanted }?.0
    }
    guard let first = layouts.first else { return nil }
    let same = layouts.allSatisfy { $0.map { "\($0.0)@\($0.1)" } == first.map { "\($0.0)@\($0.1)" } }
    return same ? candidates.first : nil
  }

  /// A field of a tracepoint's record as a spec names it: `__data_loc_NAME` (a u32 whose low
  /// half is the offset of the variable-length data in the record, the high half its length)
  /// is the field NAME with `dataLocation` set.
  public struct RecordField: Hashable, Sendable {
    public var name: String
    public var offset: Int
    public var type: BTFTypeID
    public var dataLocation: Bool
  }

  /// The fields of a `trace_event_raw_*` record, without its common header (`ent`) and the
  /// trailing `__data` array.
  public func recordFields(_ record: BTFTypeID) -> [RecordField] {
    members(of: record).compactMap { member in
      guard member.name != "ent", member.name != "__data" else { return nil }
      let dataLocation = member.name.hasPrefix("__data_loc_")
      return RecordField(
        name: dataLocation ? String(member.name.dropFirst("__data_loc_".count)) : member.name,
        offset: member.byteOffset, type: member.type, dataLocation: dataLocation)
    }
  }

  /// Every kernel function BTF describes (FUNC records), sorted by name.
  public func functions() -> [FunctionDescription] {
    if let cached = lock.withLock({ cachedFunctions }) { return cached }
    let result = functions(where: { _ in true })
    lock.withLock { cachedFunctions = result }
    return result
  }

  /// The functions whose names pass `nameMatches` and, with `structName`, that take a
  /// `struct structName *` argument, sorted by name. Only those have their prototypes decoded.
  public func functions(
    where nameMatches: (String) -> Bool, takingPointerTo structName: String? = nil
  ) -> [FunctionDescription] {
    guard let structName else {
      return named(functionIndex()).filter { nameMatches($0.name) }.sorted { $0.name < $1.name }.compactMap {
        describeFunction(named: $0.name, id: $0.id)
      }
    }
    return functions(takingPointerTo: structName).filter { nameMatches($0.name) }
  }

  /// Remembered per struct, as for tracepoints.
  private func functions(takingPointerTo structName: String) -> [FunctionDescription] {
    if let cached = lock.withLock({ functionsByStruct[structName] }) { return cached }
    var test = PointerTest(structName, types: self)
    let taking = functionIndex().filter { id in handle.hasParameter(of: handle.sizeOrType(of: id)) { test.passes($0) } }
    let result = named(taking).sorted { $0.name < $1.name }.compactMap { describeFunction(named: $0.name, id: $0.id) }
    lock.withLock { functionsByStruct[structName] = result }
    return result
  }

  /// Every function name, sorted: candidates for "did you mean" notes, without decoding any
  /// prototype.
  public func functionNames() -> [String] { named(functionIndex()).map(\.name).sorted() }

  /// The FUNC records swtrace considers, in id order: where static functions share a name, BTF
  /// has a record for each and swtrace takes the first. Names stay in the string section until
  /// a filter has picked the few that are needed.
  private func functionIndex() -> [BTFTypeID] {
    if let cached = lock.withLock({ cachedFunctionIndex }) { return cached }
    let index = handle.firstRecordOfEachName(ofKind: .function) {
      handle.kind(of: handle.sizeOrType(of: $0)) == .functionPrototype
    }
    lock.withLock { cachedFunctionIndex = index }
    return index
  }

  private func named(_ ids: [BTFTypeID]) -> [(name: String, id: BTFTypeID)] {
    ids.map { (handle.name(of: $0), $0) }
  }

  private func describeFunction(named name: String, id: BTFTypeID) -> FunctionDescription? {
    guard case .functionPrototype(let returnType, let parameters, _) = handle.type(handle.sizeOrType(of: id))
    else { return nil }
    return FunctionDescription(
      name: name, functionID: id, parameters: parameters.map { BTFParameter(name: $0.name, type: $0.type) },
      returnType: returnType)
  }

  public func tracepoint(named name: String) -> TracepointDescription? {
    tracepoints(where: { $0 == name }).first
  }

  public func function(named name: String) -> FunctionDescription? {
    // libbpf's lookup finds the first record of the name, which is the one the index keeps
    // unless that record is malformed; then the index is searched.
    if let id = handle.find(name, kind: .function), handle.kind(of: handle.sizeOrType(of: id)) == .functionPrototype {
      return describeFunction(named: name, id: id)
    }
    return functionIndex().first { handle.name(of: $0, equals: name) }.flatMap { describeFunction(named: name, id: $0) }
  }
}
