// Issue 24's legal specs with real traffic: what they print and count must be what the
// datagrams sent imply. Signed division and remainder are compared with Swift's Int64 `/`
// and `%`, which truncate toward zero as C does; counts with the number of datagrams sent.
// At net_dev_queue on the sending veth a datagram with payload p has skb->len == p + 42.

import Foundation
import Testing

@Suite("issue 24's legal specs on real traffic", .serialized)
struct LegalSpecValuesTests {
  /// Runs `spec` (-f json) around `burst` from A to B; nil when the run itself failed.
  func trace(_ spec: String, subnet: Int, burst: UDPBurst) throws -> (run: TracedRun, output: JSONTraceOutput)? {
    let pair = try NetworkNamespacePair(subnet: subnet)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("legal")
    defer { scratch.remove() }
    let run = try TracedTraffic.run(spec: spec, arguments: ["-f", "json"], bursts: [burst], pair: pair, scratch: scratch)
    #expect(!run.result.timedOut, "swtrace did not finish:\n\(run)")
    #expect(run.result.status == 0, "swtrace failed:\n\(run)")
    #expect(run.sendersSent([burst]), "a sender fell short:\n\(run)")
    guard run.result.status == 0 else { return nil }
    return (run, JSONTraceOutput(run.result.stdout))
  }

  @Test("signed / and % of real lengths are C's", .needsTracing)
  func signedDivision() throws {
    let burst = UDPBurst(sizes: [100, 201, 1000], count: 6, mark: 0x7a94, port: 9794)
    let spec = #"""
      skb:net_dev_queue /mark == 0x7a94/ {
        printf("%d %d %d %d %d %d\n", len, (s64)len / -3, (s64)len % -3, -(s64)len / 7, -(s64)len % 7, (s64)mark / (s64)-(s64)len)
      }
      """#
    guard case let (run, output)? = try trace(spec, subnet: 94, burst: burst) else { return }
    _ = output
    let texts = run.result.stdout.split(separator: "\n").compactMap { line in
      (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["text"] as? String
    }
    #expect(texts.count == burst.count, "\(run)")
    let expected = burst.payloads.map { payload -> String in
      let length = Int64(payload + 42)
      return "\(length) \(length / -3) \(length % -3) \(-length / 7) \(-length % 7) \(Int64(0x7a94) / -length)\n"
    }
    #expect(texts.sorted() == expected.sorted(), "\(run)")
  }

  @Test("string keys of different lengths count into one map, and deletes remove whole keys", .needsTracing)
  func stringKeysAndDeletes() throws {
    let burst = UDPBurst(sizes: [100, 300], count: 8, mark: 0x7a95, port: 9795)
    // comm is swtrace-pktgen's; "a-name-longer-than-comm" is 24 bytes with its NUL, so the
    // map's key is 24 bytes wide and comm's 15 are zero-padded.
    let spec = #"""
      skb:net_dev_queue /mark == 0x7a95/ {
        @keys[comm] = count()
        @keys["a-name-longer-than-comm"] = count()
        @gone["x"] = count()
        delete(@gone["x"])
        @h[comm] = hist(len)
        delete(@h["never-there"])
      }
      """#
    guard case let (run, output)? = try trace(spec, subnet: 95, burst: burst) else { return }
    let keys = try #require(output.maps["@keys"], "\(run)")
    #expect(keys.entries.count == 2, "\(keys)")
    #expect(keys.entry(["comm": "swtrace-pktgen"])?.integer == Int64(burst.count), "\(keys)")
    #expect(keys.entry(["comm": "a-name-longer-than-comm"])?.integer == Int64(burst.count), "\(keys)")
    // Every increment of @gone["x"] was deleted right after it.
    #expect(output.maps["@gone"]?.entries.isEmpty ?? true, "\(String(describing: output.maps["@gone"]))")
    let histogram = try #require(output.maps["@h"]?.entry(["comm": "swtrace-pktgen"]), "\(run)")
    #expect(histogram.sampleCount == Int64(burst.count), "\(histogram.buckets ?? [])")
  }

  @Test("a variable summed over sixteen independent branches histograms the real lengths", .needsTracing)
  func branchVariablesIntoHistogram() throws {
    let burst = UDPBurst(sizes: [100, 300, 1000], count: 9, mark: 0x7a96, port: 9796)
    // $a rebuilds len bit by bit: the kernel would keep 2^16 paths apart if it followed $a.
    let branches = (0..<16).map { "  if (len & \(1 << $0)) { $a = $a + \(1 << $0) }" }.joined(separator: "\n")
    let spec = "skb:net_dev_queue /mark == 0x7a96/ {\n  $a = 0\n\(branches)\n  @same = lhist($a - len, -1, 2, 1)\n  @h = hist($a)\n}"
    guard case let (run, output)? = try trace(spec, subnet: 96, burst: burst) else { return }
    // $a == len for every datagram: all in the [0, 1) bucket of $a - len.
    let same = try #require(output.maps["@same"]?.entries.first?.buckets, "\(run)")
    #expect(same.filter { $0.count > 0 } == [.init(min: 0, max: 1, count: Int64(burst.count))], "\(same)")
    // len 142 in [128, 256), 342 in [256, 512), 1042 in [1024, 2048): three each.
    let histogram = try #require(output.maps["@h"]?.entries.first?.buckets, "\(run)")
    let filled = histogram.filter { $0.count > 0 }.map { [$0.min ?? -1, $0.max ?? -1, $0.count] }
    #expect(filled == [[128, 256, 3], [256, 512, 3], [1024, 2048, 3]], "\(histogram)")
  }
}
