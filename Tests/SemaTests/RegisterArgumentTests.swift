import Foundation
import Sema
import SwtraceSyntax
import Testing
import TestSupport

private let goldenDirectory = Golden.directory()

/// kprobes' `arg0`..`arg5`: typed as 64-bit numbers in kprobe clauses (a cast makes one a
/// pointer, as tools/tcpsynbl.bt does), refused with a located diagnostic elsewhere and past
/// the sixth register.
@Suite struct RegisterArguments {
  static let refusals: [(name: String, spec: String, support: BackendSupport)] = [
    ("register-argument-needs-kprobe", "skb:kfree_skb { print(arg0) }", .tracepointsOnly),
    ("register-argument-range", "kprobe:tcp_v4_syn_recv_sock { print(arg6) }", .all),
  ]

  @Test(arguments: refusals.map(\.name))
  func refusalMatchesGolden(name: String) throws {
    let refusal = Self.refusals.first { $0.name == name }!
    let (checked, rendered) = check(refusal.spec, resolver: try semaFixtureResolver(support: refusal.support))
    #expect(checked == nil)
    #expect(rendered.contains("error:"))
    try Golden.check("// \(refusal.spec)\n\(rendered)", name: "\(name).txt", directory: goldenDirectory)
  }

  @Test func everyRegisterChecksInAKprobe() throws {
    let (checked, rendered) = check(
      "kprobe:tcp_v4_syn_recv_sock { $sock = (struct sock *)arg0; print(arg1, arg2, arg3, arg4, arg5, $sock->sk_ack_backlog) }",
      resolver: try semaFixtureResolver(support: .all))
    #expect(checked != nil, "\(rendered)")
  }
}
