// The pre-check's rule for plain loads through a BTF-typed pointer against the kernel's own
// (btf_struct_walk): a load of every width at every offset of struct sk_buff, in a program
// that reads it through net_dev_queue's skb argument, is judged by both.

import BPF
import BTF
import CodeGen
import Foundation
import KernelTestSupport
import Runtime
import Sema
import SwtraceSyntax
import Testing

@Suite("plain loads through a BTF pointer: the pre-check against the kernel", .serialized)
struct KernelObjectAccessTests {
  @Test("every width at every offset of struct sk_buff gets the kernel's verdict", .needsKernelLoading)
  func everyOffsetOfSkBuff() throws {
    let types = try KernelTypes.loadRunningKernel()
    let template = try template("skb:net_dev_queue { print(len) }", types: types)
    let program = template.programs[0]
    let skbIndex = program.attachPoint.skbArgument!
    let layout = try #require(program.kernelObjects[skbIndex])
    let size = try #require(types.structure("sk_buff").flatMap { types.size(of: $0) })
    var disagreements: [String] = []
    var counts: [String: Int] = [:]
    for width in [1, 2, 4, 8] {
      for offset in 0...(size - width) {
        let access = layout.access(offset: offset, size: width)
        // The loaded value is stored in a reservation only when it is a number; a pointer is
        // just loaded, as the kernel may type it either way.
        var code: [Instruction] = [
          .mov(.r6, .r1), .load(.double, .r7, .r6, offset: Int16(8 * skbIndex)),
          .jumpIf(.eq, .r7, .immediate(0), offset: 1),
          .load(AccessSize(bytes: width)!, .r1, .r7, offset: Int16(offset)),
        ]
        code += [.mov(.r0, 0), .exit]
        var compiled = template
        compiled.programs = [program]
        compiled.programs[0].program = Program(instructions: code)
        let precheck = Verifier.check(
          compiled.programs[0].program, context: program.context, maps: compiled.maps,
          kernelObjects: program.kernelObjects)
        var kernelError: String?
        if case .failure(let refusal) = loadIntoKernel(compiled) { kernelError = refusal.description }
        let kernelAccepts = kernelError == nil
        // A whole pointer to a struct loads as a kernel pointer: the kernel accepts the load;
        // the pre-check refuses it, since generated code never wants one.
        let expectedPrecheck = access == .number
        if kernelAccepts == access.isRefused || precheck.isEmpty != expectedPrecheck {
          disagreements.append(
            "\(width) bytes at \(offset): layout says \(access), pre-check \(precheck.first?.message ?? "accepts"), kernel \(kernelError.map { String($0.suffix(200)) } ?? "accepts")")
        }
        counts["\(access)".prefix(while: { $0 != "(" }).description, default: 0] += 1
      }
    }
    print("sk_buff loads: \(counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))")
    #expect(disagreements.isEmpty, "\(disagreements.count) disagreements:\n\(disagreements.prefix(10).joined(separator: "\n"))")
  }
}

extension KernelObjectLayout.Access {
  /// Whether the kernel's walk refuses the load (as opposed to typing its result).
  fileprivate var isRefused: Bool {
    if case .refused = self { return true }
    return false
  }
}
