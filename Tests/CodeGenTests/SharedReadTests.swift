import BPF
import BTF
import CodeGen
import Foundation
import Sema
import SwtraceSyntax
import Testing
import TestSupport

private let goldenDirectory = Golden.directory()

/// A field the clause reads more than once is read from the kernel once: kprobe programs read
/// every field with a helper call, so each repeat would cost a call and six instructions.
@Suite struct SharedReads {
  /// The kprobe program of `text`, compiled against the fixture kernel (pre-checked, so a
  /// reused slot that some path never wrote would fail here).
  func kprobeProgram(_ text: String) throws -> (CompiledProgram, CompiledSpec, SourceFile) {
    let support = BackendSupport(available: [.tracepoint, .kprobe, .kretprobe], kprobesAttachInBulk: false)
    let (compiled, file) = try compileAgainstFixture(text, support: support)
    return (try #require(compiled.programs.first { $0.attachPoint.backend == .kprobe }), compiled, file)
  }

  func calls(_ helper: HelperFunction, in program: Program) -> Int {
    program.instructions.filter { $0 == .call(helper: helper.rawValue) }.count
  }

  static let everythingTwice =
    "kprobe:ip_rcv /mark == 0xdead && ip.daddr == 127.0.0.1/ < print(mark, ip.saddr, ip.daddr, ip.proto, ifname, ifindex) >"

  @Test func eachFieldIsReadOnce() throws {
    let (program, compiled, file) = try kprobeProgram(Self.everythingTwice)
    // mark, daddr, saddr, the u8 protocol, dev, ifindex: six fields, each read once although
    // the spec names mark and daddr twice; and the header walk, once although the three ip
    // fields each need it: head, tail, network_header, protocol, the IPv4 header, the IPv6
    // header and one read per extension-header step (8). dev->name is the string read.
    #expect(calls(.probeReadKernel, in: program.program) == 6 + 4 + 2 + PacketFact.maximumExtensionHeaders)
    #expect(calls(.probeReadKernelString, in: program.program) == 1)
    let listing = "// \(Self.everythingTwice)\n" + compiled.listing(source: file)
    try Golden.check(listing, name: "kprobe-shared-reads.txt", directory: goldenDirectory)
  }

  @Test func aFieldTheFilterReadIsCopiedIntoTheRecord() throws {
    let (program, _, _) = try kprobeProgram("kprobe:ip_rcv /len > 100/ { print(len) }")
    #expect(calls(.probeReadKernel, in: program.program) == 1)
  }

  @Test func aReadInOneArmIsReadAgainAfterIt() throws {
    // The print inside the `if` runs only for some packets: the one after it cannot count on
    // its read and reads len again. The pre-check would reject reading a slot some path left
    // unwritten, so compiling is itself part of the check.
    let (program, _, _) = try kprobeProgram("kprobe:ip_rcv { if (mark == 1) { print(len) } print(len) }")
    #expect(calls(.probeReadKernel, in: program.program) == 3)
  }

  @Test func bothArmsOfAConditionalReadForThemselves() throws {
    let (program, _, _) = try kprobeProgram(
      "kprobe:ip_rcv { if (mark == 1) { print(len) } else { print(len, mark) } @[len] = count() }")
    // mark once (the condition dominates both arms), len in each arm and once after the if.
    #expect(calls(.probeReadKernel, in: program.program) == 4)
  }

  @Test func aComparedStringIsCopiedIntoTheRecord() throws {
    let (compiled, _) = try compileAgainstFixture(#"skb:net_dev_xmit /ifname == "lo"/ { print(ifname, len) }"#)
    let program = try #require(compiled.programs.first)
    #expect(calls(.probeReadKernelString, in: program.program) == 1)
  }

  @Test func readsInsideAVariableAreNotShared() throws {
    // A variable can be assigned again between two uses: reads through it are not reused.
    let (program, _, _) = try kprobeProgram(
      "kprobe:ip_rcv { $d = skb->dev; print($d->ifindex); $d = skb->dev; print($d->ifindex) }")
    // skb->dev once (it is the same field both times), then ifindex through each value of $d.
    #expect(calls(.probeReadKernel, in: program.program) == 3)
  }
}
