/// The eBPF instruction set as Swift values. `Instruction` is what code generation produces and
/// the verifier pre-check reads; `RawInstruction` is the 8-byte kernel encoding.

/// One of the eleven eBPF registers. r10 is the read-only frame pointer.
public struct Register: Hashable, Sendable, Comparable, CustomStringConvertible {
  public let index: UInt8
  public init(_ index: UInt8) {
    precondition(index <= 10, "eBPF has registers r0...r10")
    self.index = index
  }
  public static let r0 = Register(0), r1 = Register(1), r2 = Register(2), r3 = Register(3)
  public static let r4 = Register(4), r5 = Register(5), r6 = Register(6), r7 = Register(7)
  public static let r8 = Register(8), r9 = Register(9), r10 = Register(10)
  /// The frame pointer: the stack is the 512 bytes below it.
  public static let fp = r10
  public static func < (a: Register, b: Register) -> Bool { a.index < b.index }
  public var description: String { "r\(index)" }
}

/// Access width of loads, stores and atomics.
public enum AccessSize: UInt8, Hashable, Sendable, CaseIterable {
  case byte = 0x10  // BPF_B
  case half = 0x08  // BPF_H
  case word = 0x00  // BPF_W
  case double = 0x18  // BPF_DW

  public var bytes: Int {
    switch self {
    case .byte: 1
    case .half: 2
    case .word: 4
    case .double: 8
    }
  }

  public init?(bytes: Int) {
    switch bytes {
    case 1: self = .byte
    case 2: self = .half
    case 4: self = .word
    case 8: self = .double
    default: return nil
    }
  }
}

public enum ALUOperation: UInt8, Hashable, Sendable, CaseIterable {
  case add = 0x00, sub = 0x10, mul = 0x20, div = 0x30, or = 0x40, and = 0x50, lsh = 0x60
  case rsh = 0x70, neg = 0x80, mod = 0x90, xor = 0xa0, mov = 0xb0, arsh = 0xc0
}

public enum JumpCondition: UInt8, Hashable, Sendable, CaseIterable {
  case eq = 0x10, gt = 0x20, ge = 0x30, set = 0x40, ne = 0x50, sgt = 0x60, sge = 0x70
  case lt = 0xa0, le = 0xb0, slt = 0xc0, sle = 0xd0

  /// The condition that holds exactly when this one does not.
  public var negated: JumpCondition? {
    switch self {
    case .eq: .ne
    case .ne: .eq
    case .gt: .le
    case .le: .gt
    case .ge: .lt
    case .lt: .ge
    case .sgt: .sle
    case .sle: .sgt
    case .sge: .slt
    case .slt: .sge
    case .set: nil
    }
  }
}

/// Byte-order conversion: `to` is the byte order the value is converted to.
public enum Endianness: Hashable, Sendable {
  case little, big
}

public enum AtomicOperation: Hashable, Sendable {
  case add, or, and, xor
  case fetchAdd, fetchOr, fetchAnd, fetchXor
  case exchange, compareExchange
}

/// The second operand of ALU and jump instructions.
public enum Operand: Hashable, Sendable {
  case register(Register)
  case immediate(Int32)
}

/// A decoded eBPF instruction. Jumps hold resolved offsets (in instruction slots, relative
/// to the next slot, as the kernel counts them); `Assembler` computes them from labels.
public enum Instruction: Hashable, Sendable {
  case alu64(ALUOperation, Register, Operand)
  case alu32(ALUOperation, Register, Operand)
  /// `dst = bswap/convert(dst)` to the given byte order, on 16, 32 or 64 bits.
  case endian(Endianness, Register, bits: Int32)
  /// `ld_imm64`: occupies two slots.
  case loadImmediate64(Register, UInt64)
  /// `ld_imm64` with `BPF_PSEUDO_MAP_FD`: the register receives a pointer to the map.
  case loadMapFD(Register, fd: Int32)
  /// `ld_imm64` with `BPF_PSEUDO_MAP_VALUE`: a pointer into an array map's value.
  case loadMapValue(Register, fd: Int32, offset: Int32)
  /// `ld_imm64` with `BPF_PSEUDO_BTF_ID`: the address of a kernel variable.
  case loadBTFID(Register, btfID: Int32)
  /// `dst = *(size *)(src + offset)`
  case load(AccessSize, Register, Register, offset: Int16)
  /// `*(size *)(dst + offset) = src`
  case store(AccessSize, Register, offset: Int16, Register)
  /// `*(size *)(dst + offset) = imm`
  case storeImmediate(AccessSize, Register, offset: Int16, Int32)
  /// Atomic read-modify-write of `*(size *)(dst + offset)` with `src` (word or double only).
  case atomic(AtomicOperation, AccessSize, Register, offset: Int16, Register)
  case jump(offset: Int16)
  case jumpIf(JumpCondition, Register, Operand, offset: Int16)
  case jumpIf32(JumpCondition, Register, Operand, offset: Int16)
  /// A call of a kernel helper by its number (`BPF_FUNC_*`).
  case call(helper: Int32)
  /// A call of a kernel function exported to BPF, by its BTF id.
  case callKernelFunction(btfID: Int32)
  /// A call of a BPF-to-BPF subprogram, relative offset in slots.
  case callLocal(offset: Int32)
  case exit

  /// Instruction slots this instruction takes: two for the `ld_imm64` forms, one otherwise.
  public var slotCount: Int {
    switch self {
    case .loadImmediate64, .loadMapFD, .loadMapValue, .loadBTFID: 2
    default: 1
    }
  }

  /// `true` for instructions after which control does not fall through.
  public var endsBlock: Bool {
    switch self {
    case .jump, .exit: true
    default: false
    }
  }
}

/// Convenience constructors that read like assembly.
extension Instruction {
  public static func mov(_ dst: Register, _ src: Register) -> Instruction {
    .alu64(.mov, dst, .register(src))
  }
  public static func mov(_ dst: Register, _ value: Int32) -> Instruction {
    .alu64(.mov, dst, .immediate(value))
  }
  public static func add(_ dst: Register, _ value: Int32) -> Instruction {
    .alu64(.add, dst, .immediate(value))
  }
  public static func add(_ dst: Register, _ src: Register) -> Instruction {
    .alu64(.add, dst, .register(src))
  }
}
