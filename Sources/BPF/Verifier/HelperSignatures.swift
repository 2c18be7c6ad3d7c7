/// What the pre-check knows about each helper: where it may be called, what its arguments
/// must be and what it returns. Argument kinds follow the kernel's helper prototypes, in some
/// places more strictly (sizes must be positive, flags must be known).

enum HelperArgument: Hashable, Sendable {
  /// A map handle from `ld_imm64`, of one of the given kinds.
  case map(Set<MapKind>)
  /// Points at `keySize` initialised bytes (stack or map value) of the map argument.
  case mapKey
  /// Points at `valueSize` initialised bytes (stack or map value) of the map argument.
  case mapValue
  /// Points at initialised memory the helper reads; its size is the next argument.
  case readableMemory
  /// Points at memory the helper writes (it need not be initialised before when the size is
  /// a constant); its size is the next argument.
  case writableMemory
  /// The size of the preceding memory argument: a number known to be in 1...region size.
  case size
  /// A constant size of memory the helper allocates.
  case constantAllocationSize
  /// Must be the constant 0.
  case zero
  /// Ring buffer submit/discard flags: a constant 0, 1 (no wakeup) or 2 (force wakeup).
  case ringBufferFlags
  /// Anything initialised.
  case anything
  /// The context pointer, unmoved.
  case context
  /// A ring buffer reservation, unmoved and null-checked; the call ends its lifetime.
  case releasedRingBuffer
  /// A BTF-typed kernel object of this struct (such as `struct sk_buff`) from a tracing
  /// program's argument, unmoved and null-checked.
  case kernelObject(String)
}

enum HelperResult: Hashable, Sendable {
  case number
  /// The helper returns nothing: r0 is left uninitialised, as the kernel marks it.
  case none
  case mapValueOrNull
  case ringBufferOrNull
}

struct HelperSignature: Sendable {
  var arguments: [HelperArgument]
  var result: HelperResult

  static let nonRingBufferMaps: Set<MapKind> = [.hash, .array, .perCPUHash, .perCPUArray, .lruHash]

  /// The signature of `helper` in `context`, or why it cannot be called there.
  static func of(_ helper: HelperFunction, in context: ProgramContext) -> Result<HelperSignature, Unavailable> {
    let isSocketFilter = context == .socketFilter
    switch helper {
    case .mapLookupElement:
      return .success(.init(arguments: [.map(nonRingBufferMaps), .mapKey], result: .mapValueOrNull))
    case .mapUpdateElement:
      return .success(
        .init(arguments: [.map(nonRingBufferMaps), .mapKey, .mapValue, .anything], result: .number))
    case .mapDeleteElement:
      return .success(.init(arguments: [.map(nonRingBufferMaps), .mapKey], result: .number))
    case .probeRead, .probeReadString:
      // The old unsuffixed variants exist only for tracing program types.
      if isSocketFilter { return .failure(.notForProgramType) }
      return .success(.init(arguments: [.writableMemory, .size, .anything], result: .number))
    case .probeReadUser, .probeReadKernel, .probeReadUserString, .probeReadKernelString:
      return .success(.init(arguments: [.writableMemory, .size, .anything], result: .number))
    case .ktimeGetNanoseconds, .ktimeGetBootNanoseconds, .getPrandomU32, .getSMPProcessorID,
      .getCurrentPIDTGID, .getCurrentUIDGID, .getCurrentTask, .getCurrentCgroupID:
      return .success(.init(arguments: [], result: .number))
    case .tracePrintk:
      return .success(
        .init(arguments: [.readableMemory, .size, .anything, .anything, .anything], result: .number))
    case .getCurrentComm:
      return .success(.init(arguments: [.writableMemory, .size], result: .number))
    case .perfEventOutput:
      // swtrace writes packets from kprobes into the ring buffer, not through this helper.
      return .failure(.needsUnsupportedMap)
    case .getStackID:
      if isSocketFilter { return .failure(.notForProgramType) }
      return .success(.init(arguments: [.context, .map([.stackTrace]), .anything], result: .number))
    case .skbOutput:
      // The skb argument of a tracing program; kprobes see the skb as a plain number.
      guard case .tracing = context else { return .failure(.notForProgramType) }
      return .success(
        .init(
          arguments: [.kernelObject("struct sk_buff"), .map([.perfEventArray]), .anything, .readableMemory, .size],
          result: .number))
    case .getNetnsCookie:
      guard isSocketFilter else { return .failure(.notForProgramType) }
      return .success(.init(arguments: [.context], result: .number))
    case .getFuncIP:
      switch context {
      case .kprobe:
        return .success(.init(arguments: [.context], result: .number))
      case .tracing:
        // Allowed for fentry/fexit but not tp_btf, which the context does not tell apart.
        return .failure(.onlySomeAttachTypes)
      case .rawTracepoint, .socketFilter, .tracepointRecord:
        return .failure(.notForProgramType)
      }
    case .getAttachCookie:
      // Every kprobe program may ask (0 when the link set none); tracing programs only on
      // some attach types, which the context does not tell apart.
      guard case .kprobe = context else { return .failure(.notForProgramType) }
      return .success(.init(arguments: [.context], result: .number))
    case .ringbufOutput:
      return .success(
        .init(arguments: [.map([.ringBuffer]), .readableMemory, .size, .anything], result: .number))
    case .ringbufReserve:
      return .success(
        .init(arguments: [.map([.ringBuffer]), .constantAllocationSize, .zero], result: .ringBufferOrNull))
    case .ringbufQuery:
      return .success(.init(arguments: [.map([.ringBuffer]), .anything], result: .number))
    case .ringbufSubmit, .ringbufDiscard:
      return .success(.init(arguments: [.releasedRingBuffer, .ringBufferFlags], result: .none))
    }
  }

  enum Unavailable: Error {
    case notForProgramType
    case needsUnsupportedMap
    case onlySomeAttachTypes
  }

  /// Registers a call of `helper` reads, for liveness: its arguments, or all five if unknown.
  static func argumentCount(_ helperID: Int32) -> Int {
    guard let helper = HelperFunction(rawValue: helperID) else { return 5 }
    // The argument list does not depend on the context for any helper that has one.
    for context in [ProgramContext.kprobe, .socketFilter] {
      if case .success(let signature) = of(helper, in: context) { return signature.arguments.count }
    }
    return 5
  }
}

extension ProgramContext {
  /// How messages name the program type.
  var programTypeName: String {
    switch self {
    case .tracing: "tracing (tp_btf/fentry/fexit)"
    case .kprobe: "kprobe"
    case .rawTracepoint: "raw tracepoint"
    case .socketFilter: "socket filter"
    case .tracepointRecord: "tracepoint"
    }
  }
}
