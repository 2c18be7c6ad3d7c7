// Tracepoint arguments other than the skb, end to end: numbers (net_dev_xmit's rc and
// skb_len) and pointers to other kernel structures (net_dev_xmit's struct net_device *dev,
// `args.dev`: the bare name `dev` is skb->dev in an skb clause). On a veth, net_dev_xmit
// fires after veth handed the packet over and set skb->dev to the peer; what swtrace reads
// there is what the tracepoint recorded, so `ifname` is the transmitting device too.

import Foundation
import Testing

@Suite("tracepoint arguments end to end", .serialized)
struct TracepointArgumentTests {
  @Test("net_dev_xmit's number arguments: rc is 0 and skb_len is payload + 42", .needsTracing)
  func numberArguments() throws {
    let pair = try NetworkNamespacePair(subnet: 81)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("args")
    defer { scratch.remove() }
    let burst = UDPBurst(sizes: [100], count: 8, mark: 0xb801, port: 9801)
    let run = try TracedTraffic.run(
      spec: """
        skb:net_dev_queue /mark == 0xb801/ { @q[skb] = 1 }
        skb:net_dev_xmit /@q[skb] != 0/ { @xmit[rc, skb_len] = count(); delete(@q[skb]) }
        """, bursts: [burst], pair: pair, scratch: scratch)
    try #require(run.result.status == 0, "\(run)")
    let map = try #require(run.json.maps["@xmit"], "\(run)")
    #expect(map.entries.count == 1 && map.entry(["rc": "0", "skb_len": "142"])?.integer == 8, "\(map)")
  }

  @Test(
    "net_dev_xmit's dev argument can be followed: args.dev->name and ifname are the transmitting veth", .needsTracing,
    arguments: [false, true])
  func pointerArgument(nullCheck: Bool) throws {
    let pair = try NetworkNamespacePair(subnet: 82)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("args")
    defer { scratch.remove() }
    let burst = UDPBurst(sizes: [100], count: 8, mark: 0xb802, port: 9802)
    let spec = """
      skb:net_dev_queue /mark == 0xb802/ { @q[skb] = 1 }
      skb:net_dev_xmit /@q[skb] != 0\(nullCheck ? " && args.dev != 0" : "")/ { @dev[args.dev->name, ifname] = count(); delete(@q[skb]) }
      """
    let run = try TracedTraffic.run(spec: spec, bursts: [burst], pair: pair, scratch: scratch)
    #expect(run.result.status == 0, "reading a field through a tracepoint's pointer argument should work:\n\(run)")
    guard run.result.status == 0 else { return }
    let map = try #require(run.json.maps["@dev"], "\(run)")
    let ours = map.entry(["args.dev->name": pair.vethA, "ifname": pair.vethA])?.integer
    #expect(ours == 8, "the device net_dev_xmit recorded is \(pair.vethA) (skb->dev is already \(pair.vethB)): \(map)")
  }

  @Test("skb->sk can be followed: the sending socket's skc_num is the datagram's source port", .needsTracing, arguments: [false, true])
  func socketOfSkb(nullCheck: Bool) throws {
    let pair = try NetworkNamespacePair(subnet: 83)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("args")
    defer { scratch.remove() }
    let burst = UDPBurst(sizes: [100], count: 6, mark: 0xb803, port: 9803, extra: ["--src-port", "45678"])
    let spec = """
      skb:net_dev_queue /mark == 0xb803\(nullCheck ? " && skb->sk != 0" : "")/ {
        @ports[udp.sport, skb->sk->__sk_common.skc_num] = count()
      }
      """
    let run = try TracedTraffic.run(spec: spec, bursts: [burst], pair: pair, scratch: scratch)
    #expect(run.result.status == 0, "reading a field through skb->sk should work:\n\(run)")
    guard run.result.status == 0 else { return }
    let map = try #require(run.json.maps["@ports"], "\(run)")
    #expect(map.entry(["udp.sport": "45678", "skb->sk->__sk_common.skc_num": "45678"])?.integer == 6, "\(map)")
  }
}
