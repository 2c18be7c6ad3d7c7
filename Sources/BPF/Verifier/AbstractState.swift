/// The abstract machine state the pre-check tracks along one path.

/// What a pointer points into.
enum PointerBase: Hashable, Sendable {
  /// The program's context argument (r1 at entry).
  case context
  /// The 512-byte stack; offsets are relative to r10, so they are negative.
  case stack
  /// A map itself (`CONST_PTR_TO_MAP`), as loaded by `ld_imm64`; index into the map list.
  case mapHandle(Int)
  /// One value of a map.
  case mapValue(map: Int)
  /// A ring buffer reservation of `size` bytes, owned by reference `reference` until it is
  /// submitted or discarded.
  case ringBuffer(size: Int, reference: Int)
  /// A BTF-typed kernel object read from a tracing program's argument `argument`.
  case kernel(argument: Int)
}

/// A pointer, split as the kernel splits it: a constant offset from the start of the object
/// (constants added to the pointer) and a variable offset (unknown numbers added to it).
struct Pointer: Hashable, Sendable {
  var base: PointerBase
  var fixed: Int
  /// Bounds of the sum of unknown numbers added; the constant 0 when there were none.
  var variable: ScalarBounds
  /// Still may be null: a lookup or reservation result, or a kernel pointer, not yet compared
  /// with zero.
  var mayBeNull: Bool
  /// Shared by all copies of one possibly-null value, so that checking one copy checks all.
  var nullID: Int
  /// A lookup in an array map with a constant key inside it, which newer kernels type as not
  /// null (the pre-check still checks the null case, for older ones).
  var foundForSure = false

  init(_ base: PointerBase, fixed: Int = 0, mayBeNull: Bool = false, nullID: Int = 0) {
    self.base = base
    self.fixed = fixed
    self.variable = .constant(0)
    self.mayBeNull = mayBeNull
    self.nullID = nullID
  }

  /// The offset from the start of the object, when no unknown number was added.
  var constantOffset: Int? { variable == .constant(0) ? fixed : nil }

  /// Whether the pointer still points at the start of the object.
  var isUnmoved: Bool { constantOffset == 0 }

  var offsetDescription: String {
    variable == .constant(0) ? "\(fixed)" : "\(fixed) plus a number in \(variable)"
  }

  /// The ring buffer reference this pointer carries, if any.
  var reference: Int? {
    if case .ringBuffer(_, let reference) = base { return reference }
    return nil
  }
}

/// Where a number came from, in the terms that decide what the kernel's verifier knows about
/// it: two numbers of the same origin are the same to the kernel (the same bounds and known
/// bits), because the kernel computes what it knows from the same operations on the same
/// inputs. Numbers of different origins may still be the same to it; the pre-check then
/// assumes they are not, which only makes it count more work for the kernel.
enum Origin: Hashable, Sendable {
  /// A known number: the kernel knows it exactly, whatever produced it.
  case constant(UInt64)
  /// A number of `bytes` bytes loaded from memory the verifier does not follow (a map value,
  /// a ring buffer record, a kernel object, the context), zero-extended.
  case loaded(bytes: Int)
  /// An entry of the checker's table of derivations (`ProgramChecker.Derivation`), or a
  /// number of its own (a helper's result).
  case derived(Int)
}

/// What a register or a spilled stack slot holds.
enum Value: Hashable, Sendable {
  case uninitialized
  /// A number; `link` is shared by copies of one unknown number so that a comparison
  /// narrowing one copy narrows all (0: no copies).
  case scalar(ScalarBounds, link: Int, origin: Origin)
  case pointer(Pointer)
  /// Ring buffer memory that was submitted or discarded: any further use is refused.
  case released

  static func constant(_ value: UInt64) -> Value { .scalar(.constant(value), link: 0, origin: .constant(value)) }

  /// A number loaded from untracked memory: any value of `bytes` bytes.
  static func loaded(bytes: Int) -> Value {
    .scalar(.fitting(bytes: bytes), link: 0, origin: .loaded(bytes: min(bytes, 8)))
  }

  var pointer: Pointer? {
    if case .pointer(let pointer) = self { return pointer }
    return nil
  }

  var bounds: ScalarBounds? {
    if case .scalar(let bounds, _, _) = self { return bounds }
    return nil
  }

  var origin: Origin? {
    if case .scalar(_, _, let origin) = self { return origin }
    return nil
  }
}

/// One 8-byte stack slot: either a register saved whole (so it can be restored with its
/// type), or loose bytes of which only initialisation is tracked.
enum StackSlot: Hashable, Sendable {
  /// Bit `i` set: byte `i` of the slot (counting from its lowest address) was written.
  case bytes(initialized: UInt8)
  case spill(Value)

  static let empty = StackSlot.bytes(initialized: 0)
}

struct AbstractState: Hashable, Sendable {
  static let stackSize = 512
  static let slotCount = stackSize / 8

  var registers: [Value]
  var stack: [StackSlot]
  /// Outstanding ring buffer reservations: reference id to the instruction index that made it.
  var references: [Int: Int]
  /// For each stack slot, what was written to it in the terms the kernel's state comparison
  /// sees (`ProgramChecker.Derivation`), 0 when nothing was: equal histories hold the same
  /// to the kernel. `stackShapes` is the same without the numbers' values, which is all the
  /// kernel compares in a slot whose value it was never asked to be exact about.
  var stackHistories: [Int]
  var stackShapes: [Int]

  /// The state at program entry: r1 is the context, r10 the frame pointer.
  static var entry: AbstractState {
    var registers = Array(repeating: Value.uninitialized, count: 11)
    registers[1] = .pointer(Pointer(.context))
    registers[10] = .pointer(Pointer(.stack))
    return AbstractState(
      registers: registers, stack: Array(repeating: .empty, count: slotCount), references: [:],
      stackHistories: Array(repeating: 0, count: slotCount), stackShapes: Array(repeating: 0, count: slotCount))
  }

  subscript(register: Register) -> Value {
    get { registers[Int(register.index)] }
    set { registers[Int(register.index)] = newValue }
  }

  /// Applies `transform` to every register and spilled slot.
  mutating func updateAllValues(_ transform: (Value) -> Value) {
    for index in registers.indices { registers[index] = transform(registers[index]) }
    for index in stack.indices {
      if case .spill(let value) = stack[index] { stack[index] = .spill(transform(value)) }
    }
  }
}

// MARK: - Stack addressing

extension AbstractState {
  /// Slot index and byte position of the stack byte at `offset` (negative, relative to r10).
  static func position(ofStackOffset offset: Int) -> (slot: Int, byte: Int) {
    let slot = (-offset - 1) / 8
    return (slot, offset + 8 * (slot + 1))
  }

  /// The first stack offset in `range` (`offset..<offset+size`) that was never written, or nil.
  func firstUninitializedStackByte(offset: Int, size: Int) -> Int? {
    for byteOffset in offset..<(offset + size) {
      let (slot, byte) = Self.position(ofStackOffset: byteOffset)
      switch stack[slot] {
      case .spill: continue
      case .bytes(let initialized):
        if initialized & (1 << byte) == 0 { return byteOffset }
      }
    }
    return nil
  }

  /// Marks `offset..<offset+size` as holding plain bytes; saved registers the range
  /// touches lose their type, their other bytes stay initialised.
  mutating func markStackWritten(offset: Int, size: Int) {
    for byteOffset in offset..<(offset + size) {
      let (slot, byte) = Self.position(ofStackOffset: byteOffset)
      switch stack[slot] {
      case .spill:
        stack[slot] = .bytes(initialized: 0xff)
      case .bytes(let initialized):
        stack[slot] = .bytes(initialized: initialized | (1 << byte))
      }
    }
  }
}

// MARK: - Identities

/// Matches the identities (null-check ids, scalar links, references) of one state to those of
/// another; each must correspond one-to-one, as in the kernel's state comparison.
struct IdentityMap {
  private var forward: [Int: Int] = [:]
  private var backward: [Int: Int] = [:]

  mutating func match(_ old: Int, _ new: Int) -> Bool {
    if old == 0 || new == 0 { return old == new }
    if let mapped = forward[old] { return mapped == new }
    if let mapped = backward[new] { return mapped == old }
    forward[old] = new
    backward[new] = old
    return true
  }

  func mapped(_ old: Int) -> Int? { forward[old] }

  func isMappedTo(_ new: Int) -> Bool { backward[new] != nil }
}

extension AbstractState {
  /// Whether both states hold the same reservations: those a pointer of each holds are
  /// matched through those pointers, and the rest (which nothing can release any more) by
  /// the instruction that made them.
  func referencesMatch(_ other: AbstractState, _ ids: IdentityMap) -> Bool {
    guard references.count == other.references.count else { return false }
    var ids = ids
    for (reference, _) in references.sorted(by: { $0.key < $1.key }) {
      if let mapped = ids.mapped(reference) {
        guard other.references[mapped] != nil else { return false }
      }
    }
    for (reference, site) in references.sorted(by: { $0.key < $1.key }) where ids.mapped(reference) == nil {
      let candidate = other.references.sorted(by: { $0.key < $1.key }).first { candidate in
        candidate.value == site && !ids.isMappedTo(candidate.key)
      }
      guard let candidate, ids.match(reference, candidate.key) else { return false }
    }
    return true
  }
}
