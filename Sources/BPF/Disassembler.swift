/// Text in the style of `bpftool prog dump xlated`, so a program printed by `swtrace` can be
/// compared line by line with what the kernel reports after loading it.
///
/// Every line starts with the opcode byte of the instruction's first slot in hex, and
/// instructions are numbered by slot, as the kernel counts them (`ld_imm64` takes two).
public struct Disassembler: Sendable {
  /// Names of maps by the index `ld_imm64` holds in its fd field at code generation time.
  public var mapNames: [Int32: String]

  public init(mapNames: [Int32: String] = [:]) {
    self.mapNames = mapNames
  }

  /// The whole program, one numbered instruction per line.
  public func text(_ program: Program) -> String {
    var output = ""
    var slot = 0
    for instruction in program.instructions {
      output += numbered(slot, instruction)
      slot += instruction.slotCount
    }
    return output
  }

  /// Like `bpftool prog dump xlated linum`: before each run of instructions whose tags have
  /// the same comment (for swtrace, the spec line they came from), that comment on a line of
  /// its own after `; `.
  public func text(_ program: Program, comment: (SourceTag) -> String) -> String {
    var output = ""
    var slot = 0
    var previousComment: String?
    for (index, instruction) in program.instructions.enumerated() {
      // Instructions without a tag (prologue, glue) continue the current run rather than
      // starting a new one, so the comment is not repeated after them.
      if index < program.sourceTags.count, let tag = program.sourceTags[index] {
        let text = comment(tag)
        if text != previousComment {
          output += "; \(text)\n"
          previousComment = text
        }
      }
      output += numbered(slot, instruction)
      slot += instruction.slotCount
    }
    return output
  }

  private func numbered(_ slot: Int, _ instruction: Instruction) -> String {
    let number = String(slot)
    let padding = String(repeating: " ", count: max(0, 4 - number.count))
    return "\(padding)\(number): \(line(instruction))\n"
  }

  /// One instruction without its number: `(bf) r6 = r1`.
  public func line(_ instruction: Instruction) -> String {
    let opcode = instruction.encoded()[0].opcode
    let hex = String(opcode, radix: 16)
    return "(\(hex.count == 1 ? "0" + hex : hex)) \(body(instruction))"
  }

  private func body(_ instruction: Instruction) -> String {
    switch instruction {
    case .alu64(let op, let dst, let operand):
      return arithmetic(op, dst, operand, prefix: "r")
    case .alu32(let op, let dst, let operand):
      return arithmetic(op, dst, operand, prefix: "w")
    case .endian(let order, let dst, let bits):
      return "r\(dst.index) = \(order == .big ? "be" : "le")\(bits) r\(dst.index)"
    case .loadImmediate64(let dst, let value):
      return "r\(dst.index) = 0x\(String(value, radix: 16))"
    case .loadMapFD(let dst, let fd):
      return "r\(dst.index) = map[\(mapName(fd))]"
    case .loadMapValue(let dst, let fd, let offset):
      return "r\(dst.index) = map[\(mapName(fd))][0]+\(offset)"
    case .loadBTFID(let dst, let id):
      return "r\(dst.index) = btf_id[\(id)]"
    case .load(let size, let dst, let src, let offset):
      return "r\(dst.index) = \(memory(size, src, offset))"
    case .store(let size, let dst, let offset, let src):
      return "\(memory(size, dst, offset)) = r\(src.index)"
    case .storeImmediate(let size, let dst, let offset, let value):
      return "\(memory(size, dst, offset)) = \(value)"
    case .atomic(let op, let size, let dst, let offset, let src):
      return atomic(op, size, dst, offset, src)
    case .jump(let offset):
      return "goto pc\(signed(offset))"
    case .jumpIf(let condition, let dst, let operand, let offset):
      return conditional(condition, dst, operand, offset, prefix: "r")
    case .jumpIf32(let condition, let dst, let operand, let offset):
      return conditional(condition, dst, operand, offset, prefix: "w")
    case .call(let helper):
      let name = HelperFunction(rawValue: helper).map { "bpf_" + $0.name } ?? "unknown"
      return "call \(name)#\(helper)"
    case .callKernelFunction(let id):
      return "call kfunc#\(id)"
    case .callLocal(let offset):
      return "call pc\(signed(offset))"
    case .exit:
      return "exit"
    }
  }

  private func mapName(_ fd: Int32) -> String {
    mapNames[fd] ?? "idx:\(fd)"
  }

  private func signed(_ value: some BinaryInteger) -> String {
    value < 0 ? "\(value)" : "+\(value)"
  }

  private func typeName(_ size: AccessSize) -> String { "u\(size.bytes * 8)" }

  private func memory(_ size: AccessSize, _ base: Register, _ offset: Int16) -> String {
    "*(\(typeName(size)) *)(r\(base.index) \(signed(offset)))"
  }

  private func arithmetic(_ op: ALUOperation, _ dst: Register, _ operand: Operand, prefix: String) -> String {
    let d = "\(prefix)\(dst.index)"
    if op == .neg { return "\(d) = -\(d)" }
    let source: String
    switch operand {
    case .register(let r): source = "\(prefix)\(r.index)"
    case .immediate(let value): source = "\(value)"
    }
    return "\(d) \(Self.operatorText[op]!) \(source)"
  }

  private static let operatorText: [ALUOperation: String] = [
    .add: "+=", .sub: "-=", .mul: "*=", .div: "/=", .or: "|=", .and: "&=", .lsh: "<<=",
    .rsh: ">>=", .mod: "%=", .xor: "^=", .mov: "=", .arsh: "s>>=",
  ]

  private static let conditionText: [JumpCondition: String] = [
    .eq: "==", .gt: ">", .ge: ">=", .set: "&", .ne: "!=", .sgt: "s>", .sge: "s>=", .lt: "<",
    .le: "<=", .slt: "s<", .sle: "s<=",
  ]

  private func conditional(
    _ condition: JumpCondition, _ dst: Register, _ operand: Operand, _ offset: Int16, prefix: String
  ) -> String {
    let source: String
    switch operand {
    case .register(let r): source = "\(prefix)\(r.index)"
    case .immediate(let value): source = "0x\(String(UInt32(bitPattern: value), radix: 16))"
    }
    return "if \(prefix)\(dst.index) \(Self.conditionText[condition]!) \(source) goto pc\(signed(offset))"
  }

  private func atomic(
    _ op: AtomicOperation, _ size: AccessSize, _ dst: Register, _ offset: Int16, _ src: Register
  ) -> String {
    // The kernel names registers with r here even for 32-bit operations.
    let r = "r"
    let suffix = size == .double ? "64" : ""
    let location = "(\(typeName(size)) *)(r\(dst.index) \(signed(offset)))"
    switch op {
    case .add, .or, .and, .xor:
      let symbol = [AtomicOperation.add: "+=", .or: "|=", .and: "&=", .xor: "^="][op]!
      return "lock *\(location) \(symbol) r\(src.index)"
    case .fetchAdd, .fetchOr, .fetchAnd, .fetchXor:
      let name = [AtomicOperation.fetchAdd: "add", .fetchOr: "or", .fetchAnd: "and", .fetchXor: "xor"][op]!
      return "\(r)\(src.index) = atomic\(suffix)_fetch_\(name)(\(location), \(r)\(src.index))"
    case .exchange:
      return "\(r)\(src.index) = atomic\(suffix)_xchg(\(location), \(r)\(src.index))"
    case .compareExchange:
      return "\(r)0 = atomic\(suffix)_cmpxchg(\(location), \(r)0, \(r)\(src.index))"
    }
  }
}
