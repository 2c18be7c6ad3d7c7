// The pre-check's count of the kernel verifier's work against the kernel's own count
// (verified_insns) and verdict, on programs built to be cheap or exponentially costly to
// verify: branches that leave nothing distinct behind, numbers that differ along each path
// and decide a later branch, the same numbers merely stored, and a sign split before `&`.

import BPF
import BTF
import CodeGen
import Foundation
import KernelTestSupport
import Runtime
import Sema
import SwtraceSyntax
import Testing

@Suite("the pre-check's count of the kernel's work against the kernel's", .serialized)
struct VerificationCostKernelTests {
  /// A program of sock_recv_length (whose second argument, `ret`, is a number): `count`
  /// comparisons of `ret` with constants, `then` on the taken side of each, then `after`.
  static func branches(_ count: Int, then: (inout Assembler, Int) -> Void, after: (inout Assembler) -> Void) -> Program {
    var a = Assembler()
    a.emit([.mov(.r6, .r1), .mov(.r7, 0)])
    for index in 0..<count {
      let skip = a.newLabel()
      a.emit(.load(.double, .r1, .r6, offset: 8))
      a.jump(if: .le, .r1, .immediate(Int32(index)), to: skip)
      then(&a, index)
      a.bind(skip)
    }
    after(&a)
    a.emit([.mov(.r0, 0), .exit])
    return try! a.finish()
  }

  static func addPowerOfTwo(_ a: inout Assembler, _ index: Int) { a.emit(.add(.r7, Int32(1) << Int32(index))) }

  static func decided(_ a: inout Assembler) {
    let done = a.newLabel()
    a.jump(if: .ne, .r7, .immediate(3), to: done)
    a.emit(.mov(.r2, 1))
    a.bind(done)
  }

  static let programs: [(name: String, program: Program)] = [
    ("30 branches leaving nothing behind", branches(30, then: { a, _ in a.emit(.mov(.r2, 1)) }, after: { _ in })),
    ("20 branches adding to a sum that is stored", branches(20, then: addPowerOfTwo, after: { a in a.emit(.store(.double, .fp, offset: -8, .r7)) })),
    ("10 branches adding to a sum that decides a branch", branches(10, then: addPowerOfTwo, after: decided)),
    ("14 branches adding to a sum that decides a branch", branches(14, then: addPowerOfTwo, after: decided)),
    ("20 branches adding to a sum that decides a branch", branches(20, then: addPowerOfTwo, after: decided)),
    (
      "a sign split before &",
      {
        var a = Assembler()
        a.emit([
          .mov(.r6, .r1), .load(.double, .r1, .r6, offset: 8), .alu64(.arsh, .r1, .immediate(63)),
          .alu64(.and, .r1, .immediate(255)), .mov(.r0, 0), .exit,
        ])
        return try! a.finish()
      }()
    ),
  ]

  @Test("the pre-check refuses what the kernel finds too complex and counts at least 90% of its work otherwise", .needsKernelLoading, arguments: programs.map(\.name))
  func againstTheKernel(name: String) throws {
    let program = Self.programs.first { $0.name == name }!.program
    let (types, _) = try RunningKernel.forLoading()
    var compiled = try template("tracepoint:sock:sock_recv_length { print(ret) }", types: types)
    compiled.programs[0].program = program
    let report = Verifier.analyze(
      program, context: compiled.programs[0].context, maps: compiled.maps, kernelObjects: compiled.programs[0].kernelObjects)
    let counts: [Int]
    switch loadIntoKernel(compiled) {
    case .failure(let refusal):
      print("\(name): the kernel refuses it: \(refusal.description.suffix(200))")
      #expect(refusal.description.contains("too large"), "\(refusal)")
      #expect(report.exceededComplexity, "the kernel finds it too complex, the pre-check accepts it")
      return
    case .success(let loaded):
      counts = loaded
    }
    let kernel = try #require(counts.first)
    print("\(name): the pre-check counts \(report.processedInstructions), the kernel \(kernel)")
    #expect(report.rejections.isEmpty, "the kernel loads it, but the pre-check says \(report.rejections)")
    #expect(10 * report.processedInstructions >= 9 * kernel)
  }

  @Test("a spec too complex for the kernel is refused before loading, and the kernel refuses it too", .needsKernelLoading)
  func tooComplexSpec() throws {
    let (types, _) = try RunningKernel.forLoading()
    let text =
      "skb:net_dev_queue {\n  if (" + (0..<18).map { "(mark > \($0)) * \(1 << $0)" }.joined(separator: " + ")
      + " == 3) {\n    print(len)\n  }\n}"
    let file = SourceFile(name: "<spec>", text: text)
    guard case .failed(let diagnostics) = runningKernelCompiler(types).compile(file) else {
      Issue.record("the pre-check must refuse it")
      return
    }
    #expect(diagnostics.first?.message.contains("too close to its limit") == true, "\(diagnostics)")
    #expect(diagnostics.first.map { file.location(of: $0.range.start).line } == 2)
    let unchecked = try #require(compileWithoutPrecheck(file, types: types))
    guard case .failure(let refusal) = loadIntoKernel(unchecked) else {
      Issue.record("the kernel loaded what the pre-check refused as too complex")
      return
    }
    #expect(refusal.description.contains("too large"), "\(refusal)")
  }
}
