import BPF
import CodeGen
import Testing

/// The events ring buffer: written by the programs of a spec that prints, asks to exit or
/// captures; not needed (so not created by the runtime) for one that only fills maps; sized
/// by `--ring-size`.
@Suite struct EventRingTests {
  @Test(arguments: [
    "skb:net_dev_queue /mark == 0xdead/ { @n = count() }",
    "tracepoint:net:netif_receive_skb { @c[comm] = count(); @h = hist(len) }",
    "skb:net_dev_queue { @bytes[ifname] = sum(len) } END { print(@bytes) }",
  ])
  func aSpecThatOnlyFillsMapsWritesNoEvents(spec: String) throws {
    let (compiled, _) = try compileAgainstFixture(spec)
    #expect(!compiled.writesEvents)
  }

  @Test(arguments: [
    "skb:net_dev_queue /mark == 0xdead/ { print(len) }",
    "skb:net_dev_queue { printf(\"%d\\n\", len) }",
    "skb:net_dev_queue { @n = count(); exit() }",
  ])
  func aSpecThatPrintsOrExitsWritesEvents(spec: String) throws {
    let (compiled, _) = try compileAgainstFixture(spec)
    #expect(compiled.writesEvents)
  }

  /// A record is submitted without waking the reader. Only a ring buffer small enough to
  /// fill between two of the reader's polls has its programs ask how full it is
  /// (`bpf_ringbuf_query`) and force a wake-up past an eighth of it.
  @Test(arguments: [(RingBufferSize.standard, false), (1 << 30, false), (1 << 20, true), (4096, true)])
  func onlySmallRingBuffersAreQueried(ringBytes: Int, queried: Bool) throws {
    let (compiled, _) = try compileAgainstFixture(
      "skb:net_dev_queue /mark == 0xdead/ { print(len) }", ringBufferSize: ringBytes)
    let program = try #require(compiled.programs.first).program
    let query = Instruction.call(helper: HelperFunction.ringbufQuery.rawValue)
    #expect(program.instructions.contains(query) == queried)
    #expect(program.instructions.filter { $0 == .call(helper: HelperFunction.ringbufSubmit.rawValue) }.count == 1)
    // The submit's flags: always BPF_RB_NO_WAKEUP (1) unqueried; queried, NO_WAKEUP or
    // BPF_RB_FORCE_WAKEUP (2) past ringBytes / 8 (the compare's immediate).
    if queried {
      #expect(program.instructions.contains(.mov(.r2, 2)))
      #expect(program.instructions.contains { instruction in
        if case .jumpIf(_, .r0, .immediate(let bytes), _) = instruction { return Int(bytes) == ringBytes / 8 }
        return false
      })
    }
    #expect(program.instructions.contains(.mov(.r2, 1)))
  }

  @Test func ringSizesAreWholePowersOfTwoInKibibytesOrMebibytes() throws {
    #expect(try RingBufferSize.parse("8m").get() == 8 << 20)
    #expect(try RingBufferSize.parse("8M").get() == 8 << 20)
    #expect(try RingBufferSize.parse("64k").get() == 65_536)
    #expect(try RingBufferSize.parse("4096").get() == 4096)
    #expect(try RingBufferSize.parse("1024m").get() == 1 << 30)
    for refused in ["3m", "2k", "2048m", "0", "-4k", "m", "", "8g", "4096.0", "99999999999999999999m"] {
      #expect(throws: RingBufferSizeError.self, "\(refused)") { try RingBufferSize.parse(refused).get() }
    }
  }
}
