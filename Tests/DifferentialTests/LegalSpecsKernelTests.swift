// Issue 24's legal specs: each class of spec the pre-check used to refuse (or the compiler
// crashed on, or the kernel refused after the pre-check let it through) must pass the
// pre-check and load into the running kernel. The kernel's verifier is the judge: every
// program of each spec is loaded with its real maps; nothing is attached.

import BPF
import BTF
import CodeGen
import Foundation
import KernelTestSupport
import Runtime
import Sema
import SwtraceSyntax
import Testing

/// The kernel's verdict on a spec compiled for the running kernel's tracepoints.
enum KernelVerdict: Equatable {
  case loaded
  /// Refused before loading; the diagnostics as `swtrace check` would print them.
  case refusedByPrecheck(String)
  case rejectedByKernel(String)
}

func kernelVerdict(of text: String, types: KernelTypes) -> KernelVerdict {
  let file = SourceFile(name: "<spec>", text: text)
  switch runningKernelCompiler(types).compile(file) {
  case .failed(let diagnostics):
    return .refusedByPrecheck(DiagnosticRenderer().render(diagnostics, in: file))
  case .compiled(let compiled, _):
    if case .failure(let refusal) = loadIntoKernel(compiled) { return .rejectedByKernel(refusal.description) }
    return .loaded
  }
}

@Suite("legal specs load into the kernel", .serialized)
struct LegalSpecsKernelTests {
  static func repeated(_ count: Int, _ body: (Int) -> String) -> String {
    (0..<count).map(body).joined(separator: "\n")
  }

  static let specs: [(name: String, text: String)] = [
    // Constant conditions: no dead code reaches the kernel.
    ("if (false)", "skb:net_dev_queue { if (false) { print(len) } print(mark) }"),
    ("&& false as a value", "skb:net_dev_queue { print(len && false, mark || true) }"),
    ("in ::/0 as a value", "skb:net_dev_queue { print(ip6.saddr in ::/0) }"),
    (
      "a dead else if",
      "skb:net_dev_queue { if (len > 10) { print(len) } else if (1 > 2) { print(ifname, comm, ip6.saddr, ip6.daddr, skb->dev->name) } else { print(mark) } }"
    ),
    // Sema: keyed reads, string keys, deletes, pointer variables, pointer equality.
    ("a keyed read printed", "skb:net_dev_queue { @m[len] = len; print(@m[3]) }"),
    ("string keys of different lengths", #"skb:net_dev_queue { @a[comm] = count(); @a["eth0"] = count(); @a["a-much-longer-name"] = count() }"#),
    ("delete of a short string key", #"skb:net_dev_queue { @a[comm] = count(); delete(@a["lo"]) }"#),
    ("delete of histogram entries", "skb:net_dev_queue { @h[ifname] = hist(len); @l[mark] = lhist(len, 0, 100, 10); delete(@h[\"lo\"]); delete(@l[1]) }"),
    ("a pointer variable indexed", "skb:net_dev_queue { $p = (struct sk_buff *)skb; print($p[mark].mark, $p->len) }"),
    ("pointer equality", "skb:net_dev_queue { print(skb == skb->next, skb != skb->prev) }"),
    // Parts of pointer members read through integer-pointer casts.
    ("part of a pointer member", "skb:net_dev_queue { print(((u8 *)skb)[1], ((u16 *)skb)[8], ((u32 *)skb)[1], ((u64 *)skb)[0]) }"),
    // Signed division and remainder.
    ("signed division", "skb:net_dev_queue { print((s64)-7 / (s64)2, (s64)-7 % (s64)2, (s64)mark / -3, (s64)mark % -3) }"),
    // The stack: temporaries reused, large values in the scratch buffer.
    (
      "33 comm comparisons",
      "skb:net_dev_queue {\n" + repeated(33) { #"if (comm == "x\#($0)") { print(\#($0)) }"# } + "\n}"
    ),
    (
      "11 maps keyed by three wide values",
      "skb:net_dev_queue {\n" + repeated(11) { "@a\($0)[ifname, comm, ip6.saddr] = count()" } + "\n}"
    ),
    (
      "40 printf/if statements and 12 maps keyed by strings and addresses",
      "skb:net_dev_queue {\n"
        + repeated(40) { #"if (len > \#($0)) { printf("%s %s %d %s\n", ifname, comm, len, ip6.saddr) }"# } + "\n"
        + repeated(12) { "@m\($0)[\($0 % 2 == 0 ? "ifname, comm, ip6.daddr" : "comm, ip6.saddr, ifname")] = sum(len)" }
        + "\n}"
    ),
    (
      "one statement holding more than the stack",
      "skb:net_dev_queue { if (" + Array(repeating: "ip6.saddr != ip6.daddr", count: 40).joined(separator: " && ")
        + ") { print(len) } }"
    ),
    // Verification cost: sixteen independent branches feeding a histogram.
    (
      "16 branch variables into hist",
      "skb:net_dev_queue {\n$a = 0\n" + repeated(16) { "if (len & \(1 << $0)) { $a = $a + \(1 << $0) }" }
        + "\n@h = hist($a)\n@l = lhist($a, 0, 65536, 1024)\n}"
    ),
  ]

  @Test("the spec passes the pre-check and loads", .needsKernelLoading, arguments: specs.map(\.name))
  func loads(name: String) throws {
    let text = Self.specs.first { $0.name == name }!.text
    let types = try KernelTypes.loadRunningKernel()
    let verdict = kernelVerdict(of: text, types: types)
    #expect(verdict == .loaded, "\(name):\n\(text)")
  }
}
