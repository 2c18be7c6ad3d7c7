import BPF
import CodeGen
import Foundation
import Sema
import SwtraceSyntax
import Testing
import TestSupport

/// Where a clause keeps its values: stack slots reused from statement to statement, the
/// clause's area of the per-CPU scratch map for `$variables` and for what the stack cannot
/// hold, and nothing more. `LegalSpecsKernelTests` loads the same shapes into the kernel.
@Suite struct MemoryTests {
  func scratchMap(_ compiled: CompiledSpec) -> MapDescription? {
    compiled.maps.first { $0.name == "scratch" }
  }

  /// The most negative stack offset any instruction uses.
  func stackDepth(_ program: Program) -> Int {
    program.instructions.reduce(0) { deepest, instruction in
      switch instruction {
      case .load(_, _, .fp, let offset), .store(_, .fp, let offset, _), .storeImmediate(_, .fp, let offset, _):
        return max(deepest, -Int(offset))
      case .alu64(.add, _, .immediate(let offset)) where offset < 0:
        return max(deepest, -Int(offset))
      default:
        return deepest
      }
    }
  }

  @Test func aClauseWithoutVariablesThatFitsTheStackHasNoScratch() throws {
    let (compiled, _) = try compileAgainstFixture("skb:net_dev_queue /mark == 0xdead/ { print(len, ifname, comm) }")
    #expect(scratchMap(compiled) == nil)
  }

  @Test func statementsReuseEachOthersStack() throws {
    // Each comparison needs a 16-byte buffer for comm; 33 of them once took 528 bytes.
    let ifs = (0..<33).map { #"if (comm == "x\#($0)") { print(\#($0)) }"# }.joined(separator: " ")
    let (compiled, _) = try compileAgainstFixture("skb:net_dev_queue { \(ifs) }")
    #expect(scratchMap(compiled) == nil)
    #expect(stackDepth(compiled.programs[0].program) <= 64, "\(stackDepth(compiled.programs[0].program))")
  }

  @Test func variablesLiveInTheClausesScratchArea() throws {
    let (compiled, _) = try compileAgainstFixture("skb:net_dev_queue { $n = len; $s = ifname; print($n, $s) }")
    let scratch = try #require(scratchMap(compiled))
    #expect(scratch.kind == .perCPUArray)
    #expect(scratch.maxEntries == 1)
    // The busy flag, the 8-byte $n and the 16-byte $s.
    #expect(scratch.valueSize == 8 + 8 + 16)
    // Read and written through r9.
    let program = compiled.programs[0].program.instructions
    #expect(program.contains { if case .store(.double, .r9, 8, _) = $0 { true } else { false } })
  }

  @Test func fortyPrintfsAndTwelveWideKeyedMapsFitTheStack() throws {
    // 2,000 bytes when nothing was reused; one statement's values at a time fit in 512.
    let ifs = (0..<40).map { #"if (len > \#($0)) { printf("%s %s %d %s\n", ifname, comm, len, ip6.saddr) }"# }
    let maps = (0..<12).map { "@m\($0)[\($0 % 2 == 0 ? "ifname, comm, ip6.daddr" : "comm, ip6.saddr, ifname")] = sum(len)" }
    let (compiled, _) = try compileAgainstFixture("skb:net_dev_queue {\n" + (ifs + maps).joined(separator: "\n") + "\n}")
    #expect(stackDepth(compiled.programs[0].program) <= 512)
    // The scratch area holds only the header walk's facts (kept there so that the verifier
    // does not follow them): its busy flag, 48 bytes of facts, 16 of packet bytes, 24 of
    // walk state.
    #expect(scratchMap(compiled)?.valueSize == 8 + 48 + 16 + 24)
  }

  @Test func oneStatementNeedingMoreThanTheStackUsesScratch() throws {
    // Forty address comparisons in one condition, each with its own 32 bytes: 1,280 bytes at
    // once, which only the scratch area holds.
    let wide = Array(repeating: "ip6.saddr != ip6.daddr", count: 40).joined(separator: " && ")
    let (compiled, _) = try compileAgainstFixture("skb:net_dev_queue { if (\(wide)) { print(len) } }")
    #expect(stackDepth(compiled.programs[0].program) <= 512)
    let scratch = try #require(scratchMap(compiled))
    #expect(scratch.valueSize > 512, "\(scratch)")
  }
}
