/// What a code generator attaches to each instruction to find, later, the construct that
/// produced it (a spec range, for swtrace's). The instruction set never looks inside it: it
/// only carries it, so a verifier rejection or a listing line can be mapped back by the layer
/// that made the program.
public struct SourceTag: Hashable, Sendable {
  public var rawValue: UInt64
  public init(rawValue: UInt64) { self.rawValue = rawValue }
}

/// A jump target that is bound to a position later; forward jumps are resolved by `finish()`.
public struct Label: Hashable, Sendable {
  fileprivate let id: Int
}

/// A finished program: instructions, and for each the tag of what it was generated from.
public struct Program: Hashable, Sendable {
  public var instructions: [Instruction]
  /// Parallel to `instructions`: the tag of the construct each instruction came from.
  public var sourceTags: [SourceTag?]

  public init(instructions: [Instruction], sourceTags: [SourceTag?]? = nil) {
    self.instructions = instructions
    self.sourceTags = sourceTags ?? Array(repeating: nil, count: instructions.count)
  }

  /// The kernel encoding of the whole program.
  public func encoded() -> [RawInstruction] { instructions.flatMap { $0.encoded() } }

  /// Instruction slots as the kernel counts them (`ld_imm64` takes two).
  public var slotCount: Int { instructions.reduce(0) { $0 + $1.slotCount } }
}

public enum AssemblerError: Error, Hashable, Sendable {
  case unboundLabel
  case jumpTooFar(from: Int, to: Int)
}

/// Builds a `Program` with symbolic labels. Every emitted instruction is tagged with
/// `currentTag`, so the verifier pre-check can blame the construct it came from.
public struct Assembler: Sendable {
  private enum Item: Sendable {
    case instruction(Instruction, SourceTag?)
    case jump(JumpCondition?, Register, Operand, Label, jump32: Bool, SourceTag?)
  }
  private var items: [Item] = []
  private var labelPositions: [Int: Int] = [:]  // label id -> item index
  private var nextLabel = 0
  public var currentTag: SourceTag?

  public init() {}

  public mutating func newLabel() -> Label {
    defer { nextLabel += 1 }
    return Label(id: nextLabel)
  }

  public mutating func bind(_ label: Label) {
    labelPositions[label.id] = items.count
  }

  public mutating func emit(_ instruction: Instruction) {
    items.append(.instruction(instruction, currentTag))
  }

  public mutating func emit(_ instructions: [Instruction]) {
    for instruction in instructions { emit(instruction) }
  }

  /// Unconditional jump.
  public mutating func jump(to label: Label) {
    items.append(.jump(nil, .r0, .immediate(0), label, jump32: false, currentTag))
  }

  /// `if dst <cond> operand goto label`
  public mutating func jump(
    if condition: JumpCondition, _ dst: Register, _ operand: Operand, to label: Label,
    jump32: Bool = false
  ) {
    items.append(.jump(condition, dst, operand, label, jump32: jump32, currentTag))
  }

  /// Number of items emitted so far (each is one instruction).
  public var count: Int { items.count }

  /// Drops what no path from the first instruction reaches (the kernel refuses programs with
  /// unreachable instructions), and jumps to the instruction right after them, until neither
  /// is left. Code generated for a condition known at compile time leaves such code behind,
  /// wherever the constant sits in an expression. Programs with jumps emitted as raw
  /// instructions (with offsets rather than labels) are left as they are.
  public mutating func removeUnreachableCode() {
    let hasRawJumps = items.contains { item in
      guard case .instruction(let instruction, _) = item else { return false }
      switch instruction {
      case .jump, .jumpIf, .jumpIf32, .callLocal: return true
      default: return false
      }
    }
    guard !hasRawJumps, !items.isEmpty else { return }
    while true {
      // The item each label points at; a label bound at the end points past the last item.
      let positions = labelPositions
      let target = { (label: Label) -> Int? in positions[label.id] }
      var reachable = Array(repeating: false, count: items.count)
      var pending = [0]
      while let index = pending.popLast() {
        guard index < items.count, !reachable[index] else { continue }
        reachable[index] = true
        switch items[index] {
        case .instruction(.exit, _):
          break
        case .instruction:
          pending.append(index + 1)
        case .jump(let condition, _, _, let label, _, _):
          if let destination = target(label) { pending.append(destination) }
          if condition != nil { pending.append(index + 1) }
        }
      }
      // A reachable jump to the next reachable item does nothing.
      var removed = reachable.map { !$0 }
      for index in items.indices where reachable[index] {
        guard case .jump(_, _, _, let label, _, _) = items[index], let destination = target(label) else { continue }
        let next = (index + 1..<items.count).first { reachable[$0] } ?? items.count
        if destination >= index + 1 && destination <= next && (index + 1..<destination).allSatisfy({ !reachable[$0] }) {
          removed[index] = true
        }
      }
      guard removed.contains(true) else { return }
      // New position of each old one: a removed item's labels move to the next kept item.
      var newPosition = Array(repeating: 0, count: items.count + 1)
      var kept = 0
      for index in items.indices {
        newPosition[index] = kept
        if !removed[index] { kept += 1 }
      }
      newPosition[items.count] = kept
      items = items.indices.filter { !removed[$0] }.map { items[$0] }
      labelPositions = labelPositions.mapValues { newPosition[$0] }
    }
  }

  public func finish() throws(AssemblerError) -> Program {
    // Slot position of each item, since ld_imm64 takes two slots.
    var slotOfItem: [Int] = []
    var slot = 0
    for item in items {
      slotOfItem.append(slot)
      if case .instruction(let instruction, _) = item { slot += instruction.slotCount } else { slot += 1 }
    }
    slotOfItem.append(slot)
    var instructions: [Instruction] = []
    var tags: [SourceTag?] = []
    for (index, item) in items.enumerated() {
      switch item {
      case .instruction(let instruction, let tag):
        instructions.append(instruction)
        tags.append(tag)
      case .jump(let condition, let dst, let operand, let label, let jump32, let tag):
        guard let target = labelPositions[label.id] else { throw .unboundLabel }
        let delta = slotOfItem[target] - (slotOfItem[index] + 1)
        guard let offset = Int16(exactly: delta) else {
          throw .jumpTooFar(from: index, to: target)
        }
        if let condition {
          instructions.append(
            jump32
              ? .jumpIf32(condition, dst, operand, offset: offset)
              : .jumpIf(condition, dst, operand, offset: offset))
        } else {
          instructions.append(.jump(offset: offset))
        }
        tags.append(tag)
      }
    }
    return Program(instructions: instructions, sourceTags: tags)
  }
}
