import BPF
import Sema
import SwtraceSyntax

/// Loops, unrolled (see `Loop`), and the jumps out of them.
extension ProgramBuilder {
  /// `elapsed`: nanoseconds since swtrace wrote its start time into the start-time map.
  mutating func elapsed() -> Temp {
    let (temp, register) = callForValue(.ktimeGetNanoseconds)
    guard let startTimeMap else { return temp }
    let (startTemp, start) = temps.allocate(&frame, &asm)
    asm.emit(.loadMapValue(start, fd: startTimeMap, offset: 0))
    asm.emit(.load(.double, start, start, offset: 0))
    asm.emit(.alu64(.sub, register, .register(start)))
    temps.free(startTemp, &frame)
    return temp
  }

  /// `iterations` copies of the body. Copy k sets the `for` variable to `start + k`, or tests
  /// the `while` condition, then runs the body; `continue` goes to copy k + 1, `break` past
  /// the last. Each statement of a copy gives its slots back when it is done (`actions`), and
  /// so does the condition once tested, so the copies reuse the same memory; variables have
  /// their slots for the whole clause.
  mutating func unrolled(_ loop: Loop, done: Label) throws(CodeGenError) {
    let end = asm.newLabel()
    var next = asm.newLabel()
    var nextBound = false
    for iteration in 0..<loop.iterations {
      asm.bind(next)
      nextBound = true
      // Every copy so far ended in a `break` or `return`: the rest is never reached.
      guard asm.isReachable else { break }
      next = asm.newLabel()
      nextBound = false
      asm.currentRange = loop.range
      if let counter = loop.counter {
        let value = counter.start &+ UInt64(iteration)
        let slot = variableSlots[counter.slot].slot
        if let small = Int32(exactly: Int64(bitPattern: value)) {
          asm.emit(.storeImmediate(.double, at: slot, small))
        } else {
          let temp = constant(value)
          asm.emit(.store(.double, at: slot, temps.use(temp, &frame, &asm)))
          temps.free(temp, &frame)
        }
      }
      if let condition = loop.condition {
        asm.currentRange = condition.range
        let before = frame.liveSlots
        try branch(condition, ifFalse: end)
        releaseSlots(allocatedAfter: before)
      }
      loopTargets.append((breakTarget: end, continueTarget: next))
      try actions(loop.body, done: done)
      loopTargets.removeLast()
    }
    if !nextBound { asm.bind(next) }
    asm.bind(end)
  }

  /// `break`, `continue`, `return`: a jump to the loop's or the clause's end.
  mutating func jump(_ kind: JumpKind, range: SourceRange) throws(CodeGenError) {
    switch kind {
    case .returnFromClause:
      guard let returnLabel else { throw CodeGenError(message: "'return' outside a clause", range: range) }
      asm.jump(to: returnLabel)
    case .breakLoop, .continueLoop:
      guard let targets = loopTargets.last else {
        throw CodeGenError(message: "'\(kind.rawValue)' outside a loop", range: range)
      }
      asm.jump(to: kind == .breakLoop ? targets.breakTarget : targets.continueTarget)
    }
  }
}
