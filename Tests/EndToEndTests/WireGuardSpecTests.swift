// specs/wireguard-path.spec, the runbook of the VM lane's WireGuard scenarios (issue 23),
// against the fixture kernels' BTF: it checks on each, over all of its skb functions, and the
// places its header tells the reader to look for are attach points of skb:* there. The
// scenarios themselves (a marked datagram through a real tunnel) run in the VM lane:
// scripts/vm/wireguard.sh, required by VMLaneTests.

import Foundation
import Testing
import TestSupport

@Suite("specs/wireguard-path.spec on the fixture kernels")
struct WireGuardSpecTests {
  static let spec = Fixtures.repositoryRoot.appendingPathComponent("specs/wireguard-path.spec").path

  /// Where a WireGuard packet's path goes, as the spec's header and the VM lane's checks name
  /// it: the sending socket, the wg device's transmit, the encryption worker resetting the skb
  /// (where the mark is lost), the outer UDP/IP, the underlay's receive, WireGuard's UDP socket
  /// in the peer, the decrypted packet entering the peer's stack, the receiving socket, the free.
  static let milestones = [
    "fentry:udp_send_skb(", "tracepoint:net_dev_start_xmit(", "fentry:skb_scrub_packet(", "fentry:iptunnel_xmit(",
    "tracepoint:netif_receive_skb(", "fentry:udp_queue_rcv_one_skb(", "tracepoint:napi_gro_receive_entry(",
    "fentry:__udp_enqueue_schedule_skb(", "tracepoint:consume_skb(",
  ]

  @Test("checks on every fixture kernel, with every function that takes an skb", arguments: Fixtures.kernelReleases)
  func checks(release: String) throws {
    let btf = try Fixtures.btfPath(release)
    let result = try ProcessRunner.run(try TestEnvironment.binary("swtrace"), ["check", "--btf", btf, Self.spec], timeout: 300)
    #expect(result.status == 0, "\(result)")
    // "specs/wireguard-path.spec: ok (1595 programs)": one per skb function and tracepoint.
    let programs = result.stderr.split(separator: "\n").compactMap { line -> Int? in
      guard let ok = line.firstRange(of: ": ok (") else { return nil }
      return Int(line[ok.upperBound...].prefix { $0.isNumber })
    }.first
    // The functions with a struct sk_buff * parameter, counted from bpftool's dump of the same
    // BTF when the fixture was made (scripts/kernels/btf-stats.py).
    let functions = try Fixtures.facts(release).stats.funcs_with_skb_param
    #expect((programs ?? 0) > functions, "\(release): \(programs.map(String.init) ?? "no") programs, \(functions) skb functions:\n\(result)")
  }

  @Test("skb:* attaches where a WireGuard packet's path goes", arguments: Fixtures.kernelReleases)
  func milestonesAreAttachPoints(release: String) throws {
    let btf = try Fixtures.btfPath(release)
    let result = try ProcessRunner.run(try TestEnvironment.binary("swtrace"), ["-l", "skb:*", "--btf", btf], timeout: 120)
    #expect(result.status == 0, "\(result)")
    for milestone in Self.milestones {
      #expect(result.stdoutLines.contains { $0.hasPrefix(milestone) }, "\(release): skb:* has no \(milestone)...)")
    }
  }
}
