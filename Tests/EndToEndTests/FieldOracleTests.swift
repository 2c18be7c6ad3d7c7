// The packet-field oracle (issue 18): every packet field swtrace prints, compared with
// scapy's dissection of the same packets captured by tcpdump.
//
// scripts/field-oracle.py sends a corpus from namespace A to namespace B (UDP, TCP flows
// with GSO, ICMP and ICMPv6, IPv4 options and fragments, IPv6 extension headers, the
// kernel's own MLD reports, VXLAN and Geneve, ARP and other EtherTypes, and truncated or
// odd frames through a raw socket) while tcpdump captures the sending veth's output and
// the receiving veth's input, and swtrace prints every field at net_dev_queue on the one
// and netif_receive_skb on the other. Each event is paired with its frame and each field
// compared; the summary counts mismatches, events and frames left unpaired, and losses.

import Foundation
import Testing

/// What scripts/field-oracle.py reports.
struct FieldOracleSummary: Decodable {
  struct ClassStats: Decodable {
    let packets: Int
    let mismatches: Int
    let unpaired: Int
  }
  let mismatches: Int
  let paired: Int
  let unpaired_events: Int
  let unpaired_frames: Int
  let malformed: Int
  let lost: Int?
  let swtrace_status: Int
  let swtrace_stderr: String
  let by_class: [String: ClassStats]
  let by_kind: [String: Int]
  let wrong_values: [String: Int]
  let examples: [String]

  /// Per packet class, its packets and mismatches, for the failure message.
  var table: String {
    by_class.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value.packets) packets, \($0.value.mismatches) mismatches" }
      .joined(separator: "\n")
  }
}

@Suite("packet fields against an independent dissector", .serialized)
struct FieldOracleTests {
  static let oracle = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("scripts/field-oracle.py").path

  /// The interpreter Debian's python3-scapy installs into (a python3 earlier on PATH may
  /// be another one).
  static let python = "/usr/bin/python3"

  @Test("every field of every packet of the corpus is what scapy reads from the capture", .needsTracing)
  func corpus() throws {
    let scapy = try ProcessRunner.run(Self.python, ["-c", "import scapy.all"], timeout: 60)
    try #require(scapy.succeeded, "the oracle needs scapy (apt-get install python3-scapy; make deps does it):\n\(scapy)")
    try #require(findExecutable("tcpdump") != nil, "the oracle needs tcpdump (make deps installs it)")

    let pair = try NetworkNamespacePair(subnet: 100)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("oracle")
    defer { scratch.remove() }
    let (v6A, v6B) = ("fd00:200:100::1", "fd00:200:100::2")
    try NetworkNamespacePair.ip(["-n", pair.namespaceA, "addr", "add", "\(v6A)/64", "dev", pair.vethA, "nodad"])
    try NetworkNamespacePair.ip(["-n", pair.namespaceB, "addr", "add", "\(v6B)/64", "dev", pair.vethB, "nodad"])
    let macA = try #require(pair.run(in: pair.namespaceA, ["cat", "/sys/class/net/\(pair.vethA)/address"]).stdoutLines.first)
    let macB = try #require(pair.run(in: pair.namespaceB, ["cat", "/sys/class/net/\(pair.vethB)/address"]).stdoutLines.first)
    // Static neighbours: no ARP or neighbour discovery of the kernel's own in the middle.
    for (namespace, device, addresses, mac) in [
      (pair.namespaceA, pair.vethA, [pair.addressB, v6B], macB), (pair.namespaceB, pair.vethB, [pair.addressA, v6A], macA),
    ] {
      for address in addresses {
        try NetworkNamespacePair.ip(["-n", namespace, "neigh", "replace", address, "lladdr", mac, "dev", device, "nud", "permanent"])
      }
    }

    let swtrace = try TestEnvironment.binary("swtrace")
    let run = try ProcessRunner.run(
      Self.python,
      [
        Self.oracle, "run", "--swtrace", swtrace, "--ns-a", pair.namespaceA, "--ns-b", pair.namespaceB,
        "--if-a", pair.vethA, "--if-b", pair.vethB, "--dst-mac", macB, "--src4", pair.addressA, "--dst4", pair.addressB,
        "--src6", v6A, "--dst6", v6B, "--scratch", scratch.path("run"),
      ], timeout: 300)
    try #require(run.succeeded, "the oracle did not finish:\n\(run)")
    let summary = try JSONDecoder().decode(FieldOracleSummary.self, from: Data(run.stdout.utf8))
    let context = "\(summary.table)\n\(summary.examples.prefix(60).joined(separator: "\n"))\n\(summary.swtrace_stderr)"
    #expect(summary.swtrace_status == 0, "swtrace: \(summary.swtrace_stderr)")
    #expect(summary.lost == 0, "swtrace lost events or printed no summary: \(summary.swtrace_stderr)")
    #expect(summary.malformed == 0)
    #expect(summary.unpaired_events == 0 && summary.unpaired_frames == 0, "\(context)")
    // The corpus is some 160 frames, each seen on both sides.
    #expect(summary.paired >= 300, "\(context)")
    #expect(summary.mismatches == 0, "\(summary.by_kind) \(context)")
  }
}
