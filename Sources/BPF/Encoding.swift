/// The kernel's 8-byte instruction format (`struct bpf_insn`).
public struct RawInstruction: Hashable, Sendable {
  public var opcode: UInt8
  public var dst: UInt8
  public var src: UInt8
  public var offset: Int16
  public var immediate: Int32

  public init(opcode: UInt8, dst: UInt8 = 0, src: UInt8 = 0, offset: Int16 = 0, immediate: Int32 = 0) {
    self.opcode = opcode
    self.dst = dst
    self.src = src
    self.offset = offset
    self.immediate = immediate
  }

  /// Little-endian bytes as the kernel reads them.
  public var bytes: [UInt8] {
    let off = UInt16(bitPattern: offset)
    let imm = UInt32(bitPattern: immediate)
    return [
      opcode, (src << 4) | (dst & 0x0f), UInt8(off & 0xff), UInt8(off >> 8),
      UInt8(imm & 0xff), UInt8((imm >> 8) & 0xff), UInt8((imm >> 16) & 0xff), UInt8(imm >> 24),
    ]
  }

  public init(bytes: some Collection<UInt8>) {
    let b = Array(bytes)
    precondition(b.count == 8)
    self.opcode = b[0]
    self.dst = b[1] & 0x0f
    self.src = b[1] >> 4
    self.offset = Int16(bitPattern: UInt16(b[2]) | UInt16(b[3]) << 8)
    self.immediate = Int32(
      bitPattern: UInt32(b[4]) | UInt32(b[5]) << 8 | UInt32(b[6]) << 16 | UInt32(b[7]) << 24)
  }
}

/// Instruction classes and source/mode bits of the opcode byte.
public enum OpcodeBits {
  public static let classLD: UInt8 = 0x00
  public static let classLDX: UInt8 = 0x01
  public static let classST: UInt8 = 0x02
  public static let classSTX: UInt8 = 0x03
  public static let classALU: UInt8 = 0x04
  public static let classJMP: UInt8 = 0x05
  public static let classJMP32: UInt8 = 0x06
  public static let classALU64: UInt8 = 0x07
  public static let sourceK: UInt8 = 0x00
  public static let sourceX: UInt8 = 0x08
  public static let modeIMM: UInt8 = 0x00
  public static let modeMEM: UInt8 = 0x60
  public static let modeATOMIC: UInt8 = 0xc0
  public static let jumpJA: UInt8 = 0x00
  public static let jumpCALL: UInt8 = 0x80
  public static let jumpEXIT: UInt8 = 0x90
  public static let aluEND: UInt8 = 0xd0
  // ld_imm64 pseudo sources.
  public static let pseudoMapFD: UInt8 = 1
  public static let pseudoMapValue: UInt8 = 2
  public static let pseudoBTFID: UInt8 = 3
  public static let pseudoCall: UInt8 = 1
  public static let pseudoKernelFunctionCall: UInt8 = 2
  // Atomic immediates.
  public static let atomicFetch: Int32 = 0x01
  public static let atomicXchg: Int32 = 0xe0 | 0x01
  public static let atomicCmpXchg: Int32 = 0xf0 | 0x01
}

extension AtomicOperation {
  var immediate: Int32 {
    switch self {
    case .add: 0x00
    case .or: 0x40
    case .and: 0x50
    case .xor: 0xa0
    case .fetchAdd: 0x00 | OpcodeBits.atomicFetch
    case .fetchOr: 0x40 | OpcodeBits.atomicFetch
    case .fetchAnd: 0x50 | OpcodeBits.atomicFetch
    case .fetchXor: 0xa0 | OpcodeBits.atomicFetch
    case .exchange: OpcodeBits.atomicXchg
    case .compareExchange: OpcodeBits.atomicCmpXchg
    }
  }

  init?(immediate: Int32) {
    switch immediate {
    case 0x00: self = .add
    case 0x40: self = .or
    case 0x50: self = .and
    case 0xa0: self = .xor
    case 0x01: self = .fetchAdd
    case 0x41: self = .fetchOr
    case 0x51: self = .fetchAnd
    case 0xa1: self = .fetchXor
    case 0xe1: self = .exchange
    case 0xf1: self = .compareExchange
    default: return nil
    }
  }
}

extension Instruction {
  /// The kernel encoding: one raw instruction, or two for `ld_imm64`.
  public func encoded() -> [RawInstruction] {
    typealias O = OpcodeBits
    func operand(_ op: Operand) -> (src: UInt8, reg: UInt8, imm: Int32) {
      switch op {
      case .register(let r): (O.sourceX, r.index, 0)
      case .immediate(let v): (O.sourceK, 0, v)
      }
    }
    func wide(_ dst: Register, _ pseudo: UInt8, _ low: UInt32, _ high: UInt32) -> [RawInstruction] {
      [
        RawInstruction(
          opcode: O.classLD | O.modeIMM | AccessSize.double.rawValue, dst: dst.index, src: pseudo,
          immediate: Int32(bitPattern: low)),
        RawInstruction(opcode: 0, immediate: Int32(bitPattern: high)),
      ]
    }
    switch self {
    case .alu64(let op, let dst, let src), .alu32(let op, let dst, let src):
      let cls = if case .alu64 = self { O.classALU64 } else { O.classALU }
      let (s, reg, imm) = operand(src)
      return [RawInstruction(opcode: cls | op.rawValue | s, dst: dst.index, src: reg, immediate: imm)]
    case .endian(let order, let dst, let bits):
      let s = order == .big ? O.sourceX : O.sourceK
      return [RawInstruction(opcode: O.classALU | O.aluEND | s, dst: dst.index, immediate: bits)]
    case .loadImmediate64(let dst, let value):
      return wide(dst, 0, UInt32(truncatingIfNeeded: value), UInt32(truncatingIfNeeded: value >> 32))
    case .loadMapFD(let dst, let fd):
      return wide(dst, O.pseudoMapFD, UInt32(bitPattern: fd), 0)
    case .loadMapValue(let dst, let fd, let offset):
      return wide(dst, O.pseudoMapValue, UInt32(bitPattern: fd), UInt32(bitPattern: offset))
    case .loadBTFID(let dst, let id):
      return wide(dst, O.pseudoBTFID, UInt32(bitPattern: id), 0)
    case .load(let size, let dst, let src, let offset):
      return [
        RawInstruction(
          opcode: O.classLDX | O.modeMEM | size.rawValue, dst: dst.index, src: src.index,
          offset: offset)
      ]
    case .store(let size, let dst, let offset, let src):
      return [
        RawInstruction(
          opcode: O.classSTX | O.modeMEM | size.rawValue, dst: dst.index, src: src.index,
          offset: offset)
      ]
    case .storeImmediate(let size, let dst, let offset, let value):
      return [
        RawInstruction(
          opcode: O.classST | O.modeMEM | size.rawValue, dst: dst.index, offset: offset,
          immediate: value)
      ]
    case .atomic(let op, let size, let dst, let offset, let src):
      return [
        RawInstruction(
          opcode: O.classSTX | O.modeATOMIC | size.rawValue, dst: dst.index, src: src.index,
          offset: offset, immediate: op.immediate)
      ]
    case .jump(let offset):
      return [RawInstruction(opcode: O.classJMP | O.jumpJA, offset: offset)]
    case .jumpIf(let cond, let dst, let src, let offset), .jumpIf32(let cond, let dst, let src, let offset):
      let cls = if case .jumpIf = self { O.classJMP } else { O.classJMP32 }
      let (s, reg, imm) = operand(src)
      return [
        RawInstruction(
          opcode: cls | cond.rawValue | s, dst: dst.index, src: reg, offset: offset, immediate: imm)
      ]
    case .call(let helper):
      return [RawInstruction(opcode: O.classJMP | O.jumpCALL, immediate: helper)]
    case .callKernelFunction(let id):
      return [
        RawInstruction(opcode: O.classJMP | O.jumpCALL, src: O.pseudoKernelFunctionCall, immediate: id)
      ]
    case .callLocal(let offset):
      return [RawInstruction(opcode: O.classJMP | O.jumpCALL, src: O.pseudoCall, immediate: offset)]
    case .exit:
      return [RawInstruction(opcode: O.classJMP | O.jumpEXIT)]
    }
  }
}
