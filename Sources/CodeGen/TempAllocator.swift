import BPF

/// A value being computed, held in a caller-saved register or spilled to the stack.
struct Temp: Hashable {
  let id: Int
}

/// Register allocation for expression temporaries over r1-r5.
///
/// Helper calls clobber r1-r5, so every live temporary is spilled to its own slot before a
/// call and reloaded on its next use (the slot is given back then); when all five registers
/// are busy, the least recently used temporary is spilled to make room.
struct TempAllocator {
  private enum Location: Hashable {
    case register(Register)
    case memory(Slot)
  }
  private static let pool: [Register] = [.r1, .r2, .r3, .r4, .r5]
  private var locations: [Temp: Location] = [:]
  private var lastUse: [Temp: Int] = [:]
  private var clock = 0
  private var nextID = 0
  /// Where the next allocation should go if that register is free: the value is computed
  /// where it is needed (a helper argument), saving a move.
  var preferredRegister: Register?

  /// Allocates a temporary in a free register, spilling another if none is free.
  mutating func allocate(_ frame: inout SlotAllocator, _ asm: inout CodeEmitter) -> (Temp, Register) {
    let temp = Temp(id: nextID)
    nextID += 1
    let register = freeRegister(&frame, &asm)
    locations[temp] = .register(register)
    touch(temp)
    return (temp, register)
  }

  /// The register holding `temp`, reloading it from the stack if it was spilled.
  mutating func use(_ temp: Temp, _ frame: inout SlotAllocator, _ asm: inout CodeEmitter) -> Register {
    use([temp], &frame, &asm)[0]
  }

  /// Registers holding all of `temps` at once: none of them is spilled to reload another.
  mutating func use(_ temps: [Temp], _ frame: inout SlotAllocator, _ asm: inout CodeEmitter) -> [Register] {
    let keep = Set(temps)
    return temps.map { temp in
      touch(temp)
      switch locations[temp]! {
      case .register(let register):
        return register
      case .memory(let slot):
        let register = freeRegister(&frame, &asm, keeping: keep)
        asm.emit(.load(.double, register, slot.base, offset: slot.offset))
        locations[temp] = .register(register)
        frame.release(slot)
        return register
      }
    }
  }

  mutating func free(_ temp: Temp, _ frame: inout SlotAllocator) {
    if case .memory(let slot)? = locations[temp] { frame.release(slot) }
    locations[temp] = nil
    lastUse[temp] = nil
  }

  /// Spills every temporary held in a register: call before emitting a helper call.
  mutating func spillAll(_ frame: inout SlotAllocator, _ asm: inout CodeEmitter) {
    for (temp, location) in locations {
      if case .register(let register) = location {
        let slot = frame.allocate(8)
        asm.emit(.store(.double, slot.base, offset: slot.offset, register))
        locations[temp] = .memory(slot)
      }
    }
  }

  /// Makes sure `register` is free, moving whatever temporary holds it elsewhere.
  mutating func claim(_ register: Register, _ frame: inout SlotAllocator, _ asm: inout CodeEmitter) {
    guard let (temp, _) = locations.first(where: { $0.value == .register(register) }) else { return }
    let slot = frame.allocate(8)
    asm.emit(.store(.double, slot.base, offset: slot.offset, register))
    locations[temp] = .memory(slot)
  }

  private mutating func touch(_ temp: Temp) {
    clock += 1
    lastUse[temp] = clock
  }

  private mutating func freeRegister(
    _ frame: inout SlotAllocator, _ asm: inout CodeEmitter, keeping: Set<Temp> = []
  ) -> Register {
    let used = Set(locations.values.compactMap { location -> Register? in
      if case .register(let register) = location { return register }
      return nil
    })
    if let preferred = preferredRegister {
      preferredRegister = nil
      if !used.contains(preferred) { return preferred }
    }
    if let register = Self.pool.first(where: { !used.contains($0) }) { return register }
    // Spill the temporary unused for longest.
    let victim = locations.filter { entry in
      if case .register = entry.value, !keeping.contains(entry.key) { return true }
      return false
    }.min { lastUse[$0.key, default: 0] < lastUse[$1.key, default: 0] }!
    guard case .register(let register) = victim.value else { fatalError("unreachable: victim is in a register") }
    let slot = frame.allocate(8)
    asm.emit(.store(.double, slot.base, offset: slot.offset, register))
    locations[victim.key] = .memory(slot)
    return register
  }
}
