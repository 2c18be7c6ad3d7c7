import BPF
import BTF
import CodeGen
import Sema
import SwtraceSyntax
import Testing
import TestSupport

/// Key-less counts and histograms live in per-CPU arrays indexed by bucket: no create-on-first-
/// use path, and a lookup the kernel inlines.
@Suite struct DirectlyIndexedMaps {
  func compile(_ text: String) throws -> CompiledSpec {
    try compileAgainstFixture(text).0
  }

  func calls(_ program: Program, _ helper: HelperFunction) -> Int {
    program.instructions.filter {
      if case .call(let number) = $0 { number == helper.rawValue } else { false }
    }.count
  }

  func userMap(_ compiled: CompiledSpec, _ index: Int) -> MapDescription {
    compiled.maps[Int(StandardMap.firstUserMap) + index]
  }

  @Test func histCountAndLhistWithoutKeysAreArrays() throws {
    let compiled = try compile(
      "tracepoint:net:netif_receive_skb { @h = hist(len); @n = count(); @l = lhist(len, 0, 1500, 100); @k[ifname] = count() }")
    #expect(userMap(compiled, 0).kind == .perCPUArray && userMap(compiled, 0).maxEntries == 66)
    #expect(userMap(compiled, 1).kind == .perCPUArray && userMap(compiled, 1).maxEntries == 1)
    #expect(userMap(compiled, 2).kind == .perCPUArray && userMap(compiled, 2).maxEntries == 17)
    #expect(userMap(compiled, 3).kind == .perCPUHash)
    #expect(compiled.directlyIndexedMaps == [0: 66, 1: 1, 2: 17])
    // Only the keyed map needs create-on-first-use: one update on a miss, with no second
    // lookup after it. Every map is one lookup.
    let program = compiled.programs[0].program
    #expect(calls(program, .mapUpdateElement) == 1)
    #expect(calls(program, .mapLookupElement) == 4)
  }

  @Test func mapsWithKeysValuesOrDeletesStayHashMaps() throws {
    let compiled = try compile(
      "tracepoint:net:netif_receive_skb { @c = count(); @s = sum(len); @m = max(len); delete(@c) }")
    #expect(compiled.directlyIndexedMaps.isEmpty)
    #expect(userMap(compiled, 0).kind == .perCPUHash)
    #expect(userMap(compiled, 1).kind == .perCPUHash)
  }

  @Test func theLargestLinearHistogramIsAnArrayWithItsOpenEndedBuckets() throws {
    // Sema allows at most 1,000 buckets inside the range; below and above come on top.
    let compiled = try compile("tracepoint:net:netif_receive_skb { @l = lhist(len, 0, 1000, 1) }")
    #expect(compiled.directlyIndexedMaps == [0: 1002])
  }
}
