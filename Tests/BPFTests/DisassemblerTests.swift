import Testing

@testable import BPF

@Suite struct DisassemblerTests {
  /// A small probe: look up a counter, reserve an event, fill it and submit it.
  static let spec = """
    kprobe:tcp_sendmsg {
      @counts[pid] += 1;
      print(pid);
    }
    """

  static func sample() throws -> Program {
    var a = Assembler()
    let out = a.newLabel()
    let noCounter = a.newLabel()
    a.emit(.mov(.r6, .r1))
    a.currentTag = SourceTag(rawValue: 2)  // @counts[pid] += 1
    a.emit([
      .call(helper: HelperFunction.getCurrentPIDTGID.rawValue), .alu64(.rsh, .r0, .immediate(32)),
      .store(.double, .fp, offset: -8, .r0), .mov(.r2, .fp), .add(.r2, -8), .loadMapFD(.r1, fd: 1),
      .call(helper: HelperFunction.mapLookupElement.rawValue),
    ])
    a.jump(if: .eq, .r0, .immediate(0), to: noCounter)
    a.emit([.mov(.r1, 1), .atomic(.add, .double, .r0, offset: 0, .r1)])
    a.bind(noCounter)
    a.currentTag = SourceTag(rawValue: 3)  // print(pid)
    a.emit([
      .loadMapFD(.r1, fd: 0), .mov(.r2, 16), .alu32(.mov, .r3, .immediate(0)),
      .call(helper: HelperFunction.ringbufReserve.rawValue),
    ])
    a.jump(if: .eq, .r0, .immediate(0), to: out)
    a.emit([
      .load(.word, .r1, .r6, offset: 112), .endian(.big, .r1, bits: 16),
      .store(.word, .r0, offset: 0, .r1), .storeImmediate(.word, .r0, offset: 4, 0),
      .loadImmediate64(.r2, 0xdead_beef_0000), .store(.double, .r0, offset: 8, .r2),
      .mov(.r1, .r0), .mov(.r2, 0), .call(helper: HelperFunction.ringbufSubmit.rawValue),
    ])
    a.bind(out)
    a.currentTag = nil
    a.emit([.mov(.r0, 0), .exit])
    return try a.finish()
  }

  static let golden = """
       0: (bf) r6 = r1
       1: (85) call bpf_get_current_pid_tgid#14
       2: (77) r0 >>= 32
       3: (7b) *(u64 *)(r10 -8) = r0
       4: (bf) r2 = r10
       5: (07) r2 += -8
       6: (18) r1 = map[counts]
       8: (85) call bpf_map_lookup_elem#1
       9: (15) if r0 == 0x0 goto pc+2
      10: (b7) r1 = 1
      11: (db) lock *(u64 *)(r0 +0) += r1
      12: (18) r1 = map[events]
      14: (b7) r2 = 16
      15: (b4) w3 = 0
      16: (85) call bpf_ringbuf_reserve#131
      17: (15) if r0 == 0x0 goto pc+10
      18: (61) r1 = *(u32 *)(r6 +112)
      19: (dc) r1 = be16 r1
      20: (63) *(u32 *)(r0 +0) = r1
      21: (62) *(u32 *)(r0 +4) = 0
      22: (18) r2 = 0xdeadbeef0000
      24: (7b) *(u64 *)(r0 +8) = r2
      25: (bf) r1 = r0
      26: (b7) r2 = 0
      27: (85) call bpf_ringbuf_submit#132
      28: (b7) r0 = 0
      29: (95) exit

    """

  static let names: [Int32: String] = [0: "events", 1: "counts"]

  @Test func goldenText() throws {
    let text = Disassembler(mapNames: Self.names).text(try Self.sample())
    #expect(text == Self.golden)
  }

  /// The tags stand for the spec's lines: the comment is the line's text and number.
  @Test func sourceAnnotations() throws {
    let lines = Self.spec.split(separator: "\n")
    let text = Disassembler(mapNames: Self.names).text(try Self.sample()) { tag in
      let line = Int(tag.rawValue)
      return "\(lines[line - 1].drop { $0 == " " }) @ probe.st:\(line)"
    }
    let output = text.split(separator: "\n", omittingEmptySubsequences: false)
    #expect(output[0] == "   0: (bf) r6 = r1")
    #expect(output[1] == "; @counts[pid] += 1; @ probe.st:2")
    #expect(output[2] == "   1: (85) call bpf_get_current_pid_tgid#14")
    #expect(output[12] == "; print(pid); @ probe.st:3")
    #expect(output[13] == "  12: (18) r1 = map[events]")
    // Instructions without a tag do not start a new run.
    #expect(output.filter { $0.hasPrefix(";") }.count == 2)
    #expect(text.hasSuffix("  29: (95) exit\n"))
  }

  @Test(arguments: [
    (Instruction.alu32(.add, .r1, .register(.r2)), "(0c) w1 += w2"),
    (.alu64(.neg, .r1, .immediate(0)), "(87) r1 = -r1"),
    (.alu32(.neg, .r4, .immediate(0)), "(84) w4 = -w4"),
    (.alu64(.arsh, .r1, .immediate(3)), "(c7) r1 s>>= 3"),
    (.alu64(.mod, .r1, .register(.r9)), "(9f) r1 %= r9"),
    (.endian(.little, .r3, bits: 32), "(d4) r3 = le32 r3"),
    (.jump(offset: -4), "(05) goto pc-4"),
    (.jumpIf32(.sle, .r1, .immediate(-1), offset: 3), "(d6) if w1 s<= 0xffffffff goto pc+3"),
    (.jumpIf(.set, .r1, .register(.r2), offset: 0), "(4d) if r1 & r2 goto pc+0"),
    (.load(.half, .r1, .r2, offset: -6), "(69) r1 = *(u16 *)(r2 -6)"),
    (.store(.byte, .r1, offset: 0, .r2), "(73) *(u8 *)(r1 +0) = r2"),
    (.atomic(.fetchAdd, .double, .r1, offset: 8, .r2), "(db) r2 = atomic64_fetch_add((u64 *)(r1 +8), r2)"),
    (.atomic(.fetchOr, .word, .r1, offset: 8, .r2), "(c3) r2 = atomic_fetch_or((u32 *)(r1 +8), r2)"),
    (.atomic(.exchange, .double, .r1, offset: 0, .r2), "(db) r2 = atomic64_xchg((u64 *)(r1 +0), r2)"),
    (.atomic(.compareExchange, .word, .r1, offset: 0, .r2), "(c3) r0 = atomic_cmpxchg((u32 *)(r1 +0), r0, r2)"),
    (.atomic(.xor, .word, .r1, offset: 0, .r2), "(c3) lock *(u32 *)(r1 +0) ^= r2"),
    (.loadMapValue(.r1, fd: 1, offset: 16), "(18) r1 = map[counts][0]+16"),
    (.loadMapFD(.r1, fd: 7), "(18) r1 = map[idx:7]"),
    (.call(helper: 9999), "(85) call unknown#9999"),
    (.callLocal(offset: 5), "(85) call pc+5"),
  ])
  func singleLines(_ instruction: Instruction, _ expected: String) {
    #expect(Disassembler(mapNames: Self.names).line(instruction) == expected)
  }
}
