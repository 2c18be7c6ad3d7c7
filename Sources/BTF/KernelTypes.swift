public import LibBPF

public typealias BTFTypeID = UInt32

/// Why BTF could not be loaded.
public enum BTFLoadError: Error, Sendable, CustomStringConvertible {
  case kernelHasNoBTF(SystemError)
  case unreadableFile(path: String, SystemError)

  public var description: String {
    switch self {
    case .kernelHasNoBTF(let error):
      "the running kernel has no BTF at /sys/kernel/btf/vmlinux (\(error)); "
        + "use a kernel built with CONFIG_DEBUG_INFO_BTF=y, or give a BTF file with --btf"
    case .unreadableFile(let path, let error):
      "'\(path)' is not a readable BTF file (\(error.description)); give raw BTF "
        + "(such as a copy of /sys/kernel/btf/vmlinux) or an ELF file with a .BTF section"
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
  public let handle: BTFHandle
  /// Where the BTF came from, for messages ("running kernel", a file path).
  public let origin: String
  public let isRunningKernel: Bool
  private let lock = Lock()
  private var cachedTracepoints: [TracepointDescription]?
  private var cachedFunctions: [FunctionDescription]?
  private var cachedNamedTypes: [String: BTFTypeID] = [:]

  public init(handle: BTFHandle, origin: String, isRunningKernel: Bool) {
    self.handle = handle
    self.origin = origin
    self.isRunningKernel = isRunningKernel
  }

  public static func loadRunningKernel() throws(BTFLoadError) -> KernelTypes {
    do {
      return KernelTypes(handle: try BTFHandle.loadKernel(), origin: "the running kernel", isRunningKernel: true)
    } catch {
      throw .kernelHasNoBTF(error)
    }
  }

  public static func load(path: String) throws(BTFLoadError) -> KernelTypes {
    do {
      return KernelTypes(handle: try BTFHandle.load(path: path), origin: path, isRunningKernel: false)
    } catch {
      throw .unreadableFile(path: path, error)
    }
  }

  // MARK: Types

  public func type(_ id: BTFTypeID) -> RawBTFType { handle.type(id) }

  /// Follows typedefs, qualifiers and type tags to the underlying type.
  public func resolved(_ id: BTFTypeID) -> BTFTypeID {
    var current = id
    for _ in 0..<64 {
      switch handle.type(current) {
      case .typedef(_, let next), .volatile(let next), .const(let next), .restrict(let next),
        .typeTag(_, let next):
        current = next
      default:
        return current
      }
    }
    return current
  }

  public func size(of id: BTFTypeID) -> Int? { handle.resolvedSize(of: id) }

  /// The id of a named struct, union, enum or typedef.
  public func namedType(_ name: String, kind: RawBTFKind) -> BTFTypeID? {
    let key = "\(kind.rawValue):\(name)"
    if let id = lock.withLock({ cachedNamedTypes[key] }) { return id }
    guard let id = handle.find(name, kind: kind) else { return nil }
    lock.withLock { cachedNamedTypes[key] = id }
    return id
  }

  public func structure(_ name: String) -> BTFTypeID? { namedType(name, kind: .structure) }

  /// If `id` is (after typedefs) a pointer to a struct, that struct's name.
  public func pointeeStructName(_ id: BTFTypeID) -> String? {
    guard case .pointer(let to) = type(resolved(id)) else { return nil }
    switch type(resolved(to)) {
    case .structure(let name, _, _), .union(let name, _, _): return name
    case .forward(let name, _): return name
    default: return nil
    }
  }

  /// Whether `id` is `struct NAME *` (any qualifiers).
  public func isPointer(_ id: BTFTypeID, toStruct name: String) -> Bool {
    pointeeStructName(id) == name
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
    let members: [RawBTFType.Member]
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
  public func enumerators(withPrefix prefix: String) -> [RawBTFType.Enumerator] {
    guard let id = enumContaining(prefix: prefix) else { return [] }
    guard case .enumeration(_, _, _, let values) = type(id) else { return [] }
    return values.filter { $0.name.hasPrefix(prefix) }
  }

  private func enumContaining(prefix: String) -> BTFTypeID? {
    let key = "enum-prefix:\(prefix)"
    if let id = lock.withLock({ cachedNamedTypes[key] }) { return id }
    for id in 1..<handle.typeCount {
      let kind = handle.kind(of: id)
      guard kind == .enumeration || kind == .enum64 else { continue }
      if case .enumeration(_, _, _, let values) = type(id),
        values.contains(where: { $0.name.hasPrefix(prefix) })
      {
        lock.withLock { cachedNamedTypes[key] = id }
        return id
      }
    }
    return nil
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
    let names = tracepointParameterNames()
    var result: [TracepointDescription] = []
    for id in 1..<handle.typeCount where handle.kind(of: id) == .typedef {
      guard handle.name(of: id, hasPrefix: "btf_trace_") else { continue }
      guard case .typedef(let fullName, let target) = type(id),
        case .pointer(let protoID) = type(target),
        case .functionPrototype(_, let parameters, _) = type(protoID)
      else { continue }
      let name = String(fullName.dropFirst("btf_trace_".count))
      // The first parameter is the tracepoint's private data pointer, not an argument.
      let arguments = Array(parameters.dropFirst())
      let named = names.forTracepoint(name, types: arguments.map(\.type))
      result.append(
        TracepointDescription(
          name: name, typedefID: id,
          parameters: arguments.enumerated().map { index, parameter in
            BTFParameter(name: named?[index] ?? "arg\(index)", type: parameter.type)
          }))
    }
    result.sort { $0.name < $1.name }
    lock.withLock { cachedTracepoints = result }
    return result
  }

  /// Argument names of tracepoints, taken from the `__bpf_trace_<class>` functions the kernel
  /// generates per event class; the typedefs themselves carry no parameter names.
  private struct TracepointNames {
    var byFunctionName: [String: [BTFParameter]] = [:]
    var byTypes: [[BTFTypeID]: [[String]]] = [:]

    func forTracepoint(_ name: String, types: [BTFTypeID]) -> [String]? {
      if let exact = byFunctionName[name], exact.map(\.type) == types { return exact.map(\.name) }
      // Several classes can share a prototype; use their names only when they agree.
      guard let candidates = byTypes[types], let first = candidates.first,
        candidates.allSatisfy({ $0 == first })
      else { return nil }
      return first
    }
  }

  private func tracepointParameterNames() -> TracepointNames {
    var names = TracepointNames()
    for id in 1..<handle.typeCount where handle.kind(of: id) == .function {
      guard handle.name(of: id, hasPrefix: "__bpf_trace_") else { continue }
      guard case .function(let fullName, let protoID, _) = type(id),
        case .functionPrototype(_, let parameters, _) = type(protoID)
      else { continue }
      let arguments = Array(parameters.dropFirst())
      names.byFunctionName[String(fullName.dropFirst("__bpf_trace_".count))] = arguments.map {
        BTFParameter(name: $0.name, type: $0.type)
      }
      names.byTypes[arguments.map(\.type), default: []].append(arguments.map(\.name))
    }
    return names
  }

  /// Every kernel function BTF describes (FUNC records), sorted by name.
  public func functions() -> [FunctionDescription] {
    if let cached = lock.withLock({ cachedFunctions }) { return cached }
    var result: [FunctionDescription] = []
    var seen = Set<String>()
    for id in 1..<handle.typeCount where handle.kind(of: id) == .function {
      guard case .function(let name, let protoID, _) = type(id),
        case .functionPrototype(let returnType, let parameters, _) = type(protoID),
        seen.insert(name).inserted
      else { continue }
      result.append(
        FunctionDescription(
          name: name, functionID: id,
          parameters: parameters.map { BTFParameter(name: $0.name, type: $0.type) },
          returnType: returnType))
    }
    result.sort { $0.name < $1.name }
    lock.withLock { cachedFunctions = result }
    return result
  }

  public func tracepoint(named name: String) -> TracepointDescription? {
    tracepoints().first { $0.name == name }
  }

  public func function(named name: String) -> FunctionDescription? {
    functions().first { $0.name == name }
  }
}
