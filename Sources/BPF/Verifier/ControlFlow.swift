/// The static control-flow graph: slot numbering, jump targets, and the structural rules the
/// kernel checks before interpreting anything.
struct ControlFlow {
  /// Slot of each instruction, plus the total slot count at the end.
  let slotOfIndex: [Int]
  /// Successor instruction indices of each instruction (empty for `exit`).
  private(set) var successors: [[Int]] = []
  /// Reachable instructions ordered so that every edge goes forward: when an instruction
  /// comes up, all paths into it have been followed.
  private(set) var topologicalOrder: [Int] = []
  /// Structural problems, by instruction index.
  private(set) var problems: [(index: Int, problem: Problem)] = []

  private let instructions: [Instruction]

  init(_ instructions: [Instruction]) {
    self.instructions = instructions
    var slots: [Int] = []
    var slot = 0
    for instruction in instructions {
      slots.append(slot)
      slot += instruction.slotCount
    }
    slots.append(slot)
    slotOfIndex = slots
    buildEdges()
    guard problems.isEmpty else { return }
    let order = searchFromEntry()
    guard problems.isEmpty else { return }
    topologicalOrder = order.reversed()
  }

  /// The instruction index that starts at `slot`, or nil inside `ld_imm64` or out of range.
  func index(ofSlot slot: Int) -> Int? {
    guard slot >= 0, slot < slotOfIndex.last! else { return nil }
    // Binary search: slots are increasing.
    var low = 0
    var high = instructions.count - 1
    while low <= high {
      let mid = (low + high) / 2
      if slotOfIndex[mid] == slot { return mid }
      if slotOfIndex[mid] < slot { low = mid + 1 } else { high = mid - 1 }
    }
    return nil
  }

  /// The instruction a jump at `index` with `offset` lands on (the caller made sure it exists).
  func target(of index: Int, offset: Int16) -> Int {
    self.index(ofSlot: slotOfIndex[index] + 1 + Int(offset))!
  }

  private mutating func buildEdges() {
    let totalSlots = slotOfIndex.last!
    for (index, instruction) in instructions.enumerated() {
      var next: [Int] = []
      func jump(_ offset: Int16) {
        let targetSlot = slotOfIndex[index] + 1 + Int(offset)
        if let target = self.index(ofSlot: targetSlot) {
          next.append(target)
        } else if targetSlot >= 0 && targetSlot < totalSlots {
          problems.append(
            (index, Problem(
              "jumps to slot \(targetSlot), the second half of the two-slot ld_imm64 at instruction \(targetSlot - 1)",
              hint: "jump offsets count ld_imm64 as two instructions")))
        } else {
          problems.append(
            (index, Problem(
              "jumps to instruction \(targetSlot), outside the program (instructions 0...\(totalSlots - 1))",
              hint: "jump offsets are relative to the next instruction and count ld_imm64 as two")))
        }
      }
      func fallThrough() {
        if index + 1 < instructions.count {
          next.append(index + 1)
        } else {
          problems.append(
            (index, Problem(
              "can continue past the last instruction, which is not exit or an unconditional jump",
              hint: "end every path with exit")))
        }
      }
      switch instruction {
      case .exit:
        break
      case .jump(let offset):
        jump(offset)
      case .jumpIf(_, _, _, let offset), .jumpIf32(_, _, _, let offset):
        fallThrough()
        jump(offset)
      default:
        fallThrough()
      }
      successors.append(next)
    }
  }

  /// Depth-first search from instruction 0 as the kernel does it: reports loops (edges back
  /// to an instruction still on the search path) and instructions no path reaches. Returns
  /// the instructions in post-order.
  private mutating func searchFromEntry() -> [Int] {
    enum Mark { case unvisited, onPath, done }
    var marks = Array(repeating: Mark.unvisited, count: instructions.count)
    var postOrder: [Int] = []
    var stack: [(index: Int, nextSuccessor: Int)] = [(0, 0)]
    marks[0] = .onPath
    while let (index, position) = stack.last {
      if position < successors[index].count {
        stack[stack.count - 1].nextSuccessor += 1
        let successor = successors[index][position]
        switch marks[successor] {
        case .unvisited:
          marks[successor] = .onPath
          stack.append((successor, 0))
        case .onPath:
          problems.append(
            (index, Problem(
              "jumps back to instruction \(slotOfIndex[successor]), forming a loop; loops are not supported",
              hint: "unroll the loop or bound it with a map iteration helper")))
        case .done:
          break
        }
      } else {
        marks[index] = .done
        postOrder.append(index)
        stack.removeLast()
      }
    }
    // Report the first instruction of each unreachable run, as one problem per run.
    var index = 0
    while index < instructions.count {
      if marks[index] == .unvisited {
        let start = index
        while index < instructions.count, marks[index] == .unvisited { index += 1 }
        let first = slotOfIndex[start]
        let last = slotOfIndex[index - 1]
        let what = first == last ? "instruction \(first) is" : "instructions \(first)...\(last) are"
        problems.append(
          (start, Problem(
            "\(what) unreachable: no path from the start of the program leads there, and the kernel refuses unreachable code",
            hint: "remove the dead code or the jump that skips it")))
      } else {
        index += 1
      }
    }
    return postOrder
  }
}

/// A rule violation found at one instruction, before it is tied to a slot and source range.
struct Problem: Error, Hashable, Sendable {
  var message: String
  var hint: String?

  init(_ message: String, hint: String? = nil) {
    self.message = message
    self.hint = hint
  }
}
