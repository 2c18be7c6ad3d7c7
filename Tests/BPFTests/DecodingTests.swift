import Testing

@testable import BPF

@Suite struct DecodingTests {
  /// At least one instruction of every encodable form.
  static var everyForm: [Instruction] {
    var all: [Instruction] = []
    let operands: [Operand] = [.immediate(-7), .register(.r3)]
    for op in ALUOperation.allCases {
      if op == .neg {
        all += [.alu64(.neg, .r2, .immediate(0)), .alu32(.neg, .r2, .immediate(0))]
        continue
      }
      for operand in operands { all += [.alu64(op, .r2, operand), .alu32(op, .r9, operand)] }
    }
    for order in [Endianness.little, .big] {
      for bits: Int32 in [16, 32, 64] { all.append(.endian(order, .r4, bits: bits)) }
    }
    all += [
      .loadImmediate64(.r1, 0), .loadImmediate64(.r1, .max), .loadImmediate64(.r7, 0x8000_0000_0000_0001),
      .loadMapFD(.r1, fd: 4), .loadMapValue(.r2, fd: 1, offset: 24), .loadBTFID(.r3, btfID: 99),
    ]
    for size in AccessSize.allCases {
      all += [
        .load(size, .r0, .fp, offset: -8), .store(size, .fp, offset: -16, .r5),
        .storeImmediate(size, .r6, offset: 3, -2),
      ]
    }
    let atomics: [AtomicOperation] = [
      .add, .or, .and, .xor, .fetchAdd, .fetchOr, .fetchAnd, .fetchXor, .exchange, .compareExchange,
    ]
    for op in atomics {
      all += [.atomic(op, .word, .r1, offset: 4, .r2), .atomic(op, .double, .fp, offset: -8, .r3)]
    }
    all.append(.jump(offset: -3))
    for condition in JumpCondition.allCases {
      for operand in operands {
        all += [
          .jumpIf(condition, .r1, operand, offset: 2), .jumpIf32(condition, .r8, operand, offset: -1),
        ]
      }
    }
    all += [.call(helper: 1), .callKernelFunction(btfID: 1234), .callLocal(offset: -20), .exit]
    return all
  }

  @Test func everyFormRoundTrips() throws {
    let instructions = Self.everyForm
    let raw = Program(instructions: instructions).encoded()
    #expect(try Instruction.decode(raw) == instructions)
    // And through bytes.
    let bytes = raw.flatMap(\.bytes)
    let reread = stride(from: 0, to: bytes.count, by: 8).map { RawInstruction(bytes: bytes[$0..<$0 + 8]) }
    #expect(reread == raw)
  }

  @Test(arguments: everyForm)
  func singleInstructionRoundTrips(_ instruction: Instruction) throws {
    #expect(try Instruction.decode(instruction.encoded()) == [instruction])
  }

  static let invalid: [(RawInstruction, InstructionDecodingError)] = [
    (RawInstruction(opcode: 0xe7), .invalidOpcode(slot: 0, opcode: 0xe7)),
    (RawInstruction(opcode: 0xf5, dst: 1), .invalidOpcode(slot: 0, opcode: 0xf5)),
    (RawInstruction(opcode: 0xbf, dst: 11, src: 1), .invalidRegister(slot: 0, register: 11)),
    (RawInstruction(opcode: 0x8f, dst: 1, src: 2), .invalidOpcode(slot: 0, opcode: 0x8f)),
    (RawInstruction(opcode: 0x95, immediate: 1), .reservedFieldNotZero(slot: 0, field: "imm")),
    (RawInstruction(opcode: 0xb7, dst: 1, src: 2, immediate: 1), .reservedFieldNotZero(slot: 0, field: "src_reg")),
    (RawInstruction(opcode: 0xbf, dst: 1, src: 2, immediate: 1), .reservedFieldNotZero(slot: 0, field: "imm")),
    (RawInstruction(opcode: 0x07, dst: 1, offset: 3), .reservedFieldNotZero(slot: 0, field: "off")),
    (RawInstruction(opcode: 0xd4, dst: 1, immediate: 24),
     .invalidOperand(slot: 0, reason: "byte swap width 24 is not 16, 32 or 64")),
    (RawInstruction(opcode: 0x18, dst: 1, immediate: 1), .malformedWideInstruction(slot: 0)),
    (RawInstruction(opcode: 0xdb, dst: 1, src: 2, immediate: 0x02),
     .invalidOperand(slot: 0, reason: "atomic operation 0x2 does not exist")),
    (RawInstruction(opcode: 0xd3, dst: 1, src: 2), .invalidOpcode(slot: 0, opcode: 0xd3)),
    (RawInstruction(opcode: 0x3f, dst: 1, src: 2, offset: 1),
     .unsupported(slot: 0, reason: "signed division and remainder")),
    (RawInstruction(opcode: 0xbf, dst: 1, src: 2, offset: 8), .unsupported(slot: 0, reason: "sign-extending moves")),
    (RawInstruction(opcode: 0xd7, dst: 1, immediate: 16),
     .unsupported(slot: 0, reason: "the unconditional byte swap (ALU64 END)")),
    (RawInstruction(opcode: 0x06, immediate: 5), .unsupported(slot: 0, reason: "the long jump (gotol)")),
    (RawInstruction(opcode: 0x81, dst: 1, src: 2), .unsupported(slot: 0, reason: "sign-extending loads")),
    (RawInstruction(opcode: 0xe5), .unsupported(slot: 0, reason: "may_goto")),
    (RawInstruction(opcode: 0x20), .unsupported(slot: 0, reason: "legacy packet loads (LD_ABS, LD_IND)")),
    (RawInstruction(opcode: 0x85, src: 3), .invalidOperand(slot: 0, reason: "call kind 3 does not exist")),
  ]

  @Test(arguments: 0..<invalid.count)
  func invalidEncodings(_ index: Int) {
    let (raw, error) = Self.invalid[index]
    #expect(throws: error) { try Instruction.decode([raw]) }
  }

  @Test func wideLoadNeedsItsSecondHalf() {
    let first = RawInstruction(opcode: 0x18, dst: 1)
    #expect(throws: InstructionDecodingError.malformedWideInstruction(slot: 1)) {
      try Instruction.decode([RawInstruction(opcode: 0x95), first])
    }
    #expect(throws: InstructionDecodingError.malformedWideInstruction(slot: 0)) {
      try Instruction.decode([first, RawInstruction(opcode: 0x95)])
    }
    #expect(throws: InstructionDecodingError.reservedFieldNotZero(slot: 1, field: "imm")) {
      try Instruction.decode([RawInstruction(opcode: 0x18, dst: 1, src: 1), RawInstruction(opcode: 0, immediate: 1)])
    }
  }

  @Test func errorsNameTheSlot() {
    let raw = Instruction.loadImmediate64(.r0, 1).encoded() + [RawInstruction(opcode: 0xff)]
    #expect(throws: InstructionDecodingError.invalidOpcode(slot: 2, opcode: 0xff)) { try Instruction.decode(raw) }
  }
}
