public import SwtraceSyntax

// The public surface of the verifier pre-check, shared with code generation and the runtime.
// (Defined up front so code generation can be written against it; Verifier.swift implements it.)

public enum MapKind: Sendable, Hashable { case hash, array, perCPUHash, perCPUArray, ringBuffer, lruHash }

/// A map as the program sees it; `maps[i]` of a program is the map whose index `i` appears in
/// its `ld_imm64` map-fd instructions until the runtime patches in real descriptors.
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

/// What r1 points at when the program starts, per program type.
public enum ProgramContext: Sendable, Hashable {
  /// tp_btf / fentry / fexit: r1 points at an array of `argumentCount` u64 arguments; loading the
  /// arguments whose index is in `kernelPointerArguments` (8-byte loads at offset 8*i) yields a
  /// BTF-typed kernel pointer (maybe null) that may be dereferenced with plain loads.
  case tracing(argumentCount: Int, kernelPointerArguments: Set<Int>)
  /// kprobe: r1 points at `struct pt_regs` (168 bytes on x86_64), read-only.
  case kprobe
  /// raw_tracepoint: r1 points at u64 args[argumentCount], read-only scalars.
  case rawTracepoint(argumentCount: Int)
  /// socket filter: r1 is struct __sk_buff.
  case socketFilter
}

/// Why the pre-check refuses a program, pointing at the spec construct responsible.
public struct VerifierRejection: Error, Sendable, Hashable {
  public var instructionIndex: Int
  public var sourceRange: SourceRange?
  public var message: String
  public var hint: String?
  public init(instructionIndex: Int, sourceRange: SourceRange?, message: String, hint: String?) {
    self.instructionIndex = instructionIndex
    self.sourceRange = sourceRange
    self.message = message
    self.hint = hint
  }
}
