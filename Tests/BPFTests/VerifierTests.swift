import Testing

@testable import BPF

@Suite struct VerifierTests {
  /// Every rule has a rejected example and an accepted twin in `verifierCases`.
  @Test(arguments: verifierCases)
  func verdict(_ example: VerifierCase) {
    let program = Program(instructions: example.instructions)
    let rejections = Verifier.check(program, context: example.context, maps: example.maps)
    if let expected = example.rejection {
      #expect(!rejections.isEmpty, "expected a rejection containing '\(expected)'")
      if let first = rejections.first {
        #expect(first.message.contains(expected), "\(rejections)")
        #expect(first.hint != nil, "\(first)")
      }
    } else {
      #expect(rejections.isEmpty, "\(rejections)")
    }
  }

  @Test func everyRejectedCaseHasAnAcceptedCaseOfTheSameKind() {
    // Loose guard against the list drifting into rejections only.
    let accepted = verifierCases.filter { $0.rejection == nil }.count
    let rejected = verifierCases.count - accepted
    #expect(accepted >= rejected / 2)
  }

  @Test func rejectionsCarrySourceTagAndSlot() throws {
    var a = Assembler()
    a.currentTag = SourceTag(rawValue: 39)
    a.emit(.loadImmediate64(.r1, 1))
    a.currentTag = SourceTag(rawValue: 1020)
    a.emit([.load(.double, .r2, .fp, offset: -8), .mov(.r0, 0), .exit])
    let rejections = Verifier.check(try a.finish(), context: .kprobe, maps: [])
    #expect(rejections.count == 1)
    #expect(rejections.first?.instructionIndex == 1)
    #expect(rejections.first?.slot == 2)
    #expect(rejections.first?.sourceTag == SourceTag(rawValue: 1020))
    #expect(rejections.first?.description.hasPrefix("instruction 2: reads the stack at fp-8") == true)
  }

  @Test func manyPathsArePrunedAndMerged() {
    let program = Program(instructions: diamonds(40))
    let clock = ContinuousClock()
    var rejections: [VerifierRejection] = []
    let elapsed = clock.measure {
      rejections = Verifier.check(program, context: .kprobe, maps: [])
    }
    #expect(rejections.isEmpty, "\(rejections)")
    #expect(elapsed < .seconds(5))
  }

  @Test func mergingKeepsBoundsSound() {
    // r2 is 4 on one path and 12 on the other: after the join an 8-byte read at r0 + r2 of a
    // 16-byte value may run past its end, whether or not paths are merged.
    let instructions = assemble { a in
      let out = a.newLabel()
      let twelve = a.newLabel()
      let join = a.newLabel()
      a.emit([
        .load(.double, .r7, .r1, offset: 0), .storeImmediate(.word, .fp, offset: -4, 0), .mov(.r2, .fp),
        .add(.r2, -4), .loadMapFD(.r1, fd: VerifierCase.config),
        .call(helper: HelperFunction.mapLookupElement.rawValue),
      ])
      a.jump(if: .eq, .r0, .immediate(0), to: out)
      a.jump(if: .gt, .r7, .immediate(10), to: twelve)
      a.emit(.mov(.r2, 4))
      a.jump(to: join)
      a.bind(twelve)
      a.emit(.mov(.r2, 12))
      a.bind(join)
      a.emit([.add(.r0, .r2), .load(.double, .r3, .r0, offset: 0)])
      a.bind(out)
      a.emit([.mov(.r0, 0), .exit])
    }
    let rejections = Verifier.check(
      Program(instructions: instructions), context: .kprobe, maps: VerifierCase.standardMaps)
    #expect(rejections.first?.message.contains("reads 8 bytes at offset 12") == true, "\(rejections)")
  }

  @Test func emptyAndOversizedPrograms() {
    #expect(Verifier.check(Program(instructions: []), context: .kprobe, maps: []).first?.message
      == "the program has no instructions")
    let huge = Program(instructions: Array(repeating: .mov(.r0, 0), count: 1_000_000) + [.exit])
    #expect(Verifier.check(huge, context: .kprobe, maps: []).first?.message.contains("at most 1000000") == true)
  }

  @Test func scalarBoundsArithmetic() {
    let byte = ScalarBounds.fitting(bytes: 1)
    #expect(ScalarBounds.compute(.add, byte, .constant(10), is64: true) == .unsigned(10, 265))
    #expect(ScalarBounds.compute(.sub, .constant(3), .constant(5), is64: false) == .constant(0xffff_fffe))
    #expect(ScalarBounds.compute(.sub, .constant(3), .constant(5), is64: true) == .constant(UInt64(bitPattern: -2)))
    #expect(ScalarBounds.compute(.and, .unknown, .constant(0xff), is64: true) == .unsigned(0, 0xff))
    #expect(ScalarBounds.compute(.lsh, byte, .constant(4), is64: true) == .unsigned(0, 0xff0))
    #expect(ScalarBounds.compute(.rsh, .unknown, .constant(60), is64: true) == .unsigned(0, 15))
    #expect(ScalarBounds.compute(.div, .constant(10), .constant(2), is64: true) == .unknown)
    #expect(ScalarBounds.compute(.or, byte, .constant(0x100), is64: true) == .unsigned(0x100, 0x1ff))
    #expect(ScalarBounds.compute(.add, .unknown, .constant(1), is64: false) == .unknown32)
    #expect(ScalarBounds.compute(.arsh, .signed(-64, 64), .constant(3), is64: true) == .signed(-8, 8))
  }

  @Test func scalarBoundsComparisons() {
    let byte = ScalarBounds.fitting(bytes: 1)
    #expect(byte.assuming(.gt, 200) == .unsigned(201, 255))
    #expect(byte.assuming(.le, 200) == .unsigned(0, 200))
    #expect(byte.assuming(.ne, 0) == .unsigned(1, 255))
    #expect(byte.assuming(.gt, 255) == nil)
    #expect(byte.decides(.lt, 256) == true)
    #expect(ScalarBounds.unknown.assuming(.sgt, UInt64(bitPattern: -1)) == .unsigned(0, UInt64(Int64.max)))
    #expect(ScalarBounds.unknown.assuming(.slt, 0)?.umin == 1 << 63)
    #expect(ScalarBounds.constant(5).decides32(.sgt, UInt32(bitPattern: -1)) == true)
  }
}
