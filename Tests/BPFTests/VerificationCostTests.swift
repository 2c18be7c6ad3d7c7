import Testing

@testable import BPF

/// Programs whose verification cost the pre-check models: branches whose outcomes leave
/// nothing distinct behind, numbers that differ along each path and decide a later branch
/// (the kernel cannot merge those paths), and the same numbers merely stored (it can). The
/// same shapes are loaded into the running kernel by `VerificationCostKernelTests`, which
/// holds the pre-check's counts against the kernel's.
@Suite struct VerificationCostTests {
  /// `count` comparisons of a pt_regs field with a constant; on the taken side, `then`.
  static func branches(_ count: Int, then: (inout Assembler, Int) -> Void, after: (inout Assembler) -> Void) -> Program {
    var a = Assembler()
    a.emit([.mov(.r6, .r1), .mov(.r7, 0)])
    for index in 0..<count {
      let skip = a.newLabel()
      a.currentTag = SourceTag(rawValue: UInt64(index + 1))
      a.emit(.load(.double, .r1, .r6, offset: Int16(8 * (index % 21))))
      a.jump(if: .le, .r1, .immediate(Int32(index)), to: skip)
      then(&a, index)
      a.bind(skip)
    }
    a.currentTag = SourceTag(rawValue: 1000)
    after(&a)
    a.emit([.mov(.r0, 0), .exit])
    return try! a.finish()
  }

  /// r7 += 2^i on the taken side: a different number along each of the 2^count paths.
  static func addPowerOfTwo(_ a: inout Assembler, _ index: Int) { a.emit(.add(.r7, Int32(1) << Int32(index))) }

  @Test func branchesThatLeaveNothingBehindCostLittle() {
    let program = Self.branches(30, then: { a, _ in a.emit(.mov(.r2, 1)) }, after: { _ in })
    let report = Verifier.analyze(program, context: .kprobe, maps: [])
    #expect(report.rejections.isEmpty, "\(report.rejections)")
    #expect(report.processedInstructions < 30 * 10, "\(report.processedInstructions)")
  }

  @Test func numbersOnlyStoredDoNotMultiplyPaths() {
    // The sum differs on every path but only reaches memory: the kernel needs no exact value.
    let program = Self.branches(
      20, then: Self.addPowerOfTwo,
      after: { a in a.emit(.store(.double, .fp, offset: -8, .r7)) })
    let report = Verifier.analyze(program, context: .kprobe, maps: [])
    #expect(report.rejections.isEmpty, "\(report.rejections)")
    #expect(report.processedInstructions < 20 * 20, "\(report.processedInstructions)")
  }

  @Test func numbersThatDecideABranchMultiplyPaths() {
    // The same sum compared with a constant: each path's sum is known, the comparison is
    // decided on each, and the kernel keeps every path apart.
    func program(_ count: Int) -> Program {
      Self.branches(
        count, then: Self.addPowerOfTwo,
        after: { a in
          let done = a.newLabel()
          a.jump(if: .ne, .r7, .immediate(3), to: done)
          a.emit(.mov(.r2, 1))
          a.bind(done)
        })
    }
    let small = Verifier.analyze(program(10), context: .kprobe, maps: [])
    #expect(small.rejections.isEmpty, "\(small.rejections)")
    #expect(small.processedInstructions > 1 << 10, "\(small.processedInstructions)")
    let large = Verifier.analyze(program(20), context: .kprobe, maps: [])
    #expect(large.exceededComplexity)
    let rejection = try? #require(large.rejections.first)
    #expect(rejection?.message.contains("more than 900000 instructions") == true, "\(large.rejections)")
    #expect(rejection?.hint?.contains("$variable") == true)
    // Blamed on a spec construct (one of the branches or the comparison), not the program.
    #expect(rejection?.sourceTag != nil)
  }

  @Test func aSignThatIsMinusOneOrZeroIsSplitBeforeAnAnd() {
    // r1 >> 63 (arithmetic) is -1 or 0; newer kernels check `r1 &= 255` once for each.
    var a = Assembler()
    a.emit([
      .mov(.r6, .r1), .load(.double, .r1, .r6, offset: 0), .alu64(.arsh, .r1, .immediate(63)),
      .alu64(.and, .r1, .immediate(255)), .mov(.r0, 0), .exit,
    ])
    let report = Verifier.analyze(try! a.finish(), context: .kprobe, maps: [])
    #expect(report.rejections.isEmpty, "\(report.rejections)")
    // Six instructions, and the `&` and what follows it once more.
    #expect(report.processedInstructions == 6 + 3)
  }

  @Test func tooManyPendingBranchesAreRefused() {
    // 9,000 comparisons one after another, each leaving its other side for later.
    var a = Assembler()
    a.emit(.mov(.r6, .r1))
    for _ in 0..<9000 {
      let next = a.newLabel()
      a.emit(.load(.double, .r1, .r6, offset: 0))
      a.jump(if: .eq, .r1, .immediate(1), to: next)
      a.bind(next)
    }
    a.emit([.mov(.r0, 0), .exit])
    let rejections = Verifier.check(try! a.finish(), context: .kprobe, maps: [])
    #expect(rejections.contains { $0.message.contains("branches pending") }, "\(rejections)")
  }
}
