public import BTF
import Glibc
import Synchronization
public import SwtraceSyntax

/// Finds the attach points a probe names, from BTF and what the kernel can attach.
public struct ProbeResolver: Sendable {
  public let types: KernelTypes
  public let support: BackendSupport
  /// Tracepoint name -> category (`net_dev_queue` -> `net`), from tracefs when running on the
  /// kernel; empty when checking against a BTF file, in which case categories match anything.
  public var tracepointCategories: [String: String] { categories.value }
  private let categories: LazyCategories
  /// Whether a tracepoint is in a category, asked of tracefs for that one name.
  public typealias TracepointCategoryCheck = @Sendable (_ category: String, _ name: String) -> Bool?
  private let checkCategory: TracepointCategoryCheck?
  /// Categories `checkCategory` confirmed, by tracepoint name.
  private let confirmedCategories = ConfirmedCategories()

  /// The category of tracepoint `name`: one a probe named and tracefs confirmed, else from
  /// every category (read on first use); nil when unknown.
  public func tracepointCategory(of name: String) -> String? {
    confirmedCategories.value.withLock { $0[name] } ?? tracepointCategories[name]
  }

  /// `--backend`: the backend function attach points of `skb:` probes must use.
  public let forcedFunctionBackend: Backend?

  /// The fields (name, offset) tracefs says a tracepoint records, by category and name; nil
  /// when checking against a BTF file.
  public typealias TracepointFormatReader = @Sendable (_ category: String, _ name: String) -> [(name: String, offset: Int)]?
  private let readFormat: TracepointFormatReader?
  private let records = RecordCache()

  public init(
    types: KernelTypes, support: BackendSupport, tracepointCategories: [String: String] = [:],
    forcedFunctionBackend: Backend? = nil
  ) {
    self.init(
      types: types, support: support, readingTracepointCategories: { tracepointCategories },
      forcedFunctionBackend: forcedFunctionBackend)
  }

  /// Categories are read with `read` when a probe first needs them: walking tracefs costs more
  /// than resolving `skb:*`, and only `tracepoint:` probes with a category other than `*` ask.
  /// `checkingTracepointCategory` answers whether tracepoint NAME is in CATEGORY (nil when it
  /// cannot tell): a probe naming one tracepoint of one category asks it instead of having
  /// every category read.
  public init(
    types: KernelTypes, support: BackendSupport,
    readingTracepointCategories read: @escaping @Sendable () -> [String: String],
    forcedFunctionBackend: Backend? = nil, readingTracepointFormat: TracepointFormatReader? = nil,
    checkingTracepointCategory: TracepointCategoryCheck? = nil
  ) {
    self.types = types
    self.support = support
    self.checkCategory = checkingTracepointCategory
    self.categories = LazyCategories(read)
    self.forcedFunctionBackend = forcedFunctionBackend
    self.readFormat = readingTracepointFormat
  }

  /// `struct trace_event_raw_<class>`, the record the tracepoint of `point` writes (see
  /// `KernelTypes.tracepointRecord`), told apart by tracefs's format where BTF alone cannot.
  public func tracepointRecord(_ point: AttachPoint) -> BTFTypeID? {
    if let known = records.value.withLock({ $0[point.name] }) { return known }
    let recorded = tracepointCategory(of: point.name).flatMap { readFormat?($0, point.name) }
    let found = types.tracepointRecord(point.name, recorded: recorded)
    records.value.withLock { $0[point.name] = found }
    return found
  }

  /// The backend used for plain function probes (`skb:` over functions): the forced one, or
  /// kprobes where they attach in bulk, else fentry where the kernel allows it, else kprobes.
  public var functionBackend: Backend? {
    if let forcedFunctionBackend {
      return support.available.contains(forcedFunctionBackend) ? forcedFunctionBackend : nil
    }
    if support.kprobesAttachInBulk, support.available.contains(.kprobe) { return .kprobe }
    if support.available.contains(.fentry) { return .fentry }
    if support.available.contains(.kprobe) { return .kprobe }
    return nil
  }

  /// Attach points of a probe, or a diagnostic saying why there are none.
  public func resolve(_ probe: Probe) throws(Diagnostic) -> [AttachPoint] {
    let points: [AttachPoint]
    switch probe.kind {
    case .skb(let glob):
      points = skbTracepoints(matching: glob) + skbFunctions(matching: glob)
      if points.isEmpty {
        throw Diagnostic(
          "probe-matches-nothing",
          "'skb:\(glob)' matches no tracepoint\(functionBackend == nil ? "" : " or function") with a 'struct sk_buff *' argument",
          at: probe.range, notes: [.init(.help, "list the candidates with: swtrace -l 'skb:*'")])
      }
    case .tracepoint(let category, let name):
      let exact = !Self.isGlob(name) && !Self.isGlob(category) && category != "*"
      points = types.tracepoints(where: {
        matches(name, $0) && (exact ? confirms(category, of: $0) : categoryMatches(category, of: $0))
      }).map(attachPoint(for:))
      if points.isEmpty {
        throw Diagnostic(
          "probe-matches-nothing", "'tracepoint:\(category):\(name)' matches no tracepoint of \(types.origin)",
          at: probe.range,
          notes: suggestion(for: name, among: types.tracepoints().map(\.name)).map { [$0] } ?? [])
      }
    case .kprobe(let function), .kretprobe(let function), .fentry(let function), .fexit(let function):
      let backend: Backend =
        switch probe.kind {
        case .kprobe: .kprobe
        case .kretprobe: .kretprobe
        case .fentry: .fentry
        default: .fexit
        }
      guard support.available.contains(backend) else {
        throw Diagnostic(
          "backend-unavailable",
          "\(backend.rawValue) probes are not available on this kernel",
          at: probe.range,
          notes: [.init(.help, "use 'skb:' or 'tracepoint:' probes, which attach to tracepoints here")])
      }
      points = types.functions(where: { matches(function, $0) }).map { functionAttachPoint($0, backend: backend) }
      if points.isEmpty {
        throw Diagnostic(
          "probe-matches-nothing", "'\(function)' matches no kernel function in \(types.origin)",
          at: probe.range,
          notes: suggestion(for: function, among: types.functionNames()).map { [$0] } ?? [])
      }
    case .begin, .end, .interval:
      // Run by swtrace itself; the checker never asks for their attach points.
      return []
    }
    return points
  }

  private func matches(_ glob: String, _ name: String) -> Bool {
    // Without flags `*` matches every name; skipping fnmatch saves two C strings per name.
    glob == "*" || fnmatch(glob, name, 0) == 0
  }

  private static func isGlob(_ text: String) -> Bool { text.contains { "*?[".contains($0) } }

  /// Whether tracepoint `name` is in `category`, asked of tracefs for this name alone (a
  /// directory's existence, where reading every category walks some 2,000 directories); as
  /// `categoryMatches` when tracefs cannot tell.
  private func confirms(_ category: String, of name: String) -> Bool {
    guard let checkCategory else { return categoryMatches(category, of: name) }
    if let known = confirmedCategories.value.withLock({ $0[name] }) { return known == category }
    switch checkCategory(category, name) {
    case true?:
      confirmedCategories.value.withLock { $0[name] = category }
      return true
    case false?: return false
    case nil: return categoryMatches(category, of: name)
    }
  }

  /// Without category information (checking against a BTF file) every category matches; with
  /// it, a tracepoint the kernel lists under no category matches only the `*` category.
  private func categoryMatches(_ glob: String, of name: String) -> Bool {
    // `*` matches every category and no category alike, so it needs no categories read.
    guard glob != "*", !tracepointCategories.isEmpty else { return true }
    guard let category = tracepointCategories[name] else { return glob == "*" }
    return matches(glob, category)
  }

  func skbTracepoints(matching glob: String) -> [AttachPoint] {
    guard support.available.contains(.tracepoint) else { return [] }
    return types.tracepoints(where: { matches(glob, $0) }, takingPointerTo: "sk_buff").map(attachPoint(for:))
  }

  func skbFunctions(matching glob: String) -> [AttachPoint] {
    guard let backend = functionBackend else { return [] }
    return types.functions(where: { matches(glob, $0) }, takingPointerTo: "sk_buff").map {
      functionAttachPoint($0, backend: backend)
    }
  }

  func attachPoint(for tracepoint: TracepointDescription) -> AttachPoint {
    AttachPoint(
      name: tracepoint.name, backend: .tracepoint, btfID: tracepoint.typedefID,
      arguments: tracepoint.parameters,
      skbArgument: tracepoint.parameters.firstIndex { types.isPointer($0.type, toStruct: "sk_buff") })
  }

  func functionAttachPoint(_ function: FunctionDescription, backend: Backend) -> AttachPoint {
    AttachPoint(
      name: function.name, backend: backend, btfID: function.functionID,
      arguments: function.parameters,
      skbArgument: function.parameters.firstIndex { types.isPointer($0.type, toStruct: "sk_buff") },
      returnType: backend == .kretprobe || backend == .fexit ? function.returnType : nil)
  }

  private func suggestion(for name: String, among candidates: [String]) -> Diagnostic.Note? {
    guard !name.contains(where: { "*?[".contains($0) }),
      let best = closestName(to: name, among: candidates)
    else { return nil }
    return .init(.help, "did you mean '\(best)'?")
  }
}

/// The candidate within a small edit distance of `name`, for "did you mean" notes: a third of
/// the name's length, at least one.
public func closestName(to name: String, among candidates: some Sequence<String>) -> String? {
  Spelling.closest(to: name, among: candidates, limit: max(1, name.count / 3))
}

/// Tracepoint records found so far, by tracepoint name.
private final class RecordCache: Sendable {
  let value = Mutex<[String: BTFTypeID?]>([:])
}

/// Tracepoint categories confirmed one name at a time.
private final class ConfirmedCategories: Sendable {
  let value = Mutex<[String: String]>([:])
}

/// Tracepoint categories, read once, on first use, by whichever thread asks first.
private final class LazyCategories: Sendable {
  private let read: @Sendable () -> [String: String]
  private let loaded = Mutex<[String: String]?>(nil)

  init(_ read: @escaping @Sendable () -> [String: String]) { self.read = read }

  var value: [String: String] {
    loaded.withLock { loaded in
      if let loaded { return loaded }
      let value = read()
      loaded = value
      return value
    }
  }
}
