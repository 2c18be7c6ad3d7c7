import Testing

@testable import BPF

/// Encodings checked against bytes worked out by hand from the kernel's `struct bpf_insn`
/// layout: opcode, src<<4|dst, little-endian 16-bit offset, little-endian 32-bit immediate.
@Suite struct EncodingTests {
  static let known: [(Instruction, [UInt8])] = [
    (.mov(.r6, .r1), [0xbf, 0x16, 0, 0, 0, 0, 0, 0]),
    (.load(.word, .r1, .r6, offset: 16), [0x61, 0x61, 0x10, 0, 0, 0, 0, 0]),
    (.jumpIf(.ne, .r1, .immediate(0xdead), offset: 10), [0x55, 0x01, 0x0a, 0, 0xad, 0xde, 0, 0]),
    (.call(helper: 131), [0x85, 0, 0, 0, 0x83, 0, 0, 0]),
    (.exit, [0x95, 0, 0, 0, 0, 0, 0, 0]),
    (.add(.r1, -8), [0x07, 0x01, 0, 0, 0xf8, 0xff, 0xff, 0xff]),
    (.store(.double, .fp, offset: -8, .r1), [0x7b, 0x1a, 0xf8, 0xff, 0, 0, 0, 0]),
    (.storeImmediate(.word, .fp, offset: -4, 0), [0x62, 0x0a, 0xfc, 0xff, 0, 0, 0, 0]),
    (.mov(.r0, 0), [0xb7, 0, 0, 0, 0, 0, 0, 0]),
    (.alu32(.mov, .r0, .immediate(0)), [0xb4, 0, 0, 0, 0, 0, 0, 0]),
    (.atomic(.add, .double, .r0, offset: 0, .r1), [0xdb, 0x10, 0, 0, 0, 0, 0, 0]),
    (.atomic(.compareExchange, .double, .fp, offset: -8, .r2), [0xdb, 0x2a, 0xf8, 0xff, 0xf1, 0, 0, 0]),
    (.atomic(.fetchAdd, .word, .r3, offset: 4, .r4), [0xc3, 0x43, 0x04, 0, 0x01, 0, 0, 0]),
    (.endian(.big, .r1, bits: 16), [0xdc, 0x01, 0, 0, 0x10, 0, 0, 0]),
    (.endian(.little, .r1, bits: 64), [0xd4, 0x01, 0, 0, 0x40, 0, 0, 0]),
    (.jumpIf32(.lt, .r1, .register(.r2), offset: -3), [0xae, 0x21, 0xfd, 0xff, 0, 0, 0, 0]),
    (.jump(offset: -1), [0x05, 0, 0xff, 0xff, 0, 0, 0, 0]),
    (.alu64(.arsh, .r3, .immediate(7)), [0xc7, 0x03, 0, 0, 0x07, 0, 0, 0]),
    (.alu64(.neg, .r3, .immediate(0)), [0x87, 0x03, 0, 0, 0, 0, 0, 0]),
    (.load(.byte, .r0, .r9, offset: -1), [0x71, 0x90, 0xff, 0xff, 0, 0, 0, 0]),
    (.callLocal(offset: 5), [0x85, 0x10, 0, 0, 0x05, 0, 0, 0]),
    (.callKernelFunction(btfID: 0x1234), [0x85, 0x20, 0, 0, 0x34, 0x12, 0, 0]),
  ]

  @Test(arguments: 0..<known.count)
  func knownBytes(_ index: Int) {
    let (instruction, bytes) = Self.known[index]
    let encoded = instruction.encoded()
    #expect(encoded.count == 1)
    #expect(encoded.first?.bytes == bytes, "\(instruction)")
    #expect(RawInstruction(bytes: bytes) == encoded.first)
  }

  @Test func wideLoads() {
    #expect(
      Instruction.loadImmediate64(.r2, 0x1122_3344_5566_7788).encoded().flatMap(\.bytes) == [
        0x18, 0x02, 0, 0, 0x88, 0x77, 0x66, 0x55, 0, 0, 0, 0, 0x44, 0x33, 0x22, 0x11,
      ])
    #expect(
      Instruction.loadMapFD(.r1, fd: 3).encoded().flatMap(\.bytes) == [
        0x18, 0x11, 0, 0, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      ])
    #expect(
      Instruction.loadMapValue(.r1, fd: 2, offset: 16).encoded().flatMap(\.bytes) == [
        0x18, 0x21, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0,
      ])
    #expect(Instruction.loadImmediate64(.r0, 1).slotCount == 2)
  }

  @Test func assemblerCountsWideLoadsAsTwoSlots() throws {
    var assembler = Assembler()
    let end = assembler.newLabel()
    assembler.jump(if: .eq, .r1, .immediate(0), to: end)
    assembler.emit(.loadImmediate64(.r0, 5))
    assembler.bind(end)
    assembler.emit(.exit)
    let program = try assembler.finish()
    #expect(program.instructions[0] == .jumpIf(.eq, .r1, .immediate(0), offset: 2))
    #expect(program.slotCount == 4)
  }
}
