import BPF
import BTF
import CodeGen
import Foundation
import Sema
import SwtraceSyntax
import Testing
import TestSupport

/// `skb:*` on a kernel with kprobe.multi: the functions share a few programs, each reading its
/// probe id from the attach cookie, instead of one program (and one link) per function.
@Suite struct SharedKprobePrograms {
  func compile(_ text: String, share: Bool = true) throws -> CompiledSpec {
    let support = BackendSupport(available: [.tracepoint, .kprobe, .kretprobe, .fentry, .fexit], kprobesAttachInBulk: share)
    return try compileAgainstFixture(text, support: support, kprobeProgramsShareCode: share).0
  }

  static func callsAttachCookie(_ program: Program) -> Bool {
    program.instructions.contains {
      if case .call(let helper) = $0, helper == HelperFunction.getAttachCookie.rawValue { return true }
      return false
    }
  }

  @Test func theMissionOneLinerBecomesAFewSharedKprobePrograms() throws {
    let compiled = try compile("skb:* /mark==0xdead/ < print(len, gso_type) >")
    let functions = compiled.programs.filter { $0.attachPoint.backend == .kprobe }
    #expect(functions.count >= 1000, "kprobes are preferred to fentry where they attach in bulk")
    #expect(functions.allSatisfy { $0.probeFromCookie })
    let groups = compiled.programGroups.filter { $0[0].attachPoint.backend == .kprobe }
    // One program per position of the skb argument (a register of pt_regs, or a stack slot past
    // the sixth), nothing per function.
    let positions = Set(functions.compactMap(\.attachPoint.skbArgument))
    #expect(groups.count == positions.count, "\(groups.map { $0.count })")
    #expect(groups.reduce(0) { $0 + $1.count } == functions.count)
    for group in groups {
      #expect(Set(group.map(\.attachPoint.skbArgument)).count == 1)
      #expect(Self.callsAttachCookie(group[0].program))
    }
    // Cookies are the probe ids the event decoder maps back to names.
    for program in functions {
      #expect(compiled.probeNames[Int(program.probeID)] == program.attachPoint.name)
    }
    // Tracepoints keep their probe id as a constant and a program each.
    let tracepoints = compiled.programs.filter { $0.attachPoint.backend == .tracepoint }
    #expect(!tracepoints.isEmpty && tracepoints.allSatisfy { !$0.probeFromCookie && !Self.callsAttachCookie($0.program) })
    #expect(compiled.programGroups.count == groups.count + tracepoints.count)
  }

  @Test func probeAsAMapKeyComesFromTheCookie() throws {
    let compiled = try compile("skb:ip_* /mark == 1/ { @[probe] = count() }")
    let groups = compiled.programGroups
    #expect(groups.count < compiled.programs.count)
    #expect(groups.allSatisfy { Self.callsAttachCookie($0[0].program) })
    // The pre-check accepted every shared program (compile() would have failed otherwise);
    // and the listing prints each shared program once.
    let listing = compiled.listing(source: SourceFile(name: "<spec>", text: ""))
    #expect(listing.components(separatedBy: "get_attach_cookie").count - 1 >= groups.count)
    #expect(listing.contains("shared by"))
  }

  @Test func withoutBulkAttachEveryFunctionKeepsItsOwnProgram() throws {
    let compiled = try compile("skb:ip_rcv* /mark == 1/ { @[probe] = count() }", share: false)
    #expect(compiled.programs.allSatisfy { !$0.probeFromCookie && !Self.callsAttachCookie($0.program) })
    #expect(compiled.programGroups.count == compiled.programs.count)
    // fentry is the function backend where kprobes do not attach in bulk.
    #expect(compiled.programs.contains { $0.attachPoint.backend == .fentry })
  }
}
