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

/// What a register or a spilled stack slot holds.
enum Value: Hashable, Sendable {
  case uninitialized
  /// A number; `link` is shared by copies of one unknown number so that a comparison
  /// narrowing one copy narrows all (0: no copies).
  case scalar(ScalarBounds, link: Int)
  case pointer(Pointer)
  /// Ring buffer memory that was submitted or discarded: any further use is refused.
  case released
  /// Different kinds of value on paths the pre-check merged: any use is refused.
  case conflicting

  static func number(_ bounds: ScalarBounds) -> Value { .scalar(bounds, link: 0) }
  static func constant(_ value: UInt64) -> Value { .scalar(.constant(value), link: 0) }
  static let unknownNumber = Value.scalar(.unknown, link: 0)

  var pointer: Pointer? {
    if case .pointer(let pointer) = self { return pointer }
    return nil
  }

  var bounds: ScalarBounds? {
    if case .scalar(let bounds, _) = self { return bounds }
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

  /// The state at program entry: r1 is the context, r10 the frame pointer.
  static var entry: AbstractState {
    var registers = Array(repeating: Value.uninitialized, count: 11)
    registers[1] = .pointer(Pointer(.context))
    registers[10] = .pointer(Pointer(.stack))
    return AbstractState(
      registers: registers, stack: Array(repeating: .empty, count: slotCount), references: [:])
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

// MARK: - Pruning and merging

/// Matches the identities (null-check ids, scalar links, references) of one state to those of
/// another; each must correspond one-to-one, as in the kernel's state comparison.
private struct IdentityMap {
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
  /// Forgets registers that are not in `live`: nothing reads them before writing them, and
  /// forgetting them lets states that differ only there be recognised as the same.
  mutating func forget(allBut live: RegisterSet) {
    for index in 0..<10 where !live.contains(index) { registers[index] = .uninitialized }
  }

  /// Whether every behaviour possible from `new` is possible from `self`, so that checking
  /// `self` also checks `new`.
  func covers(_ new: AbstractState) -> Bool {
    var ids = IdentityMap()
    var links = IdentityMap()
    for index in 0..<11 {
      guard Self.value(registers[index], covers: new.registers[index], &ids, &links) else { return false }
    }
    for index in stack.indices {
      switch (stack[index], new.stack[index]) {
      case (.bytes(let old), .bytes(let current)):
        // A byte unwritten in `self` makes reading it an error there.
        guard old & current == old else { return false }
      case (.bytes(let old), .spill(let value)):
        // Reading the slot gives a number in `self`; here it must give a number too.
        guard case .scalar = value else {
          guard old == 0 else { return false }
          continue
        }
      case (.spill(let old), .spill(let current)):
        guard Self.value(old, covers: current, &ids, &links) else { return false }
      case (.spill(let old), .bytes):
        guard old == .conflicting else { return false }
      }
    }
    return referencesMatch(new, ids)
  }

  /// Whether both states hold the same reservations: those a pointer of each holds are
  /// matched through those pointers, and the rest (which nothing can release any more) by
  /// the instruction that made them, so that states differing in nothing else still merge.
  private func referencesMatch(_ other: AbstractState, _ ids: IdentityMap) -> Bool {
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

  private static func value(
    _ old: Value, covers new: Value, _ ids: inout IdentityMap, _ links: inout IdentityMap
  ) -> Bool {
    switch (old, new) {
    case (.uninitialized, _), (.conflicting, _):
      // Reading it is an error in `self`, so if `self` passes, nothing reads it.
      return true
    case (.scalar(let oldBounds, let oldLink), .scalar(let newBounds, let newLink)):
      guard oldBounds.contains(newBounds) else { return false }
      // A link narrows values together; links of `self` must exist in `new` too.
      return oldLink == 0 || links.match(oldLink, newLink)
    case (.pointer(let o), .pointer(let n)):
      guard o.mayBeNull == n.mayBeNull, ids.match(o.nullID, n.nullID) else { return false }
      guard o.fixed == n.fixed else { return false }
      switch (o.base, n.base) {
      case (.mapValue(let a), .mapValue(let b)):
        return a == b && o.variable.contains(n.variable)
      case (.ringBuffer(let sizeA, let refA), .ringBuffer(let sizeB, let refB)):
        return sizeA == sizeB && ids.match(refA, refB) && o.variable.contains(n.variable)
      default:
        return o.base == n.base && o.variable == n.variable
      }
    case (.released, .released):
      return true
    default:
      return false
    }
  }

  /// A state allowing everything `a` or `b` allows: numbers are widened to cover both.
  /// Without `lossy`, nil unless both hold the same kinds of values everywhere; with it,
  /// mismatched values become `.conflicting`. Nil when the outstanding references differ.
  static func merged(_ a: AbstractState, _ b: AbstractState, lossy: Bool) -> AbstractState? {
    var ids = IdentityMap()
    var links = IdentityMap()
    var result = a
    for index in 0..<11 {
      guard let value = merge(a.registers[index], b.registers[index], &ids, &links, lossy: lossy)
      else { return nil }
      result.registers[index] = value
    }
    for index in a.stack.indices {
      switch (a.stack[index], b.stack[index]) {
      case (.bytes(let x), .bytes(let y)):
        result.stack[index] = .bytes(initialized: x & y)
      case (.spill(let x), .spill(let y)):
        guard let value = merge(x, y, &ids, &links, lossy: lossy) else { return nil }
        result.stack[index] = .spill(value)
      case (.spill(let value), .bytes(let mask)), (.bytes(let mask), .spill(let value)):
        if case .scalar = value {
          result.stack[index] = .bytes(initialized: mask)
        } else if mask == 0 {
          result.stack[index] = .empty
        } else if lossy {
          result.stack[index] = .spill(.conflicting)
        } else {
          return nil
        }
      }
    }
    guard a.referencesMatch(b, ids) else { return nil }
    return result
  }

  private static func merge(
    _ a: Value, _ b: Value, _ ids: inout IdentityMap, _ links: inout IdentityMap, lossy: Bool
  ) -> Value? {
    switch (a, b) {
    case (.uninitialized, _), (_, .uninitialized):
      return .uninitialized
    case (.conflicting, _), (_, .conflicting):
      return lossy ? .conflicting : nil
    case (.scalar(let x, let linkA), .scalar(let y, let linkB)):
      let hull = x.hull(y)
      // A link survives only where both states link the same registers.
      let link = linkA != 0 && links.match(linkA, linkB) ? linkA : 0
      return .scalar(hull, link: link)
    case (.pointer(let p), .pointer(let q)):
      if p.mayBeNull == q.mayBeNull, p.fixed == q.fixed, ids.match(p.nullID, q.nullID) {
        var merged = p
        merged.variable = p.variable.hull(q.variable)
        switch (p.base, q.base) {
        case (.mapValue(let x), .mapValue(let y)) where x == y:
          return .pointer(merged)
        case (.ringBuffer(let sizeA, let refA), .ringBuffer(let sizeB, let refB))
        where sizeA == sizeB && ids.match(refA, refB):
          return .pointer(merged)
        default:
          if p.base == q.base && p.variable == q.variable { return .pointer(p) }
        }
      }
      return lossy ? .conflicting : nil
    case (.released, .released):
      return .released
    default:
      return lossy ? .conflicting : nil
    }
  }
}

/// A set of registers r0-r10 as a bit mask.
struct RegisterSet: Hashable, Sendable {
  var bits: UInt16 = 0

  static let all = RegisterSet(bits: 0x7ff)
  static let callerSaved = RegisterSet(bits: 0b11_1111)  // r0-r5

  init(bits: UInt16) { self.bits = bits }
  init(_ registers: [Register]) {
    for register in registers { bits |= 1 << UInt16(register.index) }
  }

  func contains(_ index: Int) -> Bool { bits & (1 << UInt16(index)) != 0 }
  func union(_ other: RegisterSet) -> RegisterSet { RegisterSet(bits: bits | other.bits) }
  func subtracting(_ other: RegisterSet) -> RegisterSet { RegisterSet(bits: bits & ~other.bits) }
}
