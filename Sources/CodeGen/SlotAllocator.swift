import BPF

/// A place where a program keeps a value in memory: on its 512-byte stack (below r10), or in
/// its clause's area of the per-CPU scratch map, whose address r9 holds
/// (`ProgramBuilder.scratch`).
struct Slot: Hashable {
  var base: Register
  var offset: Int16

  /// The slot `bytes` further on. Callers stay inside the allocation, which the allocator
  /// keeps within the range an instruction offset can address.
  func advanced(by bytes: Int) -> Slot {
    Slot(base: base, offset: Int16(truncatingIfNeeded: Int(offset) + bytes))
  }

  var isScratch: Bool { base == ProgramBuilder.scratch }
}

/// Hands out slots 8 bytes at a time and takes them back when their values are dead, so
/// that the statements of a clause reuse each other's stack. The stack comes first; what
/// does not fit there goes to the scratch area (up to `scratchLimit` bytes), and so do the
/// clause's `$variables`, whose values the kernel's verifier then does not follow (see
/// `ProgramBuilder.build`).
struct SlotAllocator {
  static let stackSize = 512
  /// Bytes of a clause's scratch area: a per-CPU array value can be at most 32 KB, and every
  /// offset must fit the 16-bit offset of a load or store. The first 8 bytes are the area's
  /// busy flag.
  static let scratchLimit = 32 * 1024 - 8
  static let scratchStart = 8

  /// Whether r9 holds the scratch area; without it, what does not fit the stack sets
  /// `needsScratch` and the program is generated again with it.
  var scratchAvailable = false
  /// Whether the program ever had the scratch area.
  private(set) var usedScratch = false
  /// 8-byte units of the stack in use; unit i is fp-8*(i+1).
  private var stackUnits = Array(repeating: false, count: stackSize / 8)
  /// 8-byte units of the scratch area in use, from offset `scratchStart`.
  private var scratchUnits: [Bool] = []
  private var sizes: [Slot: Int] = [:]
  /// Slots that are never given back (the clause's variables).
  private var permanent: Set<Slot> = []
  private(set) var needsScratch = false
  /// The most stack and scratch bytes in use at once.
  private(set) var stackHighWater = 0
  private(set) var scratchHighWater = 0
  /// Bytes asked for beyond the scratch limit: the clause cannot be compiled.
  private(set) var unplaced = 0

  /// A slot of `size` bytes (rounded up to 8): on the stack when a free run is there,
  /// otherwise in scratch. With `inScratch`, in scratch only.
  mutating func allocate(_ size: Int, inScratch: Bool = false, permanent isPermanent: Bool = false) -> Slot {
    let units = max(1, (size + 7) / 8)
    var slot: Slot?
    if !inScratch, let first = Self.freeRun(of: units, in: stackUnits) {
      for unit in first..<first + units { stackUnits[unit] = true }
      // The run's lowest address is its last unit.
      slot = Slot(base: .fp, offset: Int16(-8 * (first + units)))
      stackHighWater = max(stackHighWater, 8 * (stackUnits.lastIndex(of: true)! + 1))
    } else if scratchAvailable {
      let first = Self.freeRun(of: units, in: scratchUnits) ?? scratchUnits.count
      let end = first + units
      if Self.scratchStart + 8 * end <= Self.scratchLimit {
        if end > scratchUnits.count { scratchUnits += Array(repeating: false, count: end - scratchUnits.count) }
        for unit in first..<end { scratchUnits[unit] = true }
        slot = Slot(base: ProgramBuilder.scratch, offset: Int16(Self.scratchStart + 8 * first))
        usedScratch = true
        scratchHighWater = max(scratchHighWater, 8 * (scratchUnits.lastIndex(of: true)! + 1))
      } else {
        unplaced += 8 * units
      }
    } else {
      needsScratch = true
    }
    // Without a place, a stand-in at the bottom of the stack: the program is discarded
    // (generated again with scratch, or refused for `unplaced`) before anyone runs it.
    let placed = slot ?? Slot(base: .fp, offset: -8)
    if slot != nil {
      sizes[placed] = 8 * units
      if isPermanent { permanent.insert(placed) }
    }
    return placed
  }

  /// Gives a slot back; permanent slots and stand-ins stay.
  mutating func release(_ slot: Slot) {
    guard !permanent.contains(slot), let size = sizes.removeValue(forKey: slot) else { return }
    let units = size / 8
    if slot.isScratch {
      let first = (Int(slot.offset) - Self.scratchStart) / 8
      for unit in first..<first + units { scratchUnits[unit] = false }
    } else {
      let first = -Int(slot.offset) / 8 - units
      for unit in first..<first + units { stackUnits[unit] = false }
    }
  }

  /// The slots handed out and not given back, permanent ones aside.
  var liveSlots: Set<Slot> { Set(sizes.keys).subtracting(permanent) }

  private static func freeRun(of units: Int, in used: [Bool]) -> Int? {
    guard units <= used.count else { return nil }
    var run = 0
    for index in used.indices {
      run = used[index] ? 0 : run + 1
      if run == units { return index - units + 1 }
    }
    return nil
  }
}

extension Slot {
  /// The slot `bytes` further on, for addressing the fields of an area.
  static func + (slot: Slot, bytes: Int) -> Slot { slot.advanced(by: bytes) }
}

extension Instruction {
  /// Loads and stores of a slot, on the stack or in scratch alike.
  static func load(_ size: AccessSize, _ destination: Register, at slot: Slot) -> Instruction {
    .load(size, destination, slot.base, offset: slot.offset)
  }

  static func store(_ size: AccessSize, at slot: Slot, _ source: Register) -> Instruction {
    .store(size, slot.base, offset: slot.offset, source)
  }

  static func storeImmediate(_ size: AccessSize, at slot: Slot, _ value: Int32) -> Instruction {
    .storeImmediate(size, slot.base, offset: slot.offset, value)
  }
}
