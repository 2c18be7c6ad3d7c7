// The promise behind the pre-check: a program it accepts, the kernel accepts. Generated specs
// of growing size, and deliberately broken variants of their programs, are judged by both;
// every disagreement where the pre-check said yes is a failure.

import BPF
import BTF
import CodeGen
import Foundation
import KernelTestSupport
import Runtime
import Sema
import SwtraceSyntax
import TestSupport
import Testing

/// Random specs over one tracepoint, built from the language's constructs.
struct SpecGenerator {
  var random: SplitMix64
  static let numbers = ["len", "mark", "protocol", "ifindex", "gso_size", "gso_segs", "ip.ttl", "ip.len", "udp.dport",
                        "tcp.sport", "icmp.type", "netns", "data_len", "queue_mapping", "cpu", "pid", "skb->dev->mtu"]
  static let printable = numbers + [
    "ifname", "comm", "gso_type", "saddr", "daddr", "ip6.saddr", "probe", "ts",
    // bpftrace's builtins and functions (issue 20).
    "nsecs", "elapsed", "uid", "gid", "ppid", "cgroup", "func", "bswap(len)", "bswap((u16)mark)", "sizeof(struct sock)",
  ]
  /// Fields sock:inet_sock_set_state records, for clauses that read the record.
  static let recorded = ["args.sport", "args.dport", "args.newstate", "args.oldstate", "args.family", "args.protocol"]

  mutating func pick<T>(_ values: [T]) -> T { values[Int(random.next() % UInt64(values.count))] }

  mutating func condition(depth: Int) -> String {
    if depth > 0, random.next() % 3 == 0 {
      return "(\(condition(depth: depth - 1)) \(pick(["&&", "||"])) \(condition(depth: depth - 1)))"
    }
    switch random.next() % 5 {
    case 0: return "ifname \(pick(["==", "!="])) \"\(pick(["lo", "eth0", "veth-a"]))\""
    case 1: return "saddr in 10.\(random.next() % 256).0.0/\(pick([8, 16, 24]))"
    case 2: return "(\(pick(Self.numbers)) \(pick(["+", "&", ">>", "*"])) \(random.next() % 64)) \(pick(["==", "!=", "<", ">="])) \(random.next() % 2000)"
    default: return "\(pick(Self.numbers)) \(pick(["==", "!=", "<", "<=", ">", ">="])) \(pick(["0", "1", "0xdead", "1500", "4294967295"]))"
    }
  }

  mutating func statement(_ index: Int) -> String {
    switch random.next() % 11 {
    case 6:
      let n = 1 + random.next() % 6
      return "$f\(index) = 0; for ($i : 0..\(n)) { if ($i == \(random.next() % 4)) { continue } $f\(index) += \(pick(Self.numbers)); if ($f\(index) > 1000) { break } } print($f\(index))"
    case 7:
      return "$w\(index) = \(random.next() % 3); while ($w\(index) < \(2 + random.next() % 5)) { $w\(index)++; if (len > \(random.next() % 1500)) { continue } @q\(index)[$w\(index)] = count() }"
    case 8:
      return "print(\(pick(Self.numbers)) > \(random.next() % 1500) ? \(pick(Self.numbers)) : \(pick(Self.numbers)))"
    case 9:
      return "$c\(index) = \(pick(Self.numbers)); $c\(index) \(pick(["+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>="])) \(1 + random.next() % 7); $c\(index)++; @x\(index)[cpu]++; print($c\(index))"
    case 10:
      return "if (\(condition(depth: 0))) { return } print(\(pick(Self.printable)))"
    case 0: return "print(\((0..<Int(1 + random.next() % 4)).map { _ in pick(Self.printable) }.joined(separator: ", ")))"
    case 1: return "@m\(index)[\(pick(["ifname", "probe", "udp.dport", "saddr", "comm"]))] = \(pick(["count()", "sum(len)", "avg(len)", "min(len)", "max(len)", "stats(len)"]))"
    case 2: return "@h\(index) = \(pick(["hist(len)", "lhist(len, 0, 1500, 100)", "hist(gso_size)"]))"
    case 3: return "@v\(index)[skb] = ts"
    case 4: return "if (\(condition(depth: 1))) { print(len) } else { @c\(index) = count() }"
    default: return "@k\(index)[\(pick(Self.numbers)), \(pick(Self.numbers))] = count()"
    }
  }

  mutating func spec(size: Int) -> String {
    if random.next() % 5 == 0 { return recordSpec(size: size) }
    let filter = random.next() % 4 == 0 ? "" : " /\(condition(depth: min(3, size / 2)))/"
    let body = (0..<max(1, size)).map { statement($0) }.joined(separator: "; ")
    return "skb:net_dev_queue\(filter) { \(body) }"
  }

  /// A clause reading what a tracepoint recorded (a classic tracepoint program).
  mutating func recordSpec(size: Int) -> String {
    let filter = random.next() % 3 == 0 ? "" : " /\(pick(Self.recorded)) \(pick(["==", "!=", "<", ">="])) \(pick(["TCP_CLOSE", "TCP_SYN_SENT", "6", "0", "443"]))/"
    let body = (0..<max(1, size)).map { index -> String in
      switch random.next() % 5 {
      case 0: return "printf(\"%s %s %d\\n\", ntop(args.saddr), ntop(args.daddr_v6), \(pick(Self.recorded)))"
      case 1: return "@s\(index)[\(pick(Self.recorded))] = count()"
      case 2: return "print(((struct sock *)args.skaddr)->__sk_common.skc_num, bswap(args.sport))"
      case 3: return "$r\(index) = \(pick(Self.recorded)) == TCP_CLOSE ? 1 : 2; $r\(index) += args.sport; print($r\(index))"
      default: return "for ($k : 0..\(1 + random.next() % 4)) { @t\(index)[$k, \(pick(Self.recorded))] = count() }"
      }
    }.joined(separator: "; ")
    return "tracepoint:sock:inet_sock_set_state\(filter) { \(body) }"
  }
}

/// One deliberate break of a correct program, the kind of bug a code generator could have.
func mutate(_ program: Program, random: inout SplitMix64) -> Program {
  var instructions = program.instructions
  let index = Int(random.next() % UInt64(instructions.count))
  switch random.next() % 7 {
  case 0:  // drop an instruction (null checks, initialisations, bounds)
    instructions.remove(at: index)
  case 1:  // read through another register
    if case .load(let size, let dst, _, let offset) = instructions[index] {
      instructions[index] = .load(size, dst, Register(UInt8(random.next() % 10)), offset: offset)
    }
  case 2:  // shift a memory offset
    switch instructions[index] {
    case .load(let size, let dst, let src, let offset):
      instructions[index] = .load(size, dst, src, offset: offset &+ Int16(truncatingIfNeeded: Int(random.next() % 64) - 32))
    case .store(let size, let dst, let offset, let src):
      instructions[index] = .store(size, dst, offset: offset &- 512, src)
    default:
      instructions[index] = .mov(Register(UInt8(random.next() % 10)), Int32(random.next() % 100))
    }
  case 3:  // retarget a jump
    if case .jumpIf(let condition, let dst, let operand, let offset) = instructions[index] {
      instructions[index] = .jumpIf(condition, dst, operand, offset: offset &+ Int16(Int(random.next() % 5) - 2))
    }
  case 4:  // forget the result of a helper
    if case .call = instructions[index] { instructions.insert(.mov(.r0, 0), at: min(index + 1, instructions.count)) }
  case 5:  // clobber a callee-saved register
    instructions.insert(.mov(Register(UInt8(6 + random.next() % 4)), Int32(random.next() % 16)), at: index)
  default:  // swap neighbours
    if index + 1 < instructions.count { instructions.swapAt(index, index + 1) }
  }
  return Program(instructions: instructions)
}

@Suite("verifier pre-check against the kernel", .serialized)
struct DifferentialTests {
  @Test("no program the pre-check accepts is rejected by the kernel", .needsKernelLoading)
  func precheckAcceptanceImpliesKernelAcceptance() throws {
    let (types, support) = try RunningKernel.forLoading()
    let compiler = SpecCompiler(resolver: ProbeResolver(types: types, support: support), ringBufferSize: 4096, mapEntries: 64)
    var generator = SpecGenerator(random: SplitMix64(seed: 0x5eed_2026))
    var mutations = SplitMix64(seed: 0xb0_6005)
    var specs = 0
    var broken = 0
    var acceptedBoth = 0
    var rejectedBoth = 0
    var rejectedByPrecheckOnly = 0
    var disagreements: [String] = []
    // Specs with each of issue 20's constructs that compiled, so that a generator whose new
    // statements never compile cannot pass unnoticed.
    var constructs = ["for (": 0, "while (": 0, " ? ": 0, "return": 0, "++": 0, "tracepoint:sock": 0, "bswap(": 0]
    var refusedSpecs: [String] = []
    let target = Int(ProcessInfo.processInfo.environment["SWTRACE_DIFFERENTIAL_PROGRAMS"] ?? "") ?? 2000
    var size = 1
    while specs + broken < target {
      let text = generator.spec(size: size)
      size = size % 8 + 1
      guard case .compiled(let compiled, _) = compiler.compile(SourceFile(name: "<generated>", text: text)) else {
        refusedSpecs.append(text)
        continue
      }
      specs += 1
      for (construct, _) in constructs where text.contains(construct) { constructs[construct, default: 0] += 1 }
      if let problem = kernelVerdict(compiled) {
        disagreements.append("spec accepted by the pre-check, rejected by the kernel: \(text)\n\(problem)")
      } else {
        acceptedBoth += 1
      }
      // Three broken variants of the same program.
      for _ in 0..<3 {
        var variant = compiled
        variant.programs[0].program = mutate(compiled.programs[0].program, random: &mutations)
        broken += 1
        let precheck = Verifier.check(
          variant.programs[0].program, context: variant.programs[0].context, maps: variant.maps,
          kernelObjects: variant.programs[0].kernelObjects)
        let kernel = kernelVerdict(variant)
        switch (precheck.isEmpty, kernel == nil) {
        case (true, true): acceptedBoth += 1
        case (false, false): rejectedBoth += 1
        case (false, true): rejectedByPrecheckOnly += 1
        case (true, false):
          disagreements.append("broken variant of `\(text)` accepted by the pre-check, rejected by the kernel:\n\(kernel!)")
        }
      }
    }
    let rejections = rejectedBoth + rejectedByPrecheckOnly
    print(
      "differential: \(specs) generated specs, \(broken) broken variants; accepted by both \(acceptedBoth), "
        + "rejected by both \(rejectedBoth), rejected by the pre-check only \(rejectedByPrecheckOnly) "
        + "(agreement on rejections \(rejections == 0 ? 100 : 100 * rejectedBoth / rejections)%)")
    print("differential: compiled specs with each new construct: \(constructs.sorted { $0.key < $1.key }); refused \(refusedSpecs.count)")
    #expect(constructs.values.allSatisfy { $0 > 0 }, "\(constructs); refused e.g.\n\(refusedSpecs.prefix(5).joined(separator: "\n"))")
    #expect(specs + broken >= target)
    #expect(disagreements.isEmpty, "\(disagreements.count) disagreements, e.g.\n\(disagreements.prefix(3).joined(separator: "\n\n"))")
  }

  /// nil when the kernel loads every program of the spec, else what it said.
  func kernelVerdict(_ compiled: CompiledSpec) -> String? {
    let session = TraceSession(compiled: compiled)
    defer { session.detach() }
    do {
      try session.load()
      return nil
    } catch {
      return error.description
    }
  }
}
