import BPF
import BTF
@testable import CodeGen
import Foundation
@testable import Output
import Sema
import SwtraceSyntax
import Testing
import TestSupport

private let goldenDirectory = Golden.directory()

/// Compiles and pre-checks against a fixture kernel's BTF with tracepoints only.
private func compileSpec(_ text: String) throws -> (CompiledSpec, SourceFile) {
  try compileAgainstFixture(text)
}

@Suite struct LanguageDisassembly {
  static let specs: [(name: String, text: String)] = [
    (
      "printf-and-variables",
      #"skb:net_dev_queue /mark == 0xdead/ { $len = (u16)len; if ($len > 100) { $big = 1 } else { $big = 0 } printf("%s %-6s len=%d big=%d\n", probe, ifname, $len, $big) }"#
    ),
    (
      "ipv6-cast-index",
      "skb:net_dev_queue /ip6.saddr == fd00::1 && ip6.daddr in fd00::/64/ { $ip = (struct ipv6hdr *)(skb->head + skb->network_header); print($ip->hop_limit, skb->cb[mark & 7], (s8)mark) }"
    ),
  ]

  @Test(arguments: specs.map(\.name))
  func listingMatchesGolden(name: String) throws {
    let text = Self.specs.first { $0.name == name }!.text
    let (compiled, file) = try compileSpec(text)
    let listing = "// \(text)\n" + compiled.listing(source: file)
    try Golden.check(listing, name: "\(name).txt", directory: goldenDirectory)
  }

  /// Every skb tracepoint gets a program the pre-check accepts, whatever argument the skb is.
  @Test func everyConstructPassesThePrecheckOnEverySkbTracepoint() throws {
    let (compiled, _) = try compileSpec(
      #"""
      skb:* /ip6.saddr != ::1 || ip.saddr in 10.0.0.0/8/ {
        $a = ip6.daddr; $name = ifname; $n = (s16)len; $short = "small"
        $ip = (struct iphdr *)(skb->head + skb->network_header)
        if ($a == fd00::1 || $name == "lo") { $n = $n + 1 }
        printf("%s %s %s %d %x %c %p %u\n", $short, $a, $name, $n, $ip->ttl, skb->cb[mark % 48], skb->head, skb->cb[3])
        @by[$a, $name] = count()
      }
      """#)
    #expect(compiled.programs.count >= 25)
  }

  /// A string read before a longer one is assigned is copied from the grown slot.
  @Test func stringVariablesGrow() throws {
    let (compiled, _) = try compileSpec(
      #"skb:net_dev_queue { $s = "ab"; print($s); @k[$s] = count(); $s = comm; if ($s == "ping") { printf("%s\n", $s) } }"#)
    #expect(compiled.layouts.map { $0.fields.map(\.size) } == [[8], [16]])
  }

  @Test func printfLayoutCarriesTheFormat() throws {
    let (compiled, _) = try compileSpec(#"skb:net_dev_queue { $s = "abcdefghij"; printf("%s %d\n", $s, len); print(len) }"#)
    #expect(compiled.layouts.count == 2)
    #expect(compiled.layouts[0].format?.conversions.map(\.kind) == [.string, .signed])
    #expect(compiled.layouts[1].format == nil)
    // A wide variable is copied 8 bytes at a time into an 8-aligned field.
    #expect(compiled.layouts[0].fields[0].offset % 8 == 0)
    #expect(compiled.layouts[0].fields[0].size == 16)
  }
}

@Suite struct PrintfRendering {
  func render(_ format: String, _ values: [(ValueType, Int, [UInt8])]) throws -> String {
    let arguments = values.indices.map { "x\($0)" }
    let spec = "skb:net_dev_queue { printf(\"\(format)\"\(arguments.isEmpty ? "" : ", ")\(arguments.map { _ in "len" }.joined(separator: ", "))) }"
    let (compiled, _) = try compileSpec(spec)
    let parsed = try #require(compiled.layouts.first?.format)
    var offset = 0
    var fields: [EventField] = []
    var bytes: [[UInt8]] = []
    for (type, size, raw) in values {
      fields.append(EventField(label: "x", type: type, offset: offset, size: size))
      bytes.append(raw)
      offset += size
    }
    return PrintfRenderer.render(parsed, fields: fields, probeNames: ["net_dev_queue"]) { field in
      bytes[fields.firstIndex(of: field)!]
    }
  }

  static func little(_ value: UInt64, _ size: Int) -> [UInt8] { (0..<size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

  @Test func numbersFollowCFlags() throws {
    let u32 = ValueType.integer(bytes: 4, signed: false)
    let s16 = ValueType.integer(bytes: 2, signed: true)
    #expect(try render("[%5d|%-5d|%05d|%+d|%x|%#X|%08x|%o|%u]", [
      (u32, 4, Self.little(42, 4)), (u32, 4, Self.little(42, 4)), (u32, 4, Self.little(42, 4)),
      (u32, 4, Self.little(7, 4)), (u32, 4, Self.little(0xbeef, 4)), (u32, 4, Self.little(0xbeef, 4)),
      (u32, 4, Self.little(0xdead, 4)), (u32, 4, Self.little(8, 4)), (s16, 2, Self.little(0xffff, 2)),
    ]) == "[   42|42   |00042|+7|beef|0XBEEF|0000dead|10|65535]")
    #expect(try render("%d %5d %.3d", [(s16, 2, Self.little(0xfffe, 2)), (s16, 2, Self.little(0xfffe, 2)), (s16, 2, Self.little(5, 2))])
      == "-2    -2 005")
  }

  @Test func stringsAddressesAndCharacters() throws {
    let text = Array("eth0".utf8) + Array(repeating: 0, count: 12)
    let address: [UInt8] = [0xfd, 0] + Array(repeating: 0, count: 13) + [1]
    #expect(try render("%-6s|%6s|%.2s|%s|%s|%c|%p", [
      (.string(capacity: 16), 16, text), (.string(capacity: 16), 16, text), (.string(capacity: 16), 16, text),
      (.ipv6, 16, address), (.ipv4, 4, Self.little(0x0a00_0001, 4)), (.integer(bytes: 1, signed: false), 1, [65]),
      (.u64, 8, Self.little(0xffff_8880_0000_1000, 8)),
    ]) == "eth0  |  eth0|et|fd00::1|10.0.0.1|A|0xffff888000001000")
  }

  @Test func textAndJSONLines() throws {
    var event = DecodedEvent(timestamp: 5, cpu: 1, probe: "p", values: [("len", .unsigned(3))])
    event.text = "len is 3\n"
    #expect(EventFormatter(format: .text).line(event) == "len is 3")
    #expect(
      EventFormatter(format: .json).line(event)
        == #"{"probe": "p", "ts": 5, "cpu": 1, "text": "len is 3\n", "values": {"len": 3}}"#)
  }
}
