// printf, $variables, casts, indexes and IPv6 comparisons generate code no other construct
// does (stack copies of wide values, run-time bounds checks, pointer arithmetic on the skb):
// every program of these specs must pass the pre-check and load into the running kernel,
// on every skb tracepoint it has.

import BTF
import CodeGen
import Foundation
import KernelTestSupport
import Runtime
import Sema
import SwtraceSyntax
import Testing

@Suite("new language constructs load into the kernel", .serialized)
struct LanguageKernelTests {
  static let specs = [
    #"""
    skb:* /ip6.saddr == ::1 || ip6.daddr in fd00::/64 || ip.saddr in 10.0.0.0/8/ {
      $a = ip6.saddr; $name = ifname; $n = (s16)len; $small = "small"
      if ($a == fd00::1 || $name == "lo") { $n = $n + 1; $small = comm }
      printf("%s %s %-8s %5d %#x %c %p %u %s\n", $small, $a, $name, $n, mark, skb->dev->name[mark & 15], skb->head, skb->cb[3], gso_type)
      @by[$a, $name] = count()
    }
    """#,
    #"""
    skb:* {
      $ip = (struct iphdr *)(skb->head + skb->network_header)
      $i = mark % 64
      print($ip->ttl, $ip->protocol, skb->cb[$i], skb->head[$i], (u8)len, (s8)mark, (bool)gso_segs, (u32)skb)
      if ((s32)$ip->ttl > 1) { printf("%d\n", $ip->saddr) } else { printf("none\n") }
    }
    """#,
  ]

  @Test("every program of the specs loads", .needsKernelLoading, arguments: specs.indices)
  func loads(index: Int) throws {
    let (types, _) = try RunningKernel.forLoading()
    // Tracepoints only: on a kernel with function backends skb:* would be thousands of programs.
    let resolver = ProbeResolver(types: types, support: .tracepointsOnly)
    let file = SourceFile(name: "<spec>", text: Self.specs[index])
    guard case .compiled(let compiled, _) = SpecCompiler(resolver: resolver, ringBufferSize: 4096, mapEntries: 64).compile(file)
    else {
      Issue.record("the spec must compile: \(Self.specs[index])")
      return
    }
    #expect(compiled.programs.count >= 20)
    let session = TraceSession(compiled: compiled)
    defer { session.detach() }
    do {
      try session.load()
    } catch {
      Issue.record("the kernel rejected a program the pre-check accepted: \(error.description)")
    }
  }
}
