import BPF
import BTF
import Sema
import SwtraceSyntax

extension ProgramBuilder {
  /// x86_64 `struct pt_regs` offsets of the argument registers, then of the return value.
  static let ptRegsArgumentOffsets: [Int16] = [112, 104, 96, 88, 72, 64]
  static let ptRegsReturnOffset: Int16 = 80
  static let ptRegsStackPointerOffset: Int16 = 152

  /// Whether argument `index` is passed on the stack: past the sixth, in a kprobe.
  func isStackArgument(_ index: Int) -> Bool {
    !isTracing && index >= Self.ptRegsArgumentOffsets.count
  }

  /// Loads argument `index` of the attach point into `register`. Stack arguments go through
  /// a helper call, which clobbers r1-r5: only at the start of the program, with no
  /// temporaries live, may `register` be one of them.
  mutating func loadArgument(_ index: Int, into register: Register) {
    if isTracing {
      asm.emit(.load(.double, register, Self.context, offset: Int16(8 * index)))
    } else if isStackArgument(index) {
      let slot = readStackArgument(index)
      asm.emit(.load(.double, register, slot.base, offset: slot.offset))
      frame.release(slot)
    } else {
      asm.emit(.load(.double, register, Self.context, offset: Self.ptRegsArgumentOffsets[index]))
    }
  }

  /// Copies a kprobe's stack argument into a new stack slot: at a function's entry the stack
  /// pointer points at the return address, and the seventh argument is just above it.
  mutating func readStackArgument(_ index: Int) -> Slot {
    temps.spillAll(&frame, &asm)
    let slot = frame.allocate(8)
    pointer(to: slot, in: .r1)
    asm.emit(.mov(.r2, 8))
    asm.emit(.load(.double, .r3, Self.context, offset: Self.ptRegsStackPointerOffset))
    asm.emit(.add(.r3, Int32(8 * (index - Self.ptRegsArgumentOffsets.count + 1))))
    asm.emit(.call(helper: HelperFunction.probeReadKernel.rawValue))
    return slot
  }

  /// Whether a load from `base` may be a plain load: in tracing programs the skb is a
  /// BTF-typed pointer, which the verifier lets us dereference once it is null-checked (the
  /// prologue does that). Other pointers go through `bpf_probe_read_kernel`.
  func canLoadDirectly(_ base: TypedExpr, offset: Int, size: Int) -> Bool {
    directBase(base, offset: offset, size: size) != nil
  }

  /// The register a plain load of `size` bytes at `base + offset` reads through, or nil when
  /// it must go through `bpf_probe_read_kernel`: the skb in tracing programs, and the record in
  /// classic tracepoint programs, where the kernel allows reads aligned to their size.
  func directBase(_ base: TypedExpr, offset: Int, size: Int) -> Register? {
    if case .record = base.kind, attachPoint.backend == .tracepointRecord {
      guard [1, 2, 4, 8].contains(size), offset >= 0, offset % size == 0, offset + size <= 2048 else { return nil }
      return Self.context
    }
    guard isTracing, case .skb = base.kind, skbLoaded, let skbLayout else { return nil }
    // Exactly where the kernel (and the pre-check) allow number loads: inside one number field.
    return skbLayout.allows(offset: offset, size: size) ? Self.skb : nil
  }

  static func readsSkb(_ action: Action) -> Bool {
    // Tracking keys the tracked set by the skb's address.
    if case .track = action { return true }
    return action.expressions.contains(where: readsSkb) || action.nestedActions.contains(where: readsSkb)
  }

  static func readsSkb(_ expression: TypedExpr) -> Bool {
    switch expression.kind {
    case .skb, .packet: return true
    default: break
    }
    return expression.operands.contains(where: readsSkb)
  }

  /// Moves the constant into a fresh temporary.
  mutating func constant(_ value: UInt64) -> Temp {
    let (temp, register) = temps.allocate(&frame, &asm)
    if let small = Int32(exactly: Int64(bitPattern: value)) {
      asm.emit(.mov(register, small))
    } else {
      asm.emit(.loadImmediate64(register, value))
    }
    return temp
  }

  /// Calls a helper that takes no arguments and keeps its result.
  mutating func callForValue(_ helper: HelperFunction) -> (Temp, Register) {
    temps.spillAll(&frame, &asm)
    asm.emit(.call(helper: helper.rawValue))
    let (temp, register) = temps.allocate(&frame, &asm)
    asm.emit(.mov(register, .r0))
    return (temp, register)
  }

  /// Computes a value into a temporary.
  mutating func emit(_ expression: TypedExpr) throws(CodeGenError) -> Temp {
    switch expression.kind {
    case .integer(let value):
      return constant(value)
    case .string:
      throw CodeGenError(message: "a string can only be compared or printed", range: expression.range)
    case .builtin(let builtin):
      switch builtin {
      case .probe:
        guard probeFromCookie else { return constant(UInt64(probeID)) }
        temps.spillAll(&frame, &asm)
        asm.emit(.mov(.r1, Self.context))
        asm.emit(.call(helper: HelperFunction.getAttachCookie.rawValue))
        let (temp, register) = temps.allocate(&frame, &asm)
        // Cookies are probe ids, which fit 32 bits; the 32-bit move makes that known.
        asm.emit(.alu32(.mov, register, .register(.r0)))
        return temp
      case .ts:
        return callForValue(.ktimeGetNanoseconds).0
      case .cpu:
        return callForValue(.getSMPProcessorID).0
      case .pid:
        let (temp, register) = callForValue(.getCurrentPIDTGID)
        asm.emit(.alu64(.rsh, register, .immediate(32)))
        return temp
      case .tid:
        let (temp, register) = callForValue(.getCurrentPIDTGID)
        // A 32-bit move clears the upper half.
        asm.emit(.alu32(.mov, register, .register(register)))
        return temp
      case .comm:
        throw CodeGenError(message: "comm can only be printed", range: expression.range)
      case .kstack:
        return stackID()
      case .nsecs:
        return callForValue(.ktimeGetNanoseconds).0
      case .elapsed:
        return elapsed()
      case .uid, .gid:
        let (temp, register) = callForValue(.getCurrentUIDGID)
        if builtin == .gid {
          asm.emit(.alu64(.rsh, register, .immediate(32)))
        } else {
          asm.emit(.alu32(.mov, register, .register(register)))
        }
        return temp
      case .cgroup:
        return callForValue(.getCurrentCgroupID).0
      case .curtask:
        return callForValue(.getCurrentTask).0
      case .function:
        return try emit(TypedExpr(.builtin(.probe), type: .probe, range: expression.range))
      case .ppid:
        throw CodeGenError(message: "ppid is read through curtask", range: expression.range)
      }
    case .skb:
      let (temp, register) = temps.allocate(&frame, &asm)
      asm.emit(.mov(register, Self.skb))
      return temp
    case .argument(let name):
      guard let index = attachPoint.argumentIndex(name) else {
        throw CodeGenError(message: "\(attachPoint.name) has no argument '\(name)'", range: expression.range)
      }
      if isTracing, case .pointer = expression.type {
        // A kernel pointer argument may be null, and the verifier forbids arithmetic on such
        // pointers: read its value as a plain number instead, through bpf_probe_read_kernel.
        return try tracingArgumentAsNumber(index, range: expression.range)
      }
      if isStackArgument(index) {
        let slot = readStackArgument(index)
        let (temp, register) = temps.allocate(&frame, &asm)
        asm.emit(.load(.double, register, slot.base, offset: slot.offset))
        frame.release(slot)
        return temp
      }
      let (temp, register) = temps.allocate(&frame, &asm)
      loadArgument(index, into: register)
      return temp
    case .returnValue:
      let (temp, register) = temps.allocate(&frame, &asm)
      if isTracing {
        asm.emit(.load(.double, register, Self.context, offset: Int16(8 * attachPoint.arguments.count)))
      } else {
        asm.emit(.load(.double, register, Self.context, offset: Self.ptRegsReturnOffset))
      }
      return temp
    case .load(let base, let offset, let size, let bitfield):
      // Pointers read straight from the skb would be typed (and maybe-null) kernel pointers,
      // which cannot be moved; read them as plain numbers.
      let isPointer = if case .pointer = expression.type { true } else { false }
      let temp = try load(base: base, offset: offset, size: size, range: expression.range, direct: !isPointer)
      let register = temps.use(temp, &frame, &asm)
      if let bitfield {
        if bitfield.bitOffset > 0 { asm.emit(.alu64(.rsh, register, .immediate(Int32(bitfield.bitOffset)))) }
        let mask = bitfield.bitCount >= 64 ? UInt64.max : (UInt64(1) << UInt64(bitfield.bitCount)) - 1
        if let small = Int32(exactly: mask) { asm.emit(.alu64(.and, register, .immediate(small))) }
      } else if expression.type.isSigned, size < 8 {
        let shift = Int32(64 - 8 * size)
        asm.emit(.alu64(.lsh, register, .immediate(shift)))
        asm.emit(.alu64(.arsh, register, .immediate(shift)))
      }
      return temp
    case .loadString:
      throw CodeGenError(message: "a string read from the kernel can only be printed", range: expression.range)
    case .unary(let op, let operand):
      switch op {
      case .not:
        return try materialize(expression)
      case .negate:
        let temp = try emit(operand)
        asm.emit(.alu64(.neg, temps.use(temp, &frame, &asm), .immediate(0)))
        return temp
      case .complement:
        let temp = try emit(operand)
        asm.emit(.alu64(.xor, temps.use(temp, &frame, &asm), .immediate(-1)))
        return temp
      }
    case .binary(let op, let lhs, let rhs):
      if op.isComparison || op == .and || op == .or {
        return try materialize(expression)
      }
      return try arithmetic(op, lhs, rhs, signed: expression.type.isSigned, range: expression.range)
    case .select(let condition, let value, let otherwise):
      return try select(condition, value, otherwise)
    case .mapLookup(let map, let keys):
      return try mapLookupValue(map, keys: keys)
    case .networkToHost(let value, let bits):
      let temp = try emit(value)
      if bits > 8 { asm.emit(.endian(.big, temps.use(temp, &frame, &asm), bits: Int32(bits))) }
      return temp
    case .variable(let slot):
      guard variableSlots[slot].size == 8, expression.type.storageSize <= 8 else {
        throw CodeGenError(message: "a \(expression.type) variable can only be compared, printed or stored", range: expression.range)
      }
      let (temp, register) = temps.allocate(&frame, &asm)
      let variable = variableSlots[slot].slot
      asm.emit(.load(.double, register, variable.base, offset: variable.offset))
      return temp
    case .bytes:
      throw CodeGenError(message: "an IPv6 address can only be compared, printed or stored", range: expression.range)
    case .prefixMatch:
      return try materialize(expression)
    case .packet(let fact):
      return try packetFact(fact, range: expression.range)
    case .optional(let present, let value):
      // Where a number is needed regardless, an absent value reads as 0.
      return try select(present, value, TypedExpr(.integer(0), type: .u64, range: expression.range))
    case .eitherFamily:
      throw CodeGenError(message: "an IP address can only be compared, printed or stored", range: expression.range)
    case .afterHandOver:
      // CodeGenerator specializes every clause for its attach point first.
      return constant(attachPoint.firesAfterHandOver ? 1 : 0)
    case .record:
      let (temp, register) = temps.allocate(&frame, &asm)
      asm.emit(.mov(register, Self.context))
      return temp
    case .registerArgument(let index):
      let (temp, register) = temps.allocate(&frame, &asm)
      asm.emit(.load(.double, register, Self.context, offset: Self.ptRegsArgumentOffsets[index]))
      return temp
    case .mapHasKey:
      return try materialize(expression)
    case .convert(let operand, let bytes, let signed):
      let temp = try emitNumber(operand)
      let register = temps.use(temp, &frame, &asm)
      if bytes == 8 {
        // A pointer made a number: emitNumber read it as one; nothing to narrow.
      } else if signed {
        let shift = Int32(64 - 8 * bytes)
        asm.emit(.alu64(.lsh, register, .immediate(shift)))
        asm.emit(.alu64(.arsh, register, .immediate(shift)))
      } else if bytes == 4 {
        // A 32-bit move clears the upper half.
        asm.emit(.alu32(.mov, register, .register(register)))
      } else {
        asm.emit(.alu64(.and, register, .immediate(Int32((1 << (8 * bytes)) - 1))))
      }
      return temp
    }
  }

  /// A value as a plain number. In tracing programs the skb register is a typed kernel
  /// pointer on which the verifier forbids arithmetic, so its value is read from the
  /// context with bpf_probe_read_kernel instead.
  mutating func emitNumber(_ expression: TypedExpr) throws(CodeGenError) -> Temp {
    guard case .skb = expression.kind, isTracing, let index = attachPoint.skbArgument else {
      return try emit(expression)
    }
    return try tracingArgumentAsNumber(index, range: expression.range)
  }

  /// Argument `index` of a tracing program copied out of the context with
  /// bpf_probe_read_kernel: a plain number to the verifier, never a typed kernel pointer.
  mutating func tracingArgumentAsNumber(_ index: Int, range: SourceRange) throws(CodeGenError) -> Temp {
    let slot = frame.allocate(8)
    let (contextTemp, contextRegister) = temps.allocate(&frame, &asm)
    asm.emit(.mov(contextRegister, Self.context))
    try readKernel(
      address: TypedExpr(.integer(0), type: .u64, range: range), offset: 0, size: 8,
      into: slot, helper: .probeReadKernel, addressTemp: contextTemp, addressOffset: 8 * index)
    let (temp, register) = temps.allocate(&frame, &asm)
    asm.emit(.load(.double, register, slot.base, offset: slot.offset))
    frame.release(slot)
    return temp
  }

  /// `condition ? value : otherwise` through a stack slot each arm stores its result in.
  mutating func select(_ condition: TypedExpr, _ value: TypedExpr, _ otherwise: TypedExpr) throws(CodeGenError) -> Temp {
    let slot = frame.allocate(8)
    try writeEachArm(condition, value, otherwise) { builder, arm throws(CodeGenError) in
      try builder.storeOnStack(arm, at: slot, size: 8)
    }
    let (temp, register) = temps.allocate(&frame, &asm)
    asm.emit(.load(.double, register, slot.base, offset: slot.offset))
    frame.release(slot)
    return temp
  }

  /// `size` bytes at `base + offset` into a temporary: a plain load through a BTF-typed
  /// pointer, or `bpf_probe_read_kernel` into a stack slot otherwise.
  mutating func load(base: TypedExpr, offset: Int, size: Int, range: SourceRange, direct: Bool = true)
    throws(CodeGenError) -> Temp
  {
    guard let access = AccessSize(bytes: size) else {
      throw CodeGenError(message: "cannot read a \(size)-byte value into a register", range: range)
    }
    if direct, let through = directBase(base, offset: offset, size: size), let smallOffset = Int16(exactly: offset) {
      let (temp, register) = temps.allocate(&frame, &asm)
      asm.emit(.load(access, register, through, offset: smallOffset))
      return temp
    }
    let slot = try readIntoSlot(base: base, offset: offset, size: size)
    let (temp, register) = temps.allocate(&frame, &asm)
    asm.emit(.load(access, register, slot.base, offset: slot.offset))
    return temp
  }

  /// The stack slot holding `size` bytes read from `base + offset`: the slot of an earlier
  /// read of the same field when every path to here made it, or a new slot read now.
  mutating func readIntoSlot(base: TypedExpr, offset: Int, size: Int) throws(CodeGenError) -> Slot {
    let read = KernelRead(base: base, offset: offset, size: size)
    if let read, let slot = asm.slot(of: read) { return slot }
    let slot = frame.allocate(size)
    try readKernel(address: base, offset: offset, size: size, into: slot, helper: .probeReadKernel)
    if let read { asm.remember(read, at: slot) }
    return slot
  }

  /// Whether `base + offset` has already been read into a stack slot on every path to here.
  func isRead(base: TypedExpr, offset: Int, size: Int) -> Bool {
    KernelRead(base: base, offset: offset, size: size).flatMap { asm.slot(of: $0) } != nil
  }

  /// The reads through `bpf_probe_read_kernel` that `expression` makes, innermost first.
  func helperReads(in expression: TypedExpr) -> [KernelRead] {
    var reads = expression.operands.flatMap(helperReads)
    if case .load(let base, let offset, let size, _) = expression.kind {
      let isPointer = if case .pointer = expression.type { true } else { false }
      if isPointer || !canLoadDirectly(base, offset: offset, size: size),
        let read = KernelRead(base: base, offset: offset, size: size)
      {
        reads.append(read)
      }
    }
    return reads
  }

  /// Reads now every field that `expressions` read through a helper and that the clause
  /// reads more than once, so later uses find it in its slot: before a record is reserved
  /// (what is read while filling it is gone once it is submitted), and before the arms of a
  /// `?:` (what one arm reads, the code after it cannot count on). Reading a field a path
  /// would have skipped is harmless: `bpf_probe_read_kernel` never faults.
  mutating func prefetchSharedReads(_ expressions: [TypedExpr]) throws(CodeGenError) {
    for expression in expressions {
      for read in helperReads(in: expression) where sharedReads.contains(read) && asm.slot(of: read) == nil {
        _ = try readIntoSlot(base: read.base, offset: read.offset, size: read.size)
      }
    }
  }

  /// `helper(destination, size, base + offset)` for the probe-read family.
  mutating func readKernel(
    address base: TypedExpr, offset: Int, size: Int, into destination: Slot,
    helper: HelperFunction, addressTemp: Temp? = nil, addressOffset: Int = 0
  ) throws(CodeGenError) {
    let offset = offset + addressOffset
    guard let smallOffset = Int32(exactly: offset) else {
      throw CodeGenError(message: "member offset \(offset) is too large", range: base.range)
    }
    // The address goes straight into r3, the helper's third argument; the skb register
    // needs no temporary.
    if addressTemp == nil, case .skb = base.kind, skbLoaded {
      temps.claim(.r3, &frame, &asm)
      asm.emit(.mov(.r3, Self.skb))
    } else {
      // A read nested in `base` sets its own preference; the one it found is given back
      // after it, for the value it hands to our caller.
      let callerPreference = temps.preferredRegister
      if addressTemp == nil { temps.preferredRegister = .r3 }
      let address = if let addressTemp { addressTemp } else { try emit(base) }
      temps.preferredRegister = callerPreference
      let source = temps.use(address, &frame, &asm)
      if source != .r3 {
        temps.claim(.r3, &frame, &asm)
        asm.emit(.mov(.r3, source))
      }
      temps.free(address, &frame)
    }
    if smallOffset != 0 { asm.emit(.add(.r3, smallOffset)) }
    // Every other temporary is saved: the call clobbers r1-r5.
    temps.spillAll(&frame, &asm)
    pointer(to: destination, in: .r1)
    asm.emit(.mov(.r2, Int32(size)))
    asm.emit(.call(helper: helper.rawValue))
  }

  mutating func arithmetic(
    _ op: BinaryOperator, _ lhs: TypedExpr, _ rhs: TypedExpr, signed: Bool, range: SourceRange
  ) throws(CodeGenError) -> Temp {
    if signed, op == .divide || op == .modulo {
      return try signedDivision(remainder: op == .modulo, lhs, rhs)
    }
    let operation: ALUOperation
    switch op {
    case .add: operation = .add
    case .subtract: operation = .sub
    case .multiply: operation = .mul
    case .divide: operation = .div
    case .modulo: operation = .mod
    case .bitAnd: operation = .and
    case .bitOr: operation = .or
    case .bitXor: operation = .xor
    case .shiftLeft: operation = .lsh
    case .shiftRight: operation = lhs.type.isSigned ? .arsh : .rsh
    default:
      throw CodeGenError(message: "'\(op.rawValue)' is not arithmetic", range: range)
    }
    let left = try emitNumber(lhs)
    if case .integer(let value) = rhs.kind, let small = Int32(exactly: Int64(bitPattern: value)), small >= 0 {
      asm.emit(.alu64(operation, temps.use(left, &frame, &asm), .immediate(small)))
      return left
    }
    let right = try emitNumber(rhs)
    let registers = temps.use([left, right], &frame, &asm)
    asm.emit(.alu64(operation, registers[0], .register(registers[1])))
    temps.free(right, &frame)
    return left
  }

  /// `lhs / rhs` or `lhs % rhs` on signed numbers, as C computes them: the quotient rounds
  /// toward zero and the remainder takes the dividend's sign. The division itself is the
  /// unsigned one on the magnitudes, with the signs put back without branches
  /// (`s = x >> 63` arithmetically is 0 or -1, and `(x ^ s) - s` is `x` or `-x`). This works
  /// on every kernel, where the signed `sdiv`/`smod` forms need BPF ISA v4 (Linux 6.6): a
  /// BTF file checked with `swtrace check --btf` does not say which the kernel has. Division
  /// by zero gives 0 and a remainder by zero the dividend, as the kernel's unsigned forms do;
  /// the smallest s64 divided by -1 wraps to itself.
  mutating func signedDivision(remainder: Bool, _ lhs: TypedExpr, _ rhs: TypedExpr) throws(CodeGenError) -> Temp {
    let left = try emitNumber(lhs)
    let right = try emitNumber(rhs)
    let (leftSignTemp, _) = temps.allocate(&frame, &asm)
    let (rightSignTemp, _) = temps.allocate(&frame, &asm)
    let registers = temps.use([left, right, leftSignTemp, rightSignTemp], &frame, &asm)
    let (value, divisor, valueSign, divisorSign) = (registers[0], registers[1], registers[2], registers[3])
    for (register, sign) in [(value, valueSign), (divisor, divisorSign)] {
      asm.emit(.mov(sign, register))
      asm.emit(.alu64(.arsh, sign, .immediate(63)))
      asm.emit(.alu64(.xor, register, .register(sign)))
      asm.emit(.alu64(.sub, register, .register(sign)))
    }
    asm.emit(.alu64(remainder ? .mod : .div, value, .register(divisor)))
    // The quotient is negative when exactly one operand is; the remainder when the dividend is.
    if !remainder { asm.emit(.alu64(.xor, valueSign, .register(divisorSign))) }
    asm.emit(.alu64(.xor, value, .register(valueSign)))
    asm.emit(.alu64(.sub, value, .register(valueSign)))
    temps.free(right, &frame)
    temps.free(leftSignTemp, &frame)
    temps.free(rightSignTemp, &frame)
    return left
  }

  /// A condition as a 0/1 value. Every temporary is spilled first so that both arms of the
  /// branch see the same register state and the result lands in the same register.
  mutating func materialize(_ condition: TypedExpr) throws(CodeGenError) -> Temp {
    if case .integer(let decided) = condition.kind { return constant(decided != 0 ? 1 : 0) }
    temps.spillAll(&frame, &asm)
    let isFalse = asm.newLabel()
    let end = asm.newLabel()
    try branch(condition, ifFalse: isFalse)
    let (temp, register) = temps.allocate(&frame, &asm)
    asm.emit(.mov(register, 1))
    asm.jump(to: end)
    asm.bind(isFalse)
    asm.emit(.mov(register, 0))
    asm.bind(end)
    return temp
  }
}
