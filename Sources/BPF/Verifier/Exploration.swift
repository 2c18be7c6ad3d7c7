/// The order and amount of work of the kernel's verifier (`do_check` and `is_state_visited`
/// in kernel/bpf/verifier.c), followed step by step, so that the pre-check refuses before
/// loading what the kernel would refuse as too complex, and checks every path the kernel
/// checks.
///
/// The kernel follows one path at a time, depth first: at a conditional jump that can go
/// both ways it saves the jump's target for later and goes on with the next instruction. At
/// some instructions (prune points: conditional jumps, jump targets, the instruction after a
/// call) it compares its state with the states it stored there before, and stops the path
/// when one of them is equivalent; it stores a new one there when it has processed at least 2
/// jumps and 8 instructions since the last it stored, and drops stored states that keep
/// failing to match. A program whose check processes more than 1,000,000 instructions, or
/// has more than 8,192 saved jumps at once, is refused.
///
/// The pre-check does the same with its own states, in the same order and with the same
/// bookkeeping, and counts the same way. Where it cannot tell whether the kernel would see
/// two states as equivalent, it assumes they are not (`StateRelevance`, `Origin`), so it
/// follows at least the kernel's paths. Its count can still come out slightly lower: a path
/// it prunes later than the kernel moves the counters, and with them where later states are
/// stored, and one pruned elsewhere earlier than the kernel's. Hence the refusal a tenth below
/// the kernel's limit; the differential test sees counts within a few percent of the
/// kernel's, and equal on the exponentially costly programs of `VerificationCostKernelTests`.
extension ProgramChecker {
  /// The kernel's limits (`BPF_COMPLEXITY_LIMIT_INSNS`, `BPF_COMPLEXITY_LIMIT_JMP_SEQ`).
  static let processedInstructionLimit = 1_000_000
  static let pendingJumpLimit = 8192
  /// Where the pre-check refuses: a tenth below the kernel's limit (see above). The
  /// differential test holds the count above 90% of the kernel's.
  static let processedInstructionRefusal = 900_000

  /// A state the kernel keeps at a prune point to compare later arrivals with.
  struct Checkpoint {
    var state: AbstractState
    var hits = 0
    var misses = 0
  }

  /// Counters of `do_check`, which decide where checkpoints are stored.
  struct ExplorationCounters {
    var processed = 0
    var jumps = 0
    var processedAtLastCheckpoint = 0
    var jumpsAtLastCheckpoint = 0
  }

  /// A path waiting to be followed: where it starts, its state, and how long its history of
  /// jumps and stack accesses is since its last checkpoint (the kernel stores a checkpoint
  /// when it passes 40 entries).
  struct PendingPath {
    var index: Int
    var state: AbstractState
    var history: Int
  }

  func explore() {
    relevance = StateRelevance(program.instructions, flow: flow, context: context, maps: maps)
    var checkpoints: [Int: [Checkpoint]] = [:]
    var counters = ExplorationCounters()
    var pending = [PendingPath(index: 0, state: .entry, history: 0)]
    /// States stored per instruction, for blaming a too complex program on the place where
    /// the states do not merge.
    var stored: [Int: Int] = [:]
    while var path = pending.popLast() {
      while true {
        let index = path.index
        counters.processed += 1
        processedInstructions = counters.processed
        if counters.processed > Self.processedInstructionRefusal {
          exceededComplexity = true
          reportComplexity(stored: stored, fallback: index)
          return
        }
        if pruneKinds[index].isPrunePoint {
          if isVisited(index, &path, &checkpoints, &counters, &stored) { break }
        }
        if pruneKinds[index].isJumpPoint { path.history += 1 }
        let instruction = program.instructions[index]
        switch instruction {
        case .jump, .jumpIf, .jumpIf32, .call, .callKernelFunction, .callLocal, .exit: counters.jumps += 1
        default: break
        }
        if Self.recordsStackAccess(instruction) { path.history += 1 }
        let successors: [(index: Int, state: AbstractState)]
        do {
          successors = try step(index, path.state)
        } catch {
          report(error, at: index)
          if rejections.count >= Self.maximumRejections { return }
          break
        }
        guard let next = successors.first else { break }
        if successors.count > 1 {
          // The kernel saves the jump's target and goes on with the next instruction.
          pending.append(PendingPath(index: successors[1].index, state: successors[1].state, history: path.history))
          if pending.count > Self.pendingJumpLimit {
            report(
              Problem(
                "has more than \(Self.pendingJumpLimit) branches pending on one path; the kernel refuses a sequence of jumps that long",
                hint: "split the clause: fewer conditions one after the other"), at: index)
            return
          }
        }
        path.index = next.index
        path.state = next.state
      }
    }
  }

  /// `is_state_visited`: whether a stored state at `index` makes the path's state redundant;
  /// otherwise, stores the state when the kernel would.
  private func isVisited(
    _ index: Int, _ path: inout PendingPath, _ checkpoints: inout [Int: [Checkpoint]],
    _ counters: inout ExplorationCounters, _ stored: inout [Int: Int]
  ) -> Bool {
    var addNew =
      path.history > 40
      || (counters.jumps - counters.jumpsAtLastCheckpoint >= 2
        && counters.processed - counters.processedAtLastCheckpoint >= 8)
    var position = 0
    while position < checkpoints[index, default: []].count {
      if equivalent(checkpoints[index]![position].state, path.state, at: index) {
        checkpoints[index]![position].hits += 1
        return true
      }
      if addNew { checkpoints[index]![position].misses += 1 }
      // The kernel drops a state that keeps missing: it is unlikely to match later ones.
      let checkpoint = checkpoints[index]![position]
      if checkpoint.misses > checkpoint.hits * 3 + 3 {
        checkpoints[index]!.remove(at: position)
        continue
      }
      position += 1
    }
    if !addNew { return false }
    addNew = false
    checkpoints[index, default: []].insert(Checkpoint(state: path.state), at: 0)
    stored[index, default: 0] += 1
    counters.processedAtLastCheckpoint = counters.processed
    counters.jumpsAtLastCheckpoint = counters.jumps
    path.history = 0
    return false
  }

  /// Whether the kernel sees `new` as covered by `old` at `index`: every live register and
  /// stack slot holds the same, and a number the same exactly where its value may matter.
  func equivalent(_ old: AbstractState, _ new: AbstractState, at index: Int) -> Bool {
    var ids = IdentityMap()
    var links = IdentityMap()
    let preciseRegisters = relevance.preciseRegisters[index]
    var liveRegisters = relevance.liveRegisters[index] & 0x3ff
    while liveRegisters != 0 {
      let register = liveRegisters.trailingZeroBitCount
      liveRegisters &= liveRegisters - 1
      let precise = preciseRegisters & (1 << UInt16(register)) != 0
      guard Self.same(old.registers[register], new.registers[register], precise: precise, &ids, &links) else {
        return false
      }
    }
    let preciseSlots = relevance.preciseSlots[index]
    var liveSlots = relevance.liveSlots[index]
    while liveSlots != 0 {
      let slot = liveSlots.trailingZeroBitCount
      liveSlots &= liveSlots - 1
      // A slot never written in the old state was never read on its way to the exit, and
      // bytes of unknown contents constrain nothing: the kernel lets privileged programs read
      // uninitialised stack, so it skips both in the comparison.
      if holdsOnlyUnknownBytes(old.stackHistories[slot]) { continue }
      let precise = preciseSlots & (1 << UInt64(slot)) != 0
      if precise {
        guard old.stackHistories[slot] == new.stackHistories[slot] else { return false }
        if case .spill(let oldValue) = old.stack[slot], case .spill(let newValue) = new.stack[slot] {
          guard Self.same(oldValue, newValue, precise: true, &ids, &links) else { return false }
        }
      } else {
        guard old.stackShapes[slot] == new.stackShapes[slot] else { return false }
        if case .spill(let oldValue) = old.stack[slot], case .spill(let newValue) = new.stack[slot] {
          guard Self.same(oldValue, newValue, precise: false, &ids, &links) else { return false }
        }
      }
    }
    return old.referencesMatch(new, ids)
  }

  /// Whether a stack slot with `history` holds nothing but never-written bytes and bytes of
  /// unknown contents (written by helpers, or by stores of part of a number not at the start
  /// of the slot), which the kernel marks invalid or "misc".
  func holdsOnlyUnknownBytes(_ history: Int) -> Bool {
    var current = history
    while current != 0 {
      guard current <= derivationList.count else { return false }
      switch derivationList[current - 1] {
      case .helperWritten:
        return true
      case .partial(let previous, _, _, .helperBytes):
        current = previous
      case .partial(let previous, let offset, _, .number(let origin)) where offset != 0 && origin != .constant(0):
        current = previous
      default:
        return false
      }
    }
    return true
  }

  private static func same(
    _ old: Value, _ new: Value, precise: Bool, _ ids: inout IdentityMap, _ links: inout IdentityMap
  ) -> Bool {
    switch (old, new) {
    case (.uninitialized, _):
      // Nothing read it on the old state's way to the exit.
      return true
    case (.scalar(_, let oldLink, let oldOrigin), .scalar(_, let newLink, let newOrigin)):
      guard precise else { return true }
      return oldOrigin == newOrigin && links.match(oldLink, newLink)
    case (.pointer(let o), .pointer(let n)):
      guard o.base.kind == n.base.kind, o.fixed == n.fixed, o.mayBeNull == n.mayBeNull,
        o.foundForSure == n.foundForSure,
        o.variable == .constant(0), n.variable == .constant(0)
      else { return false }
      if o.mayBeNull, !ids.match(o.nullID, n.nullID) { return false }
      switch (o.base, n.base) {
      case (.ringBuffer(let sizeA, let refA), .ringBuffer(let sizeB, let refB)):
        return sizeA == sizeB && ids.match(refA, refB)
      default:
        return o.base == n.base
      }
    case (.released, .released):
      return true
    default:
      return false
    }
  }

  /// Whether the kernel records `instruction` in a path's history of stack accesses (spills
  /// and fills of whole registers), which forces a checkpoint when it grows long.
  static func recordsStackAccess(_ instruction: Instruction) -> Bool {
    switch instruction {
    case .store(.double, .fp, let offset, _), .storeImmediate(.double, .fp, let offset, _), .load(.double, _, .fp, let offset):
      return offset % 8 == 0
    default:
      return false
    }
  }

  /// Refuses the program as too complex, blaming the instruction where the kernel would
  /// have stored the most states that never matched each other.
  private func reportComplexity(stored: [Int: Int], fallback: Int) {
    let blamed = stored.max { ($0.value, -$0.key) < ($1.value, -$1.key) }
    report(
      Problem(
        "makes the kernel's verifier process more than \(Self.processedInstructionRefusal) instructions, too close to its limit of \(Self.processedInstructionLimit): the paths through the conditions before this point reach it with \(blamed.map { "\($0.value)" } ?? "many") states it cannot merge",
        hint: "a value that differs along each of those paths stays distinct until it is used here; store it in a $variable first (the verifier does not follow variables), or split the clause into clauses with fewer conditions"),
      at: blamed?.key ?? fallback)
  }
}

/// What the kernel marks at each instruction before verifying (`visit_insn`).
struct PruneKinds {
  /// States are compared (and stored) here.
  var isPrunePoint = false
  /// The path's history gets an entry here.
  var isJumpPoint = false

  static func of(_ instructions: [Instruction], flow: ControlFlow) -> [PruneKinds] {
    var kinds = Array(repeating: PruneKinds(), count: instructions.count)
    for (index, instruction) in instructions.enumerated() {
      switch instruction {
      case .jumpIf, .jumpIf32:
        kinds[index].isPrunePoint = true
        if flow.successors[index].count > 1 {
          let target = flow.successors[index][1]
          kinds[target].isPrunePoint = true
          kinds[target].isJumpPoint = true
        }
      case .jump:
        if let target = flow.successors[index].first {
          kinds[target].isPrunePoint = true
          kinds[target].isJumpPoint = true
        }
      case .call, .callKernelFunction, .callLocal:
        if index + 1 < instructions.count {
          kinds[index + 1].isPrunePoint = true
          kinds[index + 1].isJumpPoint = true
        }
      default:
        break
      }
    }
    return kinds
  }
}

extension PointerBase {
  /// The kind of memory, without the identities a comparison maps.
  var kind: Int {
    switch self {
    case .context: 0
    case .stack: 1
    case .mapHandle: 2
    case .mapValue: 3
    case .ringBuffer: 4
    case .kernel: 5
    }
  }
}
