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
