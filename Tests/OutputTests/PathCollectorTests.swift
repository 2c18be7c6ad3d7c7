// -f paths and paths-json: a printf hop keeps its formatted text (issue 27: it was dropped).

@testable import Output
import Testing

@Suite("paths output")
struct PathCollectorTests {
  static func event(_ probe: String, at timestamp: UInt64, text: String?, len: Int64) -> DecodedEvent {
    DecodedEvent(
      timestamp: timestamp, cpu: 1, probe: probe, skb: 0xffff_8881_0000_1000,
      values: [(label: "len", value: .signed(len))], text: text)
  }

  @Test("a printf hop prints its text, a print hop its values; the path ends at the free")
  func printfText() {
    let paths = PathCollector(json: false)
    #expect(paths.add(Self.event("net_dev_queue", at: 1_000, text: "lo 106 bytes\n", len: 106)).isEmpty)
    let text = paths.add(Self.event("kfree_skb", at: 3_500, text: nil, len: 72)).first?.text
    #expect(
      text == """
        packet skb 0xffff888100001000 at 1000 (2 hops):
          +0.0us (+0.0us) cpu 1 net_dev_queue: lo 106 bytes
          +2.5us (+2.5us) cpu 1 kfree_skb (len: 72)
        """)
  }

  @Test("paths-json: a printf hop carries \"text\" next to its values")
  func printfTextInJSON() {
    let paths = PathCollector(json: true)
    _ = paths.add(Self.event("net_dev_queue", at: 1_000, text: "lo 106 bytes\n", len: 106))
    let json = paths.add(Self.event("kfree_skb", at: 3_500, text: nil, len: 72)).first?.text
    #expect(
      json == #"{"skb": "0xffff888100001000", "ts": 1000, "complete": true, "hops": [{"probe": "net_dev_queue", "dt_ns": 0, "dt_prev_ns": 0, "cpu": 1, "text": "lo 106 bytes\n", "values": {"len": 106}}, {"probe": "kfree_skb", "dt_ns": 2500, "dt_prev_ns": 2500, "cpu": 1, "values": {"len": 72}}]}"#)
  }
}
