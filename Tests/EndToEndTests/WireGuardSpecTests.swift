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
  /// Each as `skb:NAME` and the backend `-lv` says it attaches with.
  static let milestones: [(name: String, backend: String)] = [
    ("udp_send_skb", "fentry"), ("net_dev_start_xmit", "tracepoint"), ("skb_scrub_packet", "fentry"),
    ("iptunnel_xmit", "fentry"), ("netif_receive_skb", "tracepoint"), ("udp_queue_rcv_one_skb", "fentry"),
    ("napi_gro_receive_entry", "tracepoint"), ("__udp_enqueue_schedule_skb", "fentry"), ("consume_skb", "tracepoint"),
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
    let result = try ProcessRunner.run(try TestEnvironment.binary("swtrace"), ["-lv", "skb:*", "--btf", btf], timeout: 120)
    #expect(result.status == 0, "\(result)")
    for milestone in Self.milestones {
      // "skb:udp_send_skb (struct sock * sk, ...)  via fentry:udp_send_skb"; a tracepoint's
      // category is "*" with --btf, which has none.
      let listed = result.stdoutLines.contains {
        $0.hasPrefix("skb:\(milestone.name) (") && $0.contains("  via \(milestone.backend):")
          && $0.hasSuffix(":\(milestone.name)")
      }
      #expect(listed, "\(release): skb:* has no \(milestone.name) via \(milestone.backend)")
    }
  }
}
