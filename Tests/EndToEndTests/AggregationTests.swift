// Maps and aggregations (issue 6), end to end: marked UDP datagrams of known sizes go from
// namespace A to B over a veth, and the maps swtrace prints at exit must hold exactly what
// those datagrams imply.
//
// Facts the expectations rest on (see WalkingSkeletonTests): at net_dev_queue on the
// sending veth a datagram with payload p has skb->len == p + 42 and still carries the
// sender's SO_MARK; veth scrubs the mark when the packet crosses into B. Every test uses its
// own mark and port so that concurrent runs elsewhere on the machine cannot add to a count.

import Foundation
import Testing

@Suite("aggregations end to end (issue 6)", .serialized)
struct AggregationTests {
  /// Ethernet + IPv4 + UDP in front of the payload at net_dev_queue on a veth.
  static let overhead = 42

  /// Runs `spec` (-f json) around `bursts` from A to B and checks the run itself went well.
  func traceJSON(
    _ spec: String, subnet: Int, bursts: [UDPBurst], format: String = "json", extraArguments: [String] = []
  ) throws -> (run: TracedRun, output: JSONTraceOutput)? {
    let pair = try NetworkNamespacePair(subnet: subnet)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("agg")
    defer { scratch.remove() }
    let run = try TracedTraffic.run(
      spec: spec, arguments: ["-f", format] + extraArguments, bursts: bursts, pair: pair, scratch: scratch)
    #expect(!run.result.timedOut, "swtrace did not finish:\n\(run)")
    #expect(run.result.status == 0, "swtrace failed:\n\(run)")
    #expect(run.sendersSent(bursts), "a sender fell short:\n\(run)")
    guard run.result.status == 0 else { return nil }
    let output = JSONTraceOutput(run.result.stdout)
    #expect(output.malformed.isEmpty, "stdout lines that are neither events nor maps:\n\(firstFew(output.malformed))")
    return (run, output)
  }

  @Test("@[probe] = count() over skb:* counts each marked datagram exactly once at net_dev_queue", .needsTracing)
  func countPerProbe() throws {
    let burst = UDPBurst(sizes: [100, 200, 300, 1000], count: 40, mark: 0x6a01, port: 9601)
    guard case let (run, output)? = try traceJSON("skb:* /mark == 0x6a01/ { @[probe] = count() }", subnet: 61, bursts: [burst])
    else { return }
    let map = try #require(output.maps["@"], "no JSON object for map @ on stdout:\n\(run)")
    #expect(map.aggregation == "count", "\(map)")
    let queued = map.entry(["probe": "net_dev_queue"])
    #expect(queued?.integer == 40, "@[net_dev_queue] must be exactly the 40 datagrams sent:\n\(map)\n\(run)")
    // The mark is only on the A side: every probe sees each datagram at most once.
    let tooMany = map.entries.filter { ($0.integer ?? 0) > 40 }
    #expect(tooMany.isEmpty, "no probe can see a marked datagram more than once: \(map)")
    #expect(map.entries.allSatisfy { $0.keys.keys.sorted() == ["probe"] }, "the key is named after its expression: \(map)")
  }

  @Test("text output prints counts like bpftrace: @[net_dev_queue]: N", .needsTracing)
  func countAsText() throws {
    let pair = try NetworkNamespacePair(subnet: 62)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("agg")
    defer { scratch.remove() }
    let burst = UDPBurst(sizes: [100, 200, 300, 1000], count: 20, mark: 0x6a02, port: 9602)
    let run = try TracedTraffic.run(
      spec: "skb:net_dev_queue /mark == 0x6a02/ { @[probe] = count(); @sizes = hist(len) }", arguments: [],
      bursts: [burst], pair: pair, scratch: scratch)
    try #require(run.result.status == 0, "\(run)")
    let lines = run.result.stdoutLines
    #expect(lines.contains("@[net_dev_queue]: 20"), "\(run)")
    // len 142 and 242 fall in [128, 256), 342 in [256, 512), 1042 in [1K, 2K).
    let histogram = lines.drop { $0 != "@sizes:" }.dropFirst().prefix { $0.hasPrefix("[") }
    let counts = histogram.map { line -> (String, Int?) in
      let label = String(line.prefix { $0 != ")" && $0 != "]" }) + (line.contains(")") ? ")" : "]")
      let afterLabel = line.drop { $0 != ")" && $0 != "]" }.dropFirst()
      let count = afterLabel.split(separator: " ").first.flatMap { Int($0) }
      return (label, count)
    }
    let expected: [(String, Int)] = [("[128, 256)", 10), ("[256, 512)", 5), ("[512, 1K)", 0), ("[1K, 2K)", 5)]
    #expect(
      counts.map(\.0) == expected.map(\.0) && counts.map(\.1) == expected.map(\.1),
      "histogram rows should be \(expected), got:\n\(histogram.joined(separator: "\n"))\n\(run)")
    #expect(histogram.allSatisfy { $0.contains("|") && $0.hasSuffix("|") }, "rows end in a |@@@| bar: \(histogram)")
  }

  @Test("@bytes = sum(len) on net_dev_queue is the sum of payload + 42", .needsTracing)
  func sumOfLengths() throws {
    let burst = UDPBurst(sizes: [100, 200, 300, 1000, 17, 1472], count: 60, mark: 0x6a03, port: 9603)
    guard case let (run, output)? = try traceJSON("skb:net_dev_queue /mark == 0x6a03/ { @bytes = sum(len) }", subnet: 63, bursts: [burst])
    else { return }
    let expected = burst.payloads.map { Int64($0 + Self.overhead) }.reduce(0, +)
    let map = try #require(output.maps["@bytes"], "\(run)")
    #expect(map.aggregation == "sum", "\(map)")
    #expect(map.entries.count == 1 && map.entries.first?.keys.isEmpty == true, "a map without keys has one entry: \(map)")
    #expect(map.entries.first?.integer == expected, "sum(len) should be \(expected):\n\(map)")
  }

  @Test("@sizes = hist(len) puts every length in its power-of-two bucket", .needsTracing)
  func histogramOfSizes() throws {
    let burst = UDPBurst(sizes: [100, 200, 300, 1000], count: 40, mark: 0x6a04, port: 9604)
    guard case let (run, output)? = try traceJSON("skb:net_dev_queue /mark == 0x6a04/ { @sizes = hist(len) }", subnet: 64, bursts: [burst])
    else { return }
    let map = try #require(output.maps["@sizes"], "\(run)")
    #expect(map.aggregation == "hist", "\(map)")
    let buckets = (map.entries.first?.buckets ?? []).filter { $0.count > 0 }
    // 142, 242 -> [128, 256); 342 -> [256, 512); 1042 -> [1024, 2048).
    let expected = [
      MapOutput.Bucket(min: 128, max: 256, count: 20), MapOutput.Bucket(min: 256, max: 512, count: 10),
      MapOutput.Bucket(min: 1024, max: 2048, count: 10),
    ]
    #expect(buckets == expected, "non-empty buckets should be \(expected), got \(buckets)\n\(map)")
  }

  @Test("lhist(len, min, max, step) fills linear buckets, with open-ended ones outside the range", .needsTracing)
  func linearHistogram() throws {
    let burst = UDPBurst(sizes: [100, 200, 300, 1000], count: 40, mark: 0x6a05, port: 9605)
    let spec = "skb:net_dev_queue /mark == 0x6a05/ { @wide = lhist(len, 0, 2000, 100); @narrow = lhist(len, 200, 1000, 100) }"
    guard case let (run, output)? = try traceJSON(spec, subnet: 65, bursts: [burst]) else { return }
    let wide = try #require(output.maps["@wide"], "\(run)")
    #expect(wide.aggregation == "lhist", "\(wide)")
    let wideBuckets = (wide.entries.first?.buckets ?? []).filter { $0.count > 0 }
    // 142 -> [100, 200); 242 -> [200, 300); 342 -> [300, 400); 1042 -> [1000, 1100).
    #expect(
      wideBuckets == [
        .init(min: 100, max: 200, count: 10), .init(min: 200, max: 300, count: 10),
        .init(min: 300, max: 400, count: 10), .init(min: 1000, max: 1100, count: 10),
      ], "\(wide)")
    let narrow = try #require(output.maps["@narrow"], "\(run)")
    let narrowBuckets = (narrow.entries.first?.buckets ?? []).filter { $0.count > 0 }
    // 142 is below 200: the open lower bucket; 1042 is at or above 1000: the open upper one.
    #expect(
      narrowBuckets == [
        .init(min: nil, max: 200, count: 10), .init(min: 200, max: 300, count: 10),
        .init(min: 300, max: 400, count: 10), .init(min: 1000, max: nil, count: 10),
      ], "values outside [200, 1000) belong in the open-ended buckets:\n\(narrow)")
  }

  @Test("stats, avg, min and max of len", .needsTracing)
  func statistics() throws {
    let burst = UDPBurst(sizes: [100, 200, 300, 1000], count: 40, mark: 0x6a06, port: 9606)
    let spec = """
      skb:net_dev_queue /mark == 0x6a06/ { @s = stats(len); @a = avg(len) }
      skb:net_dev_queue /mark == 0x6a06/ { @lo = min(len); @hi = max(len) }
      """
    guard case let (run, output)? = try traceJSON(spec, subnet: 66, bursts: [burst]) else { return }
    let lengths = burst.payloads.map { Int64($0 + Self.overhead) }
    let total = lengths.reduce(0, +)
    let stats = try #require(output.maps["@s"]?.entries.first, "\(run)")
    #expect(output.maps["@s"]?.aggregation == "stats", "\(run)")
    #expect(stats.count == 40, "stats count: \(output.maps["@s"]!)")
    #expect(stats.total == total, "stats total should be \(total): \(output.maps["@s"]!)")
    // 442 exactly: the lengths were chosen so that the mean is a whole number.
    #expect(stats.average == Double(total / 40), "stats average should be \(total / 40): \(output.maps["@s"]!)")
    // avg() prints either a plain value or, like stats(), count/average/total.
    let averageEntry = output.maps["@a"]?.entries.first
    let average = averageEntry?.average ?? averageEntry?.value.flatMap { value -> Double? in
      switch value {
      case .integer(let v): Double(v)
      case .number(let v): v
      default: nil
      }
    }
    #expect(average == Double(total) / 40, "avg(len) should be \(Double(total) / 40): \(String(describing: output.maps["@a"]))")
    #expect(output.maps["@lo"]?.entries.first?.integer == lengths.min(), "min(len): \(String(describing: output.maps["@lo"]))")
    #expect(output.maps["@hi"]?.entries.first?.integer == lengths.max(), "max(len): \(String(describing: output.maps["@hi"]))")
  }

  @Test("a map with two keys, @[ifname, udp.dport] = count(), has one entry per pair", .needsTracing)
  func multiKeyMap() throws {
    let bursts = [
      UDPBurst(sizes: [100], count: 12, mark: 0x6a07, port: 9607),
      UDPBurst(sizes: [200], count: 7, mark: 0x6a07, port: 9617),
    ]
    let pair = try NetworkNamespacePair(subnet: 67)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("agg")
    defer { scratch.remove() }
    let run = try TracedTraffic.run(
      spec: "skb:net_dev_queue /mark == 0x6a07/ { @[ifname, udp.dport] = count() }", bursts: bursts, pair: pair,
      scratch: scratch)
    try #require(run.result.status == 0, "\(run)")
    let map = try #require(run.json.maps["@"], "\(run)")
    #expect(map.entries.count == 2, "one entry per (interface, port): \(map)")
    #expect(map.entry(["ifname": pair.vethA, "udp.dport": "9607"])?.integer == 12, "\(map)")
    #expect(map.entry(["ifname": pair.vethA, "udp.dport": "9617"])?.integer == 7, "\(map)")
  }

  @Test("every aggregation keyed by port: a key's first event creates its entry with that event's value", .needsTracing)
  func keyedAggregations() throws {
    // A key's first event takes another path than the rest: the entry is created holding that
    // event alone (count 1, sum v, min and max v, one sample in v's bucket). On port 9610 the
    // first length is the smallest and on 9620 the largest, and neither comes again, so min
    // and max are only right if the first value was kept. The sender may change CPUs, which
    // exercises this CPU's zeroed slot in an entry another CPU created.
    let bursts = [
      UDPBurst(sizes: [100, 1000, 300, 1000, 300, 1000, 300], count: 7, mark: 0x6a0a, port: 9610),
      UDPBurst(sizes: [1000, 300, 100, 300, 100, 300, 100, 200], count: 8, mark: 0x6a0a, port: 9620),
    ]
    let spec = """
      skb:net_dev_queue /mark == 0x6a0a/ { @n[udp.dport] = count(); @s[udp.dport] = sum(len); @a[udp.dport] = avg(len) }
      skb:net_dev_queue /mark == 0x6a0a/ { @lo[udp.dport] = min(len); @hi[udp.dport] = max(len); @st[udp.dport] = stats(len) }
      skb:net_dev_queue /mark == 0x6a0a/ { @h[udp.dport] = hist(len); @l[udp.dport] = lhist(len, 0, 2000, 100) }
      """
    guard case let (run, output)? = try traceJSON(spec, subnet: 70, bursts: bursts) else { return }
    for burst in bursts {
      let port = ["udp.dport": "\(burst.port)"]
      let lengths = burst.payloads.map { Int64($0 + Self.overhead) }
      let total = lengths.reduce(0, +)
      let count = Int64(burst.count)
      #expect(output.maps["@n"]?.entry(port)?.integer == count, "count for \(port): \(String(describing: output.maps["@n"]))\n\(run)")
      #expect(output.maps["@s"]?.entry(port)?.integer == total, "sum for \(port): \(String(describing: output.maps["@s"]))")
      let average = output.maps["@a"]?.entry(port).flatMap { entry -> Double? in
        if let average = entry.average { return average }
        switch entry.value {
        case .integer(let v): return Double(v)
        case .number(let v): return v
        default: return nil
        }
      }
      #expect(average.map { abs($0 - Double(total) / Double(count)) < 1 } == true, "avg for \(port): \(String(describing: output.maps["@a"]))")
      #expect(output.maps["@lo"]?.entry(port)?.integer == lengths.min(), "min for \(port): \(String(describing: output.maps["@lo"]))")
      #expect(output.maps["@hi"]?.entry(port)?.integer == lengths.max(), "max for \(port): \(String(describing: output.maps["@hi"]))")
      let stats = output.maps["@st"]?.entry(port)
      #expect(stats?.count == count && stats?.total == total, "stats for \(port): \(String(describing: output.maps["@st"]))")
      // Expected buckets, from the printer's own numbering.
      var log2: [Int64: Int64] = [:]
      var linear: [Int64: Int64] = [:]
      for length in lengths {
        log2[Int64(1) << (63 - UInt64(length).leadingZeroBitCount), default: 0] += 1
        linear[length / 100 * 100, default: 0] += 1
      }
      let hist = (output.maps["@h"]?.entry(port)?.buckets ?? []).filter { $0.count > 0 }
      let expectedHist = log2.keys.sorted().map { MapOutput.Bucket(min: $0, max: 2 * $0, count: log2[$0]!) }
      #expect(hist == expectedHist, "hist for \(port): \(String(describing: output.maps["@h"]))")
      let lhist = (output.maps["@l"]?.entry(port)?.buckets ?? []).filter { $0.count > 0 }
      let expectedLhist = linear.keys.sorted().map { MapOutput.Bucket(min: $0, max: $0 + 100, count: linear[$0]!) }
      #expect(lhist == expectedLhist, "lhist for \(port): \(String(describing: output.maps["@l"]))")
    }
    for name in ["@n", "@s", "@a", "@lo", "@hi", "@st", "@h", "@l"] {
      #expect(output.maps[name]?.entries.count == 2, "one entry per port in \(name): \(String(describing: output.maps[name]))")
    }
  }

  @Test("a full keyed map keeps its first keys exact and reports every update it dropped", .needsTracing)
  func fullMapCountsDroppedUpdates() throws {
    // Four lengths, each twice, into a map of two entries: the first two lengths fill it.
    let burst = UDPBurst(sizes: [100, 200, 300, 400], count: 8, mark: 0x6a0b, port: 9611)
    guard
      case let (run, output)? = try traceJSON(
        "skb:net_dev_queue /mark == 0x6a0b/ { @c[len] = count() }", subnet: 84, bursts: [burst],
        extraArguments: ["--map-entries", "2"])
    else { return }
    let map = try #require(output.maps["@c"], "no JSON object for @c:\n\(run)")
    let expected = [100, 200].map { ["len": "\($0 + Self.overhead)"] }
    #expect(map.entries.count == 2, "\(map)\n\(run)")
    for key in expected {
      #expect(map.entry(key)?.integer == 2, "\(key) in \(map)\n\(run)")
    }
    #expect(run.result.stderr.contains("@c was full: 4 updates dropped (raise --map-entries)"), "\(run)")
  }

  @Test("latency between two tracepoints with a value map keyed by skb gives one sample per datagram", .needsTracing)
  func latencyWithValueMap() throws {
    let burst = UDPBurst(sizes: [100, 200], count: 30, mark: 0x6a08, port: 9608)
    let spec = """
      skb:net_dev_queue /mark == 0x6a08/ { @start[skb] = ts }
      skb:net_dev_xmit /@start[skb] != 0/ { @lat = hist(ts - @start[skb]); delete(@start[skb]) }
      """
    guard case let (run, output)? = try traceJSON(spec, subnet: 68, bursts: [burst]) else { return }
    let latency = try #require(output.maps["@lat"], "\(run)")
    #expect(latency.aggregation == "hist", "\(latency)")
    #expect(latency.entries.first?.sampleCount == 30, "one latency sample per datagram: \(latency)")
    // Queue to transmit on an idle veth takes nanoseconds to microseconds, never a second.
    let slow = (latency.entries.first?.buckets ?? []).filter { $0.count > 0 && ($0.min ?? 0) >= 1_000_000_000 }
    #expect(slow.isEmpty, "latencies of a second or more are not plausible: \(latency)")
    // Every start was deleted again: the value map is printed, and empty.
    let start = try #require(output.maps["@start"], "the value map is printed at exit too:\n\(run)")
    #expect(start.entries.isEmpty, "every @start[skb] was deleted at net_dev_xmit: \(start)")
  }

  @Test("hist bucket boundaries: lengths exactly at powers of two and one below", .needsTracing)
  func histogramBoundaries() throws {
    // len = payload + 42 lands exactly on 64, 127, 128, 255, 256, 511, 512, 1023, 1024, 1514.
    let lengths = [64, 127, 128, 255, 256, 511, 512, 1023, 1024, 1514]
    let burst = UDPBurst(sizes: lengths.map { $0 - Self.overhead }, count: lengths.count * 3, mark: 0x6a09, port: 9609)
    // And payloads 0...16 through hist(len - 42): the [0], [1], [2, 4), ... end of the scale.
    let small = UDPBurst(sizes: [0, 1, 2, 3, 4, 7, 8, 15, 16], count: 9, mark: 0x6a19, port: 9619)
    let spec = """
      skb:net_dev_queue /mark == 0x6a09/ { @len = hist(len) }
      skb:net_dev_queue /mark == 0x6a19/ { @payload = hist(len - 42) }
      """
    guard case let (run, output)? = try traceJSON(spec, subnet: 69, bursts: [burst, small]) else { return }
    let buckets = (output.maps["@len"]?.entries.first?.buckets ?? []).filter { $0.count > 0 }
    #expect(
      buckets == [
        .init(min: 64, max: 128, count: 6), .init(min: 128, max: 256, count: 6), .init(min: 256, max: 512, count: 6),
        .init(min: 512, max: 1024, count: 6), .init(min: 1024, max: 2048, count: 6),
      ], "a power of two opens its bucket, one below it closes the previous one:\n\(buckets)\n\(run)")
    let smallBuckets = (output.maps["@payload"]?.entries.first?.buckets ?? []).filter { $0.count > 0 }
    #expect(
      smallBuckets == [
        .init(min: 0, max: 1, count: 1), .init(min: 1, max: 2, count: 1), .init(min: 2, max: 4, count: 2),
        .init(min: 4, max: 8, count: 2), .init(min: 8, max: 16, count: 2), .init(min: 16, max: 32, count: 1),
      ], "0 and 1 have buckets of their own, then [2, 4), [4, 8), ...:\n\(smallBuckets)\n\(run)")
  }
}
