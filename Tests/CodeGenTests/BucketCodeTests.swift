// The bucket index the generated code computes, run instruction by instruction on chosen
// values and compared with `Buckets`, the numbering the printer uses. The end-to-end tests see
// only the packet lengths a veth carries; this reaches every step of the log2 search (the
// 32-bit one too) and each way an lhist divides (shift, divide, step 1, folded or not).

import BPF
import CodeGen
import Sema
import Testing

/// Runs the straight-line-and-branches subset of eBPF a `hist`/`lhist` program uses: ALU,
/// jumps, loads and stores, map lookups and updates. The tracepoint's skb is a memory region
/// where every load reads `skbValue`, so `len` is whatever the test says.
struct BucketProgramRunner {
  let program: Program
  let keySizes: [Int32: Int]
  var skbValue: UInt64 = 0
  /// The key of every map lookup and update, in order, with the map's fd.
  var keys: [(fd: Int32, bytes: [UInt8])] = []
  /// Whether a lookup in a hash map finds its key (arrays always do).
  var hashLookupsHit = true

  static let stackTop: UInt64 = 0x7000_0200
  static let context: UInt64 = 0x1000
  static let skb: UInt64 = 0x2_0000
  static let mapValue: UInt64 = 0x3_0000
  static let mapPointer: UInt64 = 0x4_0000

  init(_ compiled: CompiledSpec) {
    program = compiled.programs[0].program
    var sizes: [Int32: Int] = [:]
    for (index, map) in compiled.maps.enumerated() { sizes[Int32(index)] = map.keySize }
    keySizes = sizes
  }

  struct Unsupported: Error, CustomStringConvertible {
    let description: String
  }

  mutating func run(len: UInt64) throws -> [(fd: Int32, bytes: [UInt8])] {
    skbValue = len
    keys = []
    var registers = [UInt64](repeating: 0, count: 11)
    var stack = [UInt8](repeating: 0, count: 512)
    var mapValue = [UInt8](repeating: 0, count: 16)
    registers[1] = Self.context
    registers[10] = Self.stackTop
    // Slot numbers to instruction indices: ld_imm64 takes two slots.
    var slotToIndex: [Int: Int] = [:]
    var slot = 0
    for (index, instruction) in program.instructions.enumerated() {
      slotToIndex[slot] = index
      slot += instruction.slotCount
    }
    var slotOf: [Int] = []
    slot = 0
    for instruction in program.instructions {
      slotOf.append(slot)
      slot += instruction.slotCount
    }
    var mapFDs: [UInt64: Int32] = [:]

    func value(_ operand: Operand) -> UInt64 {
      switch operand {
      case .register(let r): registers[Int(r.index)]
      case .immediate(let i): UInt64(bitPattern: Int64(i))
      }
    }
    func read(_ address: UInt64, _ size: Int) throws -> UInt64 {
      if address >= Self.stackTop - 512, address + UInt64(size) <= Self.stackTop {
        let start = Int(address - (Self.stackTop - 512))
        return stack[start..<start + size].reversed().reduce(0) { $0 << 8 | UInt64($1) }
      }
      if address == Self.context, size == 8 { return Self.skb }
      if address >= Self.skb, address < Self.skb + 4096 {
        return size == 8 ? skbValue : skbValue & ((1 << (8 * UInt64(size))) - 1)
      }
      if address >= Self.mapValue, address + UInt64(size) <= Self.mapValue + 16 {
        let start = Int(address - Self.mapValue)
        return mapValue[start..<start + size].reversed().reduce(0) { $0 << 8 | UInt64($1) }
      }
      throw Unsupported(description: "load from \(address)")
    }
    func write(_ address: UInt64, _ size: Int, _ newValue: UInt64) throws {
      let bytes = (0..<size).map { UInt8(truncatingIfNeeded: newValue >> (8 * UInt64($0))) }
      if address >= Self.stackTop - 512, address + UInt64(size) <= Self.stackTop {
        let start = Int(address - (Self.stackTop - 512))
        stack.replaceSubrange(start..<start + size, with: bytes)
      } else if address >= Self.mapValue, address + UInt64(size) <= Self.mapValue + 16 {
        let start = Int(address - Self.mapValue)
        mapValue.replaceSubrange(start..<start + size, with: bytes)
      } else {
        throw Unsupported(description: "store to \(address)")
      }
    }
    func stackBytes(_ address: UInt64, _ count: Int) throws -> [UInt8] {
      try (0..<count).map { UInt8(try read(address + UInt64($0), 1)) }
    }

    var index = 0
    var steps = 0
    while index < program.instructions.count {
      steps += 1
      guard steps < 10_000 else { throw Unsupported(description: "no exit after 10,000 steps") }
      let instruction = program.instructions[index]
      var next = index + 1
      func jump(_ offset: Int16) throws {
        guard let target = slotToIndex[slotOf[index] + 1 + Int(offset)] else {
          throw Unsupported(description: "jump into the middle of an instruction at \(index)")
        }
        next = target
      }
      switch instruction {
      case .alu64(let operation, let dst, let source):
        let a = registers[Int(dst.index)]
        let b = value(source)
        registers[Int(dst.index)] =
          switch operation {
          case .add: a &+ b
          case .sub: a &- b
          case .mul: a &* b
          case .div: b == 0 ? 0 : a / b
          case .mod: b == 0 ? a : a % b
          case .or: a | b
          case .and: a & b
          case .xor: a ^ b
          case .lsh: a << (b & 63)
          case .rsh: a >> (b & 63)
          case .arsh: UInt64(bitPattern: Int64(bitPattern: a) >> (b & 63))
          case .neg: 0 &- a
          case .mov: b
          }
      case .loadImmediate64(let dst, let immediate):
        registers[Int(dst.index)] = immediate
      case .loadMapFD(let dst, let fd):
        registers[Int(dst.index)] = Self.mapPointer + UInt64(fd)
        mapFDs[Self.mapPointer + UInt64(fd)] = fd
      case .load(let size, let dst, let source, let offset):
        registers[Int(dst.index)] = try read(registers[Int(source.index)] &+ UInt64(bitPattern: Int64(offset)), size.bytes)
      case .store(let size, let dst, let offset, let source):
        try write(registers[Int(dst.index)] &+ UInt64(bitPattern: Int64(offset)), size.bytes, registers[Int(source.index)])
      case .storeImmediate(let size, let dst, let offset, let immediate):
        try write(
          registers[Int(dst.index)] &+ UInt64(bitPattern: Int64(offset)), size.bytes,
          UInt64(bitPattern: Int64(immediate)))
      case .jump(let offset):
        try jump(offset)
      case .jumpIf(let condition, let dst, let source, let offset):
        let a = registers[Int(dst.index)]
        let b = value(source)
        let (sa, sb) = (Int64(bitPattern: a), Int64(bitPattern: b))
        let taken =
          switch condition {
          case .eq: a == b
          case .ne: a != b
          case .gt: a > b
          case .ge: a >= b
          case .lt: a < b
          case .le: a <= b
          case .sgt: sa > sb
          case .sge: sa >= sb
          case .slt: sa < sb
          case .sle: sa <= sb
          case .set: a & b != 0
          }
        if taken { try jump(offset) }
      case .call(let helper):
        guard let fd = mapFDs[registers[1]], let keySize = keySizes[fd] else {
          throw Unsupported(description: "call \(helper) without a map in r1")
        }
        keys.append((fd, try stackBytes(registers[2], keySize)))
        switch helper {
        case HelperFunction.mapLookupElement.rawValue:
          registers[0] = keySize == 4 || hashLookupsHit ? Self.mapValue : 0
        case HelperFunction.mapUpdateElement.rawValue:
          registers[0] = 0
        default:
          throw Unsupported(description: "helper \(helper)")
        }
        for r in 1...5 { registers[r] = 0xdead }
      case .exit:
        return keys
      default:
        throw Unsupported(description: "\(instruction)")
      }
      index = next
    }
    throw Unsupported(description: "ran off the end")
  }
}

@Suite struct BucketCode {
  /// Values around every power of two up to 2^64, and a few more.
  static let interesting: [UInt64] = {
    var values: Set<UInt64> = [0, 1, 2, 3, 99, 100, 101, 1_000, 1_500, 4_095, 4_096, UInt64.max, UInt64(Int64.max)]
    for bit in 0..<64 {
      let power = UInt64(1) << UInt64(bit)
      values.formUnion([power &- 1, power, power &+ 1])
    }
    return values.sorted()
  }()

  static func number(_ bytes: [UInt8]) -> UInt64 {
    bytes.reversed().reduce(0) { $0 << 8 | UInt64($1) }
  }

  /// The bucket each run stored: the last 8 key bytes for a hash map, the 4-byte index for an
  /// array. `len` is a u32; the test applies `transform` to get the histogram's value.
  func check(
    _ aggregation: String, value transform: (UInt64) -> UInt64 = { $0 }, keyed: Bool = false,
    expected: (UInt64) -> UInt64
  ) throws {
    let map = keyed ? "@h[len & 1]" : "@h"
    let spec = "tracepoint:net:netif_receive_skb { \(map) = \(aggregation) }"
    let compiled = try compileAgainstFixture(spec).0
    let fd = StandardMap.firstUserMap
    for hit in keyed ? [true, false] : [true] {
      var runner = BucketProgramRunner(compiled)
      runner.hashLookupsHit = hit
      var wrong: [String] = []
      for len in Self.interesting.map({ $0 & 0xffff_ffff }) {
        let keys = try runner.run(len: len).filter { $0.fd == fd }
        let bytes = keys.last?.bytes ?? []
        let bucket = keyed ? Self.number(Array(bytes.suffix(8))) : Self.number(bytes)
        let want = expected(transform(len))
        if bucket != want { wrong.append("len \(len): bucket \(bucket), want \(want)") }
      }
      #expect(wrong.isEmpty, "\(spec) (lookups \(hit ? "hit" : "miss")):\n\(wrong.prefix(10).joined(separator: "\n"))")
    }
  }

  static func log2(_ value: UInt64) -> UInt64 { Buckets.log2Index(Int64(bitPattern: value), signed: false) }

  @Test func hist32BitValueSkipsTheTopStep() throws {
    try check("hist(len)", expected: Self.log2)
    try check("hist(len)", keyed: true, expected: Self.log2)
  }

  @Test func hist64BitValueTakesEveryStep() throws {
    try check("hist(len * 4294967296)", value: { $0 &* 4_294_967_296 }, expected: Self.log2)
    // len - 1000 wraps to values near 2^64 for short lengths.
    try check("hist(len - 1000)", value: { $0 &- 1000 }, keyed: true, expected: Self.log2)
  }

  @Test(arguments: [
    (0, 2000, 100),  // divide, folded start
    (100, 1124, 64),  // shift
    (0, 1000, 1),  // neither
    (64, 1000, 7),  // divide by an odd step
    (-500, 500, 128),
  ] as [(Int64, Int64, Int64)])
  func linearHistogram(_ bounds: (Int64, Int64, Int64)) throws {
    let (low, high, step) = bounds
    let expected = { (value: UInt64) in
      Buckets.linearIndex(Int64(bitPattern: value), min: low, max: high, step: step)
    }
    try check("lhist(len, \(low), \(high), \(step))", expected: expected)
    try check("lhist(len, \(low), \(high), \(step))", keyed: true, expected: expected)
  }
}
