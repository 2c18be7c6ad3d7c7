import BPF
import Sema
import SwtraceSyntax

/// A read of kernel memory that can be reused: `size` bytes at `base + offset`, where `base`
/// is a pure expression (no variables, map lookups or clocks) with its source ranges
/// stripped, so the same field written twice in a spec is one key.
struct KernelRead: Hashable {
  var base: TypedExpr
  var offset: Int
  var size: Int
  /// A NUL-terminated string of at most `size` bytes, in a slot zero-filled to a multiple
  /// of 8 bytes, rather than `size` raw bytes.
  var isString: Bool

  /// The read behind a `.load` or `.loadString` expression, or nil when its address is not
  /// a pure expression.
  init?(base: TypedExpr, offset: Int, size: Int, isString: Bool = false) {
    guard let pure = base.strippedOfRanges() else { return nil }
    self.base = pure
    self.offset = offset
    self.size = size
    self.isString = isString
  }
}

extension TypedExpr {
  private static let noRange = SourceRange(0, 0)

  /// This expression with every source range blanked, or nil when it may have a different
  /// value at two points of one program run (it reads a variable, a map or the clock).
  func strippedOfRanges() -> TypedExpr? {
    func strip(_ expression: TypedExpr) -> TypedExpr? { expression.strippedOfRanges() }
    let kind: Kind
    switch self.kind {
    case .integer, .string, .skb, .argument, .returnValue, .bytes, .packet, .afterHandOver, .record, .registerArgument:
      kind = self.kind
    case .builtin, .variable, .mapLookup, .mapHasKey:
      return nil
    case .load(let base, let offset, let size, let bitfield):
      guard let base = strip(base) else { return nil }
      kind = .load(base: base, offset: offset, size: size, bitfield: bitfield)
    case .loadString(let base, let offset, let capacity):
      guard let base = strip(base) else { return nil }
      kind = .loadString(base: base, offset: offset, capacity: capacity)
    case .unary(let op, let operand):
      guard let operand = strip(operand) else { return nil }
      kind = .unary(op, operand)
    case .binary(let op, let lhs, let rhs):
      guard let lhs = strip(lhs), let rhs = strip(rhs) else { return nil }
      kind = .binary(op, lhs, rhs)
    case .select(let condition, let value, let otherwise):
      guard let condition = strip(condition), let value = strip(value), let otherwise = strip(otherwise) else {
        return nil
      }
      kind = .select(condition: condition, value: value, otherwise: otherwise)
    case .networkToHost(let operand, let bits):
      guard let operand = strip(operand) else { return nil }
      kind = .networkToHost(operand, bits: bits)
    case .prefixMatch(let operand, let network, let length):
      guard let operand = strip(operand) else { return nil }
      kind = .prefixMatch(operand, network: network, prefixLength: length)
    case .convert(let operand, let bytes, let signed):
      guard let operand = strip(operand) else { return nil }
      kind = .convert(operand, bytes: bytes, signed: signed)
    case .optional(let present, let value):
      guard let present = strip(present), let value = strip(value) else { return nil }
      kind = .optional(present: present, value: value)
    case .eitherFamily(let isIPv4, let v4, let v6):
      guard let isIPv4 = strip(isIPv4), let v4 = strip(v4), let v6 = strip(v6) else { return nil }
      kind = .eitherFamily(isIPv4: isIPv4, v4: v4, v6: v6)
    }
    return TypedExpr(kind, type: type, range: Self.noRange)
  }
}

/// The assembler, plus which kernel reads already sit in which stack slots on every path
/// that reaches the next instruction, so that a field read twice is read from the kernel once.
///
/// The set follows the control flow as it is emitted: a jump carries the set to its label,
/// binding a label keeps only what every path into it has, and nothing is known after an
/// unconditional jump or exit until the next label. A slot the set holds is not given back
/// to the allocator (`ProgramBuilder.releaseSlots`), and one given back is forgotten
/// everywhere first, so a recorded slot keeps its value.
struct CodeEmitter {
  private var assembler = Assembler()
  /// Reads available at the current point; nil where the code is unreachable.
  private(set) var available: [KernelRead: Slot]? = [:]
  /// For each label not yet bound: what the jumps to it so far have in common.
  private var atLabel: [Label: [KernelRead: Slot]] = [:]

  /// The spec range the instructions emitted next come from.
  var currentRange: SourceRange? {
    get { assembler.currentTag.map(SourceRange.init) }
    set { assembler.currentTag = newValue?.tag }
  }

  mutating func newLabel() -> Label { assembler.newLabel() }

  mutating func bind(_ label: Label) {
    assembler.bind(label)
    let incoming = atLabel.removeValue(forKey: label)
    switch (available, incoming) {
    case (let fallingThrough?, let jumpedTo?): available = Self.common(fallingThrough, jumpedTo)
    case (nil, let jumpedTo): available = jumpedTo
    case (let fallingThrough?, nil): available = fallingThrough
    }
  }

  mutating func emit(_ instruction: Instruction) {
    assembler.emit(instruction)
    if case .exit = instruction { available = nil }
  }

  mutating func jump(to label: Label) {
    assembler.jump(to: label)
    carry(to: label)
    available = nil
  }

  mutating func jump(
    if condition: JumpCondition, _ dst: Register, _ operand: Operand, to label: Label, jump32: Bool = false
  ) {
    assembler.jump(if: condition, dst, operand, to: label, jump32: jump32)
    carry(to: label)
  }

  /// Whether some path reaches the next instruction: false after an unconditional jump or an
  /// exit, until a label that is jumped to is bound.
  var isReachable: Bool { available != nil }

  /// The slot holding `read` on every path to here, if any.
  func slot(of read: KernelRead) -> Slot? { available?[read] }

  /// Records that `read` now sits in `slot`.
  mutating func remember(_ read: KernelRead, at slot: Slot) {
    available?[read] = slot
  }

  /// The slots reads available here sit in: they must keep their values.
  var rememberedSlots: Set<Slot> { available.map { Set($0.values) } ?? [] }

  /// Forgets every read held in `slot`, here and at every label not yet bound: the slot is
  /// about to be given back and written with something else.
  mutating func forget(_ slot: Slot) {
    available = available?.filter { $0.value != slot }
    atLabel = atLabel.mapValues { $0.filter { $0.value != slot } }
  }

  func finish() throws(AssemblerError) -> Program {
    var assembler = assembler
    assembler.removeUnreachableCode()
    return try assembler.finish()
  }

  private mutating func carry(to label: Label) {
    guard let available else { return }
    atLabel[label] = atLabel[label].map { Self.common($0, available) } ?? available
  }

  private static func common(_ a: [KernelRead: Slot], _ b: [KernelRead: Slot]) -> [KernelRead: Slot] {
    a.filter { b[$0.key] == $0.value }
  }
}
