/// The kinds of map swtrace creates.
public enum MapKind: Sendable, Hashable {
  case hash, array, perCPUHash, perCPUArray, ringBuffer, lruHash
  /// One perf ring per CPU, written by `bpf_skb_output` (packet captures).
  case perfEventArray
  /// Kernel stacks by id, written by `bpf_get_stackid` (`kstack`).
  case stackTrace
}

/// What the verifier pre-check needs to know about one map.
public struct MapDescription: Sendable, Hashable {
  public var name: String
  public var kind: MapKind
  public var keySize: Int
  public var valueSize: Int
  public var maxEntries: Int

  public init(name: String, kind: MapKind, keySize: Int, valueSize: Int, maxEntries: Int) {
    self.name = name
    self.kind = kind
    self.keySize = keySize
    self.valueSize = valueSize
    self.maxEntries = maxEntries
  }
}

/// The program type and attach point, as far as they decide what r1 points to at entry,
/// which helpers exist, and which return values are allowed.
public enum ProgramContext: Sendable, Hashable {
  /// tp_btf / fentry / fexit: r1 points at an array of `argumentCount` u64 arguments; loading the
  /// arguments whose index is in `kernelPointerArguments` (8-byte loads at offset 8*i) yields a
  /// BTF-typed kernel pointer (maybe null) that may be dereferenced with plain loads of any size
  /// at any offset (the kernel turns them into fault-handled loads; results are scalars; storing through them is forbidden).
  ///
  /// The pre-check requires a null check before the first dereference: the kernel marks some
  /// tracepoint arguments as nullable and then rejects unchecked dereferences, and which ones
  /// it marks is not visible from BTF.
  case tracing(argumentCount: Int, kernelPointerArguments: Set<Int>)
  /// kprobe: r1 points at `struct pt_regs` (168 bytes on x86_64), read-only, 8-byte aligned reads.
  case kprobe
  /// raw_tracepoint: r1 points at u64 args[argumentCount], read-only scalars.
  case rawTracepoint(argumentCount: Int)
  /// socket filter: r1 is struct __sk_buff (reads of the plain u32 fields before `tc_classid`).
  case socketFilter
  /// classic tracepoint (perf event): r1 points at the record the tracepoint wrote, read-only,
  /// reads aligned to their size within the kernel's largest record (`PERF_MAX_TRACE_SIZE`).
  case tracepointRecord
}

/// Why the pre-check expects the kernel verifier to refuse a program.
public struct VerifierRejection: Error, Sendable, Hashable, CustomStringConvertible {
  /// Index into `Program.instructions` (and `Program.sourceTags`).
  public var instructionIndex: Int
  /// The same instruction as the kernel and `Disassembler` number it: by slot, where
  /// `ld_imm64` counts twice. Messages use this number.
  public var slot: Int
  /// The tag of the construct the instruction was generated from.
  public var sourceTag: SourceTag?
  /// What the program does wrong, in plain words.
  public var message: String
  /// What to change so the kernel accepts the program.
  public var hint: String?

  public init(
    instructionIndex: Int, slot: Int? = nil, sourceTag: SourceTag? = nil, message: String,
    hint: String? = nil
  ) {
    self.instructionIndex = instructionIndex
    self.slot = slot ?? instructionIndex
    self.sourceTag = sourceTag
    self.message = message
    self.hint = hint
  }

  public var description: String {
    "instruction \(slot): \(message)" + (hint.map { " (hint: \($0))" } ?? "")
  }
}

/// A pre-check of generated programs against the rules of the kernel's eBPF verifier.
///
/// It interprets the program abstractly along every path of its control-flow graph, tracking
/// what each register and stack byte holds, and reports what the kernel would refuse, in terms
/// of the spec. It is deliberately stricter than the kernel where the two differ: a program it
/// accepts must also be accepted by the kernel (running as root), while a program the kernel
/// would accept may occasionally be refused here.
public enum Verifier {
  /// Checks `program`. An empty result means the program is expected to load.
  /// `maps[i]` is the map whose index `i` the `ld_imm64` map instructions hold.
  public static func check(
    _ program: Program, context: ProgramContext, maps: [MapDescription],
    kernelObjects: [Int: KernelObjectLayout] = [:]
  ) -> [VerifierRejection] {
    analyze(program, context: context, maps: maps, kernelObjects: kernelObjects).rejections
  }

  /// Checks `program` and says how much work the kernel's verifier will do on it.
  public static func analyze(
    _ program: Program, context: ProgramContext, maps: [MapDescription],
    kernelObjects: [Int: KernelObjectLayout] = [:]
  ) -> VerifierReport {
    let checker = ProgramChecker(program: program, context: context, maps: maps, kernelObjects: kernelObjects)
    let rejections = checker.run()
    return VerifierReport(
      rejections: rejections, processedInstructions: checker.processedInstructions,
      exceededComplexity: checker.exceededComplexity)
  }
}

/// The pre-check's verdict on a program and its estimate of the kernel's work.
public struct VerifierReport: Sendable, Hashable {
  /// Empty when the program is expected to load.
  public var rejections: [VerifierRejection]
  /// Instructions the kernel's verifier processes (its `insn_processed`, reported as
  /// "processed N insns" and in `bpf_prog_info.verified_insns`), as the pre-check counts
  /// them: at least as many as the kernel, for a program the pre-check accepts.
  public var processedInstructions: Int
  /// Whether the program is refused for the kernel's verification cost.
  public var exceededComplexity: Bool
}

extension PointerBase {
  var isKernel: Bool {
    if case .kernel = self { return true }
    return false
  }
}
