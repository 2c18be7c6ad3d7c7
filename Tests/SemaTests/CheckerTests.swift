import BTF
import Foundation
import Sema
import SwtraceSyntax
import Testing
import TestSupport

private let goldenDirectory = Golden.directory()

@Suite struct MissionOneLiner {
  @Test func resolvesOnTheRunningKernel() throws {
    let types = try KernelTypes.loadRunningKernel()
    let (spec, rendered) = check(
      "skb:* /mark==0xdead/ < print(len, gso_type) >", resolver: ProbeResolver(types: types, support: .tracepointsOnly))
    let checked = try #require(spec?.clauses.first, "\(rendered)")
    #expect(checked.attachPoints.count == 30)
    // As it runs at net_dev_queue (at net_dev_xmit, after the hand-over, the packet is not read).
    let clause = checked.specialized(for: try #require(checked.attachPoints.first { $0.name == "net_dev_queue" }))
    #expect(clause.attachPoints.allSatisfy { $0.backend == .tracepoint && $0.skbArgument != nil })
    // qdisc_dequeue passes the skb as its fourth argument.
    #expect(clause.attachPoints.first { $0.name == "qdisc_dequeue" }?.skbArgument == 3)
    guard case .print(let values, _) = clause.actions.first else {
      Issue.record("expected a print action")
      return
    }
    #expect(values.map(\.label) == ["len", "gso_type"])
    #expect(values[0].value.type == .u32)
    // gso_type may be absent (at net_dev_xmit): here it is always there.
    #expect(values[1].value.presence?.kind == .integer(1))
    guard case .load(_, let offset, 4, nil) = values[0].value.kind else {
      Issue.record("len must be a 4-byte load")
      return
    }
    #expect(offset == 112)
    guard case .flags(let names) = values[1].value.unwrapped.type else {
      Issue.record("gso_type must be flags")
      return
    }
    #expect(names.render(0) == "none")
    #expect(names.render(1 | 256) == "tcpv4|ipxip4")
  }

  @Test(arguments: Fixtures.kernelReleases)
  func resolvesOnOtherKernelsWithTheirOffsets(release: String) throws {
    let types = try KernelTypes.load(path: try Fixtures.btfPath(release))
    let facts = try Fixtures.facts(release)
    let (spec, rendered) = check(
      "skb:* /mark==0xdead/ < print(len, gso_type) >", resolver: ProbeResolver(types: types, support: .all))
    let checked = try #require(spec?.clauses.first, "\(rendered)")
    let clause = checked.specialized(for: try #require(checked.attachPoints.first { $0.name == "ip_rcv" }))
    // Tracepoints plus every function with an skb argument, as ipftrace attaches.
    #expect(clause.attachPoints.count > 1000)
    #expect(clause.attachPoints.contains { $0.name == "ip_rcv" && $0.backend == .fentry })
    guard case .binary(.equal, let mark, _) = clause.filter?.kind, case .load(_, let offset, 4, _) = mark.kind
    else {
      Issue.record("filter must compare a 4-byte load of mark")
      return
    }
    #expect(offset == facts.stats.offsets["sk_buff.mark"])
  }
}

@Suite struct TypeErrors {
  static let cases: [(name: String, spec: String)] = [
    ("unknown-field", "skb:* < print(lne) >"),
    ("unknown-member", "skb:* < print(skb->dev->ifindx) >"),
    ("string-compared-with-number", "skb:* /comm == 5/ < print(len) >"),
    ("pointer-compared-with-number", "skb:* /skb == 5/ < print(len) >"),
    ("struct-printed-whole", "skb:* < print(skb->dev->nd_net) >"),
    ("probe-matches-nothing", "skb:no_such_tracepoint < print(len) >"),
    ("tracepoint-misspelt", "tracepoint:net:net_dev_queu < print(len) >"),
    ("unknown-statement", "skb:* < prnt(len) >"),
    ("kprobe-unavailable", "kprobe:ip_rcv < print(len) >"),
    ("division-by-zero", "skb:* /(len / (mark - mark)) == 0 || (len % 0) == 1/ < print(len) >"),
    // The literal on the left is measured against the field on the right just the same.
    ("string-literal-too-long-on-the-left", #"skb:* /"abcdefghijklmnopq" == ifname/ < print(len) >"#),
    // net_dev_xmit fires after the driver took the packet: only what it recorded is read.
    ("packet-after-hand-over", "skb:net_dev_xmit /mark == 0xdead/ { print(len, udp.dport, gso_type) }"),
    ("unknown-argument", "skb:kfree_skb { print(args.reasn) }"),
    ("has-arity", "skb:net_dev_queue /has(udp, tcp)/ { print(len) }"),
  ]

  @Test(arguments: cases.map(\.name))
  func diagnosticMatchesGolden(name: String) throws {
    try expectRefusalMatchesGolden(Self.cases.first { $0.name == name }!.spec, name: name, directory: goldenDirectory)
  }
}
