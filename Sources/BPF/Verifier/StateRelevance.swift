/// What the kernel's verifier looks at when it compares a state with one it explored before
/// at the same instruction (`states_equal` in kernel/bpf/verifier.c): only registers and
/// stack slots that something after the instruction reads (liveness), and, of the numbers
/// among them, the exact value only of those some later decision depends on (precision: a
/// branch the verifier decides, an offset added to a pointer, a helper's size argument, the
/// return value). The kernel learns both as it explores; here they are computed for every
/// path at once, as sets at least as large as the kernel's, so that the pre-check never sees
/// two states as the same where the kernel would not.
struct StateRelevance {
  /// Registers r0-r9 and stack slots (bit i: the 8 bytes at fp-8*(i+1)) live at the start
  /// of each instruction.
  private(set) var liveRegisters: [UInt16]
  private(set) var liveSlots: [UInt64]
  /// The live ones whose exact value may matter.
  private(set) var preciseRegisters: [UInt16]
  private(set) var preciseSlots: [UInt64]

  static let allSlots = UInt64.max

  init(_ instructions: [Instruction], flow: ControlFlow, context: ProgramContext, maps: [MapDescription]) {
    let count = instructions.count
    liveRegisters = Array(repeating: 0, count: count)
    liveSlots = Array(repeating: 0, count: count)
    preciseRegisters = Array(repeating: 0, count: count)
    preciseSlots = Array(repeating: 0, count: count)
    let facts = Self.forwardFacts(instructions, flow: flow, context: context)
    // Backwards over the acyclic graph: successors before predecessors.
    for index in flow.topologicalOrder.reversed() {
      var live = Sets()
      var precise = Sets()
      for successor in flow.successors[index] {
        live.formUnion(Sets(registers: liveRegisters[successor], slots: liveSlots[successor]))
        precise.formUnion(Sets(registers: preciseRegisters[successor], slots: preciseSlots[successor]))
      }
      Self.transfer(
        instructions[index], facts: facts[index] ?? Facts.unknown, context: context, maps: maps,
        live: &live, precise: &precise)
      liveRegisters[index] = live.registers
      liveSlots[index] = live.slots
      preciseRegisters[index] = precise.registers & live.registers
      preciseSlots[index] = precise.slots & live.slots
    }
  }

  struct Sets {
    var registers: UInt16 = 0
    var slots: UInt64 = 0

    mutating func formUnion(_ other: Sets) {
      registers |= other.registers
      slots |= other.slots
    }
    func has(_ register: Register) -> Bool { registers & (1 << UInt16(register.index)) != 0 }
    mutating func insert(_ register: Register) { registers |= 1 << UInt16(register.index) }
    mutating func remove(_ register: Register) { registers &= ~(1 << UInt16(register.index)) }
  }

  // MARK: - Forward facts

  /// What a register or an 8-byte stack slot may hold, as far as the analysis needs to know:
  /// which stack bytes an access or a helper touches, and whether an addition moves a pointer.
  enum Fact: Hashable {
    case unknown
    case number
    case constant(UInt64)
    /// The frame pointer plus a known offset.
    case stack(Int)
    case mapHandle(Int)
    /// The context as the program received it.
    case context
    /// Any other pointer.
    case pointer

    func joined(_ other: Fact) -> Fact {
      if self == other { return self }
      switch (self, other) {
      case (.number, .constant), (.constant, .number), (.constant, .constant): return .number
      default: return .unknown
      }
    }

    var mayBePointer: Bool {
      switch self {
      case .number, .constant: false
      default: true
      }
    }
  }

  struct Facts: Hashable {
    var registers: [Fact]
    var slots: [Fact]

    static let unknown = Facts(
      registers: Array(repeating: .unknown, count: 11), slots: Array(repeating: .unknown, count: AbstractState.slotCount))

    func joined(_ other: Facts) -> Facts {
      Facts(
        registers: zip(registers, other.registers).map { $0.joined($1) },
        slots: zip(slots, other.slots).map { $0.joined($1) })
    }

    func stackOffset(_ register: Register) -> Int? {
      if register == .fp { return 0 }
      if case .stack(let offset) = registers[Int(register.index)] { return offset }
      return nil
    }
  }

  static func forwardFacts(_ instructions: [Instruction], flow: ControlFlow, context: ProgramContext) -> [Int: Facts] {
    var facts: [Int: Facts] = [:]
    var entry = Facts(
      registers: Array(repeating: .unknown, count: 11), slots: Array(repeating: .number, count: AbstractState.slotCount))
    entry.registers[1] = .context
    entry.registers[10] = .stack(0)
    facts[0] = entry
    for index in flow.topologicalOrder {
      guard var state = facts[index] else { continue }
      step(instructions[index], &state, context: context)
      for successor in flow.successors[index] {
        facts[successor] = facts[successor].map { $0.joined(state) } ?? state
      }
    }
    return facts
  }

  private static func step(_ instruction: Instruction, _ state: inout Facts, context: ProgramContext) {
    func set(_ register: Register, _ fact: Fact) { state.registers[Int(register.index)] = fact }
    func fact(_ register: Register) -> Fact { state.registers[Int(register.index)] }
    switch instruction {
    case .alu64(.mov, let dst, .immediate(let value)):
      set(dst, .constant(UInt64(bitPattern: Int64(value))))
    case .alu32(.mov, let dst, .immediate(let value)):
      set(dst, .constant(UInt64(UInt32(bitPattern: value))))
    case .alu64(.mov, let dst, .register(let src)):
      set(dst, fact(src))
    case .alu64(let op, let dst, let operand) where op == .add || op == .sub:
      let other: Fact
      switch operand {
      case .immediate(let value): other = .constant(UInt64(bitPattern: Int64(value)))
      case .register(let src): other = fact(src)
      }
      switch (fact(dst), other) {
      case (.stack(let offset), .constant(let value)):
        let delta = Int(truncatingIfNeeded: Int64(bitPattern: value))
        set(dst, .stack(op == .add ? offset &+ delta : offset &- delta))
      case (.constant(let a), .constant(let b)):
        set(dst, .constant(op == .add ? a &+ b : a &- b))
      case (.number, .number), (.number, .constant), (.constant, .number):
        set(dst, .number)
      case (.pointer, .number), (.pointer, .constant), (.number, .pointer), (.constant, .pointer),
        (.context, .number), (.context, .constant):
        set(dst, .pointer)
      default:
        set(dst, .unknown)
      }
    case .alu64(_, let dst, let operand), .alu32(_, let dst, let operand):
      var operands = [fact(dst)]
      if case .register(let src) = operand { operands.append(fact(src)) }
      set(dst, operands.allSatisfy { !$0.mayBePointer } ? .number : .unknown)
    case .endian(_, let dst, _):
      set(dst, .number)
    case .loadImmediate64(let dst, let value):
      set(dst, .constant(value))
    case .loadMapFD(let dst, let fd):
      set(dst, .mapHandle(Int(fd)))
    case .loadMapValue(let dst, _, _), .loadBTFID(let dst, _):
      set(dst, .pointer)
    case .load(let size, let dst, let src, let offset):
      if let base = state.stackOffset(src) {
        let start = base + Int(offset)
        if size == .double, start % 8 == 0, start < 0, start >= -AbstractState.stackSize {
          set(dst, state.slots[(-start - 1) / 8])
        } else {
          set(dst, .number)
        }
      } else if fact(src) == .context, case .tracing(_, let pointers) = context, size == .double, offset >= 0,
        offset % 8 == 0, pointers.contains(Int(offset) / 8)
      {
        // A tracing program's pointer argument: a typed kernel pointer.
        set(dst, .pointer)
      } else {
        // Pointers are never loaded from the memory generated code reads (pointer members
        // of kernel objects are read with helpers); through an unknown base, anything is.
        set(dst, fact(src) == .unknown ? .unknown : .number)
      }
    case .store(let size, let dst, let offset, let src):
      storeFact(size == .double ? fact(src) : .number, size: size.bytes, to: dst, offset: offset, &state)
    case .storeImmediate(let size, let dst, let offset, let value):
      storeFact(
        size == .double ? .constant(UInt64(bitPattern: Int64(value))) : .number, size: size.bytes, to: dst,
        offset: offset, &state)
    case .atomic(let op, let size, let dst, let offset, let src):
      storeFact(.number, size: size.bytes, to: dst, offset: offset, &state)
      switch op {
      case .fetchAdd, .fetchOr, .fetchAnd, .fetchXor, .exchange: set(src, .number)
      case .compareExchange: set(.r0, .number)
      default: break
      }
    case .call(let helper):
      let result: Fact =
        switch HelperFunction(rawValue: helper).flatMap({ try? HelperSignature.of($0, in: context).get() })?.result {
        case .mapValueOrNull?, .ringBufferOrNull?: .pointer
        case .number?: .number
        default: .unknown
        }
      for register in 1...5 { state.registers[register] = .unknown }
      set(.r0, result)
    case .callKernelFunction, .callLocal:
      for register in 0...5 { state.registers[register] = .unknown }
    case .jump, .jumpIf, .jumpIf32, .exit:
      break
    }
  }

  private static func storeFact(_ value: Fact, size: Int, to base: Register, offset: Int16, _ state: inout Facts) {
    guard let start = state.stackOffset(base).map({ $0 + Int(offset) }) else {
      // A store through a pointer that may point anywhere in the stack.
      if state.registers[Int(base.index)] == .unknown {
        state.slots = state.slots.map { $0.joined(.number) }
      }
      return
    }
    for slot in slotIndices(from: start, size: size) {
      state.slots[slot] = size == 8 && start % 8 == 0 ? value : .number
    }
  }

  /// The stack slots that `size` bytes at fp+`start` touch.
  static func slotIndices(from start: Int, size: Int) -> [Int] {
    guard size > 0 else { return [] }
    let first = max(start, -AbstractState.stackSize)
    let end = min(start + size, 0)
    guard first < end else { return [] }
    return Array(Set((first..<end).map { (-$0 - 1) / 8 })).sorted()
  }

  static func slotMask(from start: Int, size: Int) -> UInt64 {
    slotIndices(from: start, size: size).reduce(UInt64(0)) { $0 | (1 << UInt64($1)) }
  }

  // MARK: - Backward transfer

  private static func transfer(
    _ instruction: Instruction, facts: Facts, context: ProgramContext, maps: [MapDescription],
    live: inout Sets, precise: inout Sets
  ) {
    /// Stack bytes a `size`-byte access through `register` + `offset` touches: nil when the
    /// register may point anywhere in the stack, an empty mask when it is not a stack pointer.
    func touched(_ register: Register, _ offset: Int, _ size: Int) -> UInt64? {
      if let base = facts.stackOffset(register) { return slotMask(from: base + offset, size: size) }
      return facts.registers[Int(register.index)] == .unknown ? allSlots : 0
    }
    func fact(_ register: Register) -> Fact { facts.registers[Int(register.index)] }
    switch instruction {
    case .alu64(.mov, let dst, let operand), .alu32(.mov, let dst, let operand):
      let wasPrecise = precise.has(dst)
      live.remove(dst)
      precise.remove(dst)
      if case .register(let src) = operand {
        live.insert(src)
        if wasPrecise { precise.insert(src) }
      }
    case .alu64(let op, let dst, let operand), .alu32(let op, let dst, let operand):
      live.insert(dst)
      if case .register(let src) = operand {
        live.insert(src)
        if precise.has(dst) { precise.insert(src) }
        // A number added to a pointer decides where it points: the kernel needs it exactly.
        if op == .add || op == .sub {
          if fact(dst).mayBePointer { precise.insert(src) }
          if fact(src).mayBePointer { precise.insert(dst) }
        }
      }
    case .endian(_, let dst, _):
      live.insert(dst)
    case .loadImmediate64(let dst, _), .loadMapFD(let dst, _), .loadMapValue(let dst, _, _),
      .loadBTFID(let dst, _):
      live.remove(dst)
      precise.remove(dst)
    case .load(let size, let dst, let src, let offset):
      let wasPrecise = precise.has(dst)
      live.remove(dst)
      precise.remove(dst)
      live.insert(src)
      let slots = touched(src, Int(offset), size.bytes) ?? allSlots
      live.slots |= slots
      if wasPrecise { precise.slots |= slots }
    case .store(let size, let dst, let offset, let src):
      live.insert(dst)
      live.insert(src)
      store(size: size.bytes, to: dst, offset: Int(offset), value: src)
    case .storeImmediate(let size, let dst, let offset, _):
      live.insert(dst)
      store(size: size.bytes, to: dst, offset: Int(offset), value: nil)
    case .atomic(let op, let size, let dst, let offset, let src):
      live.insert(dst)
      live.insert(src)
      if op == .compareExchange { live.insert(.r0) }
      let slots = touched(dst, Int(offset), size.bytes) ?? allSlots
      live.slots |= slots
      if precise.slots & slots != 0 { precise.insert(src) }
    case .jump:
      break
    case .jumpIf(_, let dst, let operand, _), .jumpIf32(_, let dst, let operand, _):
      // The kernel needs the exact values of a comparison it decides; any may be decided.
      live.insert(dst)
      precise.insert(dst)
      if case .register(let src) = operand {
        live.insert(src)
        precise.insert(src)
      }
    case .call(let helperID):
      for index in 0...5 {
        live.remove(Register(UInt8(index)))
        precise.remove(Register(UInt8(index)))
      }
      callArguments(helperID)
    case .callKernelFunction, .callLocal:
      for index in 0...5 {
        live.remove(Register(UInt8(index)))
        precise.remove(Register(UInt8(index)))
      }
      // Unknown arguments: everything they may point to is read.
      for index in 1...5 { live.insert(Register(UInt8(index))) }
      live.slots = allSlots
    case .exit:
      live = Sets()
      precise = Sets()
      live.insert(.r0)
      precise.insert(.r0)
    }

    func store(size: Int, to base: Register, offset: Int, value: Register?) {
      guard let start = facts.stackOffset(base).map({ $0 + offset }) else {
        // Through a pointer that may point into the stack: it may write a slot whose value
        // matters, and overwrites nothing for sure.
        if touched(base, offset, size) == allSlots, precise.slots != 0, let value { precise.insert(value) }
        return
      }
      let slots = slotMask(from: start, size: size)
      let mattered = precise.slots & slots != 0
      if start % 8 == 0 {
        // A store at the start of a slot saves a register (or constant) there, of any width:
        // the kernel's precision tracking moves from the slot to what was stored and stops.
        precise.slots &= ~slots
        // Only a whole slot written makes what was there before dead.
        if size == 8 { live.slots &= ~slots }
      }
      if mattered, let value { precise.insert(value) }
    }

    func callArguments(_ helperID: Int32) {
      guard let helper = HelperFunction(rawValue: helperID),
        let signature = try? HelperSignature.of(helper, in: context).get()
      else {
        for index in 1...5 { live.insert(Register(UInt8(index))) }
        live.slots = allSlots
        return
      }
      var map: MapDescription?
      var memory: (register: Register, reads: Bool)?
      for (position, kind) in signature.arguments.enumerated() {
        let register = Register(UInt8(position + 1))
        live.insert(register)
        switch kind {
        case .map:
          if case .mapHandle(let index) = fact(register), index >= 0, index < maps.count { map = maps[index] }
        case .mapKey, .mapValue:
          let size = map.map { kind == .mapKey ? $0.keySize : $0.valueSize }
          let slots = size.flatMap { touched(register, 0, $0) } ?? allSlots
          live.slots |= slots
          // A constant key of an array map may decide whether the lookup can fail.
          if kind == .mapKey, map?.kind != .hash, map?.kind != .perCPUHash, map?.kind != .lruHash {
            precise.slots |= slots
          }
        case .readableMemory, .writableMemory:
          memory = (register, kind == .readableMemory)
        case .size:
          precise.insert(register)
          if let memory, memory.reads {
            let size: Int? = if case .constant(let value) = fact(register), value <= 512 { Int(value) } else { nil }
            live.slots |= size.flatMap { touched(memory.register, 0, $0) } ?? allSlots
          }
          memory = nil
        case .constantAllocationSize, .zero, .ringBufferFlags:
          precise.insert(register)
        case .anything, .context, .releasedRingBuffer, .kernelObject:
          break
        }
      }
    }
  }
}
