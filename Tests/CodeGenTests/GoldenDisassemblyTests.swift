import BPF
import BTF
import CodeGen
import Foundation
import Sema
import SwtraceSyntax
import Testing
import TestSupport

private let goldenDirectory = Golden.directory()

/// Tracepoints only, so the listing does not change with the machine the tests run on.
private func compile(_ text: String) throws -> (CompiledSpec, SourceFile) {
  try compileAgainstFixture(text)
}

@Suite struct GoldenDisassembly {
  static let specs: [(name: String, text: String)] = [
    ("mission-net_dev_queue", "skb:net_dev_queue /mark==0xdead/ < print(len, gso_type) >"),
    ("filter-and-or", "tracepoint:net:netif_receive_skb /(len > 100 && len < 1500) || mark == 0xdeadbeef/ { print(len, mark) }"),
    ("device-and-namespace", "skb:net_dev_start_xmit { print(ifname, ifindex, netns, gso_size, gso_segs) }"),
    // What net_dev_xmit recorded before the hand-over: its length and device arguments.
    ("after-hand-over", "skb:net_dev_xmit { print(len, ifname, ifindex, netns, args.rc) }"),
    // A header field: the header walk, the presence byte.
    ("packet-field", "skb:net_dev_queue /udp.dport == 53/ { print(saddr, icmp.id) }"),
    ("conditional-print", "skb:kfree_skb { if (len > 1000) { print(len) } else { print(reason) } }"),
    // A filter that folds to false leaves nothing but the return, whatever the block reads.
    ("never-true-filter", "tracepoint:net:netif_receive_skb /1 > 2/ < print(len) >"),
    ("keyless-aggregations", "tracepoint:net:netif_receive_skb { @c[ifname] = count(); @h = hist(len) }"),
  ]

  @Test(arguments: specs.map(\.name))
  func listingMatchesGolden(name: String) throws {
    let text = Self.specs.first { $0.name == name }!.text
    let (compiled, file) = try compile(text)
    let listing = "// \(text)\n" + compiled.listing(source: file)
    try Golden.check(listing, name: "\(name).txt", directory: goldenDirectory)
  }

  @Test func theMissionOneLinerIsOneProgramPerTracepoint() throws {
    let (compiled, _) = try compile("skb:* /mark==0xdead/ < print(len, gso_type) >")
    let names = compiled.programs.map(\.attachPoint.name)
    #expect(names.contains("net_dev_queue") && names.contains("kfree_skb"))
    #expect(Set(names).count == names.count)
    // Header plus a u32 len and a u32 gso_type, and whether gso_type is there: not at
    // net_dev_xmit, which fires after the driver took the packet.
    #expect(compiled.layouts.count == 1)
    #expect(compiled.layouts[0].fields.map(\.size) == [4, 4])
    #expect(compiled.layouts[0].fields.map(\.presenceOffset) == [nil, EventHeader.size + 8])
    #expect(compiled.layouts[0].size == EventHeader.size + 16)
    // Small enough that a reviewer notices growth: the filter, reserve, header, two fields (gso_type
    // reads skb->head with bpf_probe_read_kernel: the kernel types head as untrusted memory), submit.
    for program in compiled.programs {
      #expect(program.program.slotCount <= 52, "\(program.attachPoint.name): \(program.program.slotCount)")
    }
  }
}
