/// Decoding of the kernel's 8-byte encoding back into `Instruction` values.
///
/// Decoding is strict in the way the kernel is: fields an instruction does not use must be
/// zero, so `decode(encoded())` is the identity and anything decoded re-encodes to the same
/// bytes. Forms that are valid eBPF but have no `Instruction` case (signed division, sign
/// extending moves and loads, unconditional byte swaps, `gotol`, `may_goto`, load-acquire,
/// legacy packet loads, ...) are reported as `.unsupported` rather than as invalid.

/// Why a raw instruction stream could not be decoded. `slot` is the index of the offending
/// 8-byte slot, counted the way the kernel and `bpftool` count instructions.
public enum InstructionDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
  /// The opcode byte names no instruction.
  case invalidOpcode(slot: Int, opcode: UInt8)
  /// A register field holds a number above 10.
  case invalidRegister(slot: Int, register: UInt8)
  /// A field this instruction does not use is not zero.
  case reservedFieldNotZero(slot: Int, field: String)
  /// An operand value that the instruction does not allow (a byte-swap width of 24, ...).
  case invalidOperand(slot: Int, reason: String)
  /// `ld_imm64` is the last slot, or its second slot is not the all-zero continuation.
  case malformedWideInstruction(slot: Int)
  /// A valid encoding that `Instruction` has no case for.
  case unsupported(slot: Int, reason: String)

  public var slot: Int {
    switch self {
    case .invalidOpcode(let slot, _), .invalidRegister(let slot, _),
      .reservedFieldNotZero(let slot, _), .invalidOperand(let slot, _),
      .malformedWideInstruction(let slot), .unsupported(let slot, _):
      slot
    }
  }

  public var description: String {
    switch self {
    case .invalidOpcode(let slot, let opcode):
      "instruction \(slot): invalid opcode 0x\(String(opcode, radix: 16))"
    case .invalidRegister(let slot, let register):
      "instruction \(slot): register r\(register) does not exist"
    case .reservedFieldNotZero(let slot, let field):
      "instruction \(slot): unused field '\(field)' is not zero"
    case .invalidOperand(let slot, let reason):
      "instruction \(slot): \(reason)"
    case .malformedWideInstruction(let slot):
      "instruction \(slot): ld_imm64 is not followed by its second half"
    case .unsupported(let slot, let reason):
      "instruction \(slot): \(reason) is not supported"
    }
  }
}

extension Instruction {
  /// Decodes a whole program. `ld_imm64` consumes two raw instructions and yields one value.
  public static func decode(_ raw: [RawInstruction]) throws(InstructionDecodingError) -> [Instruction] {
    var result: [Instruction] = []
    result.reserveCapacity(raw.count)
    var slot = 0
    while slot < raw.count {
      let instruction = try decodeOne(raw, at: slot)
      result.append(instruction)
      slot += instruction.slotCount
    }
    return result
  }

  /// Decodes the instruction starting at `slot`, reading the second slot for `ld_imm64`.
  static func decodeOne(
    _ raw: [RawInstruction], at slot: Int
  ) throws(InstructionDecodingError) -> Instruction {
    let decoder = SlotDecoder(raw: raw[slot], slot: slot)
    switch raw[slot].opcode & 0x07 {
    case OpcodeBits.classALU, OpcodeBits.classALU64:
      return try decoder.arithmetic()
    case OpcodeBits.classJMP, OpcodeBits.classJMP32:
      return try decoder.jump()
    case OpcodeBits.classLD:
      let second = slot + 1 < raw.count ? raw[slot + 1] : nil
      return try decoder.wideLoad(second: second)
    case OpcodeBits.classLDX:
      return try decoder.memoryLoad()
    case OpcodeBits.classST, OpcodeBits.classSTX:
      return try decoder.memoryStore()
    default:
      preconditionFailure("the class field has three bits")
    }
  }
}

/// Field checks for one raw instruction; each method decodes one instruction class.
private struct SlotDecoder {
  typealias O = OpcodeBits
  let raw: RawInstruction
  let slot: Int

  init(raw: RawInstruction, slot: Int) {
    self.raw = raw
    self.slot = slot
  }

  private var opcode: UInt8 { raw.opcode }
  private var instructionClass: UInt8 { opcode & 0x07 }
  private var usesRegisterSource: Bool { opcode & O.sourceX != 0 }

  private func invalid() -> InstructionDecodingError {
    .invalidOpcode(slot: slot, opcode: opcode)
  }

  private func register(_ value: UInt8) throws(InstructionDecodingError) -> Register {
    guard value <= 10 else { throw .invalidRegister(slot: slot, register: value) }
    return Register(value)
  }

  private func requireZero(_ value: some BinaryInteger, _ field: String) throws(InstructionDecodingError) {
    guard value == 0 else { throw .reservedFieldNotZero(slot: slot, field: field) }
  }

  /// The second operand of ALU and conditional jump instructions.
  private func operand() throws(InstructionDecodingError) -> Operand {
    if usesRegisterSource {
      try requireZero(raw.immediate, "imm")
      return .register(try register(raw.src))
    }
    try requireZero(raw.src, "src_reg")
    return .immediate(raw.immediate)
  }

  private func size() -> AccessSize {
    // The two size bits always name one of the four sizes.
    AccessSize(rawValue: opcode & 0x18)!
  }

  func arithmetic() throws(InstructionDecodingError) -> Instruction {
    let is64 = instructionClass == O.classALU64
    let operation = opcode & 0xf0
    let dst = try register(raw.dst)
    if operation == O.aluEND {
      guard !is64 else {
        throw .unsupported(slot: slot, reason: "the unconditional byte swap (ALU64 END)")
      }
      try requireZero(raw.src, "src_reg")
      try requireZero(raw.offset, "off")
      guard [16, 32, 64].contains(raw.immediate) else {
        throw .invalidOperand(slot: slot, reason: "byte swap width \(raw.immediate) is not 16, 32 or 64")
      }
      return .endian(usesRegisterSource ? .big : .little, dst, bits: raw.immediate)
    }
    guard let op = ALUOperation(rawValue: operation) else { throw invalid() }
    if raw.offset != 0 {
      switch op {
      case .div where raw.offset == 1, .mod where raw.offset == 1:
        throw .unsupported(slot: slot, reason: "signed division and remainder")
      case .mov where [8, 16, 32].contains(raw.offset):
        throw .unsupported(slot: slot, reason: "sign-extending moves")
      default:
        throw .reservedFieldNotZero(slot: slot, field: "off")
      }
    }
    if op == .neg {
      guard !usesRegisterSource else { throw invalid() }
      try requireZero(raw.src, "src_reg")
      try requireZero(raw.immediate, "imm")
    }
    let source = try operand()
    return is64 ? .alu64(op, dst, source) : .alu32(op, dst, source)
  }

  func jump() throws(InstructionDecodingError) -> Instruction {
    let is64 = instructionClass == O.classJMP
    let operation = opcode & 0xf0
    switch operation {
    case O.jumpJA:
      guard is64 else { throw .unsupported(slot: slot, reason: "the long jump (gotol)") }
      guard !usesRegisterSource else { throw invalid() }
      try requireZero(raw.dst, "dst_reg")
      try requireZero(raw.src, "src_reg")
      try requireZero(raw.immediate, "imm")
      return .jump(offset: raw.offset)
    case O.jumpCALL:
      guard is64, !usesRegisterSource else { throw invalid() }
      try requireZero(raw.dst, "dst_reg")
      switch raw.src {
      case 0:
        try requireZero(raw.offset, "off")
        return .call(helper: raw.immediate)
      case O.pseudoCall:
        try requireZero(raw.offset, "off")
        return .callLocal(offset: raw.immediate)
      case O.pseudoKernelFunctionCall:
        // A nonzero offset selects a kernel module's BTF, which `Instruction` cannot hold.
        guard raw.offset == 0 else {
          throw .unsupported(slot: slot, reason: "calling a kernel module function")
        }
        return .callKernelFunction(btfID: raw.immediate)
      default:
        throw .invalidOperand(slot: slot, reason: "call kind \(raw.src) does not exist")
      }
    case O.jumpEXIT:
      guard is64, !usesRegisterSource else { throw invalid() }
      try requireZero(raw.dst, "dst_reg")
      try requireZero(raw.src, "src_reg")
      try requireZero(raw.offset, "off")
      try requireZero(raw.immediate, "imm")
      return .exit
    case 0xe0:
      throw .unsupported(slot: slot, reason: "may_goto")
    default:
      guard let condition = JumpCondition(rawValue: operation) else { throw invalid() }
      let dst = try register(raw.dst)
      let source = try operand()
      return is64
        ? .jumpIf(condition, dst, source, offset: raw.offset)
        : .jumpIf32(condition, dst, source, offset: raw.offset)
    }
  }

  func wideLoad(second: RawInstruction?) throws(InstructionDecodingError) -> Instruction {
    let mode = opcode & 0xe0
    guard mode == O.modeIMM else {
      if mode == 0x20 || mode == 0x40 {
        throw .unsupported(slot: slot, reason: "legacy packet loads (LD_ABS, LD_IND)")
      }
      throw invalid()
    }
    guard size() == .double else { throw invalid() }
    guard let second, second.opcode == 0, second.dst == 0, second.src == 0, second.offset == 0
    else { throw .malformedWideInstruction(slot: slot) }
    try requireZero(raw.offset, "off")
    let dst = try register(raw.dst)
    let low = UInt32(bitPattern: raw.immediate)
    let high = UInt32(bitPattern: second.immediate)
    switch raw.src {
    case 0:
      return .loadImmediate64(dst, UInt64(high) << 32 | UInt64(low))
    case O.pseudoMapFD:
      guard high == 0 else { throw .reservedFieldNotZero(slot: slot + 1, field: "imm") }
      return .loadMapFD(dst, fd: raw.immediate)
    case O.pseudoMapValue:
      return .loadMapValue(dst, fd: raw.immediate, offset: second.immediate)
    case O.pseudoBTFID:
      guard high == 0 else { throw .reservedFieldNotZero(slot: slot + 1, field: "imm") }
      return .loadBTFID(dst, btfID: raw.immediate)
    case 4, 5, 6:
      throw .unsupported(slot: slot, reason: "ld_imm64 with pseudo source \(raw.src)")
    default:
      throw .invalidOperand(slot: slot, reason: "ld_imm64 pseudo source \(raw.src) does not exist")
    }
  }

  func memoryLoad() throws(InstructionDecodingError) -> Instruction {
    switch opcode & 0xe0 {
    case O.modeMEM:
      try requireZero(raw.immediate, "imm")
      return .load(size(), try register(raw.dst), try register(raw.src), offset: raw.offset)
    case 0x80:
      throw .unsupported(slot: slot, reason: "sign-extending loads")
    default:
      throw invalid()
    }
  }

  func memoryStore() throws(InstructionDecodingError) -> Instruction {
    let mode = opcode & 0xe0
    let dst = try register(raw.dst)
    if instructionClass == O.classST {
      guard mode == O.modeMEM else { throw invalid() }
      try requireZero(raw.src, "src_reg")
      return .storeImmediate(size(), dst, offset: raw.offset, raw.immediate)
    }
    switch mode {
    case O.modeMEM:
      try requireZero(raw.immediate, "imm")
      return .store(size(), dst, offset: raw.offset, try register(raw.src))
    case O.modeATOMIC:
      guard size() == .word || size() == .double else { throw invalid() }
      guard let operation = AtomicOperation(immediate: raw.immediate) else {
        if raw.immediate == 0x100 || raw.immediate == 0x110 {
          throw .unsupported(slot: slot, reason: "load-acquire and store-release")
        }
        throw .invalidOperand(
          slot: slot, reason: "atomic operation 0x\(String(raw.immediate, radix: 16)) does not exist")
      }
      return .atomic(operation, size(), dst, offset: raw.offset, try register(raw.src))
    default:
      throw invalid()
    }
  }
}
