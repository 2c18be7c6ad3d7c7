// `swtrace --metrics ADDR:PORT` end to end: the spec's maps served in the Prometheus text
// format, read from the kernel on every scrape; a real Prometheus scraping them; and the
// deployment files in deploy/ checked by the tools that will read them.
//
// Traffic: marked UDP datagrams from namespace A to B over a veth pair the test creates
// (10.200.81.0/24 and 10.200.82.0/24). At net_dev_queue on the sending veth a datagram with
// payload p has skb->len == p + 42 and still carries its mark (see WalkingSkeletonTests),
// so with payloads 100, 200, 300, 1000 the lengths are 142, 242, 342, 1042.
//
// Histogram buckets: swtrace's hist() bucket [2^k, 2^(k+1)) holds integers up to
// 2^(k+1) - 1 and is exported as le="2^(k+1) - 1" (HistogramBounds in PrometheusExport),
// so 142 and 242 count from le="255" on, 342 from le="511", 1042 from le="2047".

import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
  import Glibc
#endif

@Suite("Prometheus metrics end to end (--metrics)", .serialized)
struct MetricsTests {
  static let sizes = [100, 200, 300, 1000]

  // MARK: - (a) /metrics itself

  @Test("counters and histogram buckets served at /metrics are exact, and read anew on every scrape", .needsTracing)
  func servedMetricsAreExact() throws {
    let pair = try NetworkNamespacePair(subnet: 81)
    defer { pair.remove() }
    let port = try MetricsHTTP.freePort()
    // The print() clause checks that --metrics alone does not print events.
    let spec =
      "skb:net_dev_queue /mark == 0x8a01/ { @pkts[ifname] = count(); @sizes = hist(len) } "
      + "skb:net_dev_queue /mark == 0x8a01/ < print(len) >"
    let swtrace = try MetricsRun(
      ["-f", "json", "-d", "150", "--metrics", "127.0.0.1:\(port)", "-e", spec], port: port, host: nil)
    defer { swtrace.stop() }
    let host = ProcessInfo.processInfo.hostName

    // Before any traffic: the keyless histogram is there with zeros, the keyed counter not yet.
    let empty = try swtrace.waitUntilServing()
    #expect(empty.value("swtrace_sizes_count", ["host": host]) == 0, "\(empty.text)")
    #expect(empty.samples(named: "swtrace_pkts_total").isEmpty, "no key was counted yet:\n\(empty.text)")
    #expect(empty.value("swtrace_events_lost_total", ["host": host]) == 0, "\(empty.text)")
    #expect(empty.value("swtrace_map_full_total", ["map": "@pkts", "host": host]) == 0, "\(empty.text)")
    #expect(empty.value("swtrace_map_full_total", ["map": "@sizes", "host": host]) == 0, "\(empty.text)")
    #expect(empty.types["swtrace_pkts_total"] == nil || empty.types["swtrace_pkts_total"] == "counter")
    #expect(empty.types["swtrace_sizes"] == "histogram", "\(empty.text)")

    // 40 datagrams: 10 of each length.
    try send(pair: pair, count: 40, sizes: Self.sizes, mark: "0x8a01", port: 9801)
    let pkts = ["ifname": pair.vethA, "host": host]
    let first = try swtrace.scrape(until: { $0.value("swtrace_pkts_total", pkts) ?? 0 >= 40 })
    #expect(first.types["swtrace_pkts_total"] == "counter", "\(first.text)")
    #expect(first.value("swtrace_pkts_total", pkts) == 40, "@pkts[\(pair.vethA)] must be the 40 datagrams sent:\n\(first.text)")
    #expect(first.samples(named: "swtrace_pkts_total").count == 1, "only the sending veth saw marked packets:\n\(first.text)")
    let expected: [String: Double] = ["127": 0, "255": 20, "511": 30, "1023": 30, "2047": 40, "4095": 40, "+Inf": 40]
    for (le, count) in expected {
      #expect(
        first.value("swtrace_sizes_bucket", ["host": host, "le": le]) == count,
        "bucket le=\(le) should be \(count):\n\(first.text)")
    }
    #expect(first.value("swtrace_sizes_count", ["host": host]) == 40, "\(first.text)")
    // Every bound of a u32 histogram from the first scrape on: 0, 1, 3, ..., 2^32 - 1, +Inf.
    let bounds = first.samples(named: "swtrace_sizes_bucket").compactMap { $0.labels["le"] }
    let expectedBounds = ["0"] + (1...32).map { String((UInt64(1) << $0) - 1) } + ["+Inf"]
    #expect(bounds.sorted() == expectedBounds.sorted(), "bucket bounds: \(bounds)")
    let cumulative = first.samples(named: "swtrace_sizes_bucket")
      .sorted { (Double($0.labels["le"] ?? "") ?? .infinity) < (Double($1.labels["le"] ?? "") ?? .infinity) }
      .map(\.value)
    #expect(cumulative == cumulative.sorted(), "buckets are cumulative: \(cumulative)")
    if let promtool = findExecutable("promtool") {
      let lint = try MetricsHTTP.promtoolCheck(promtool, first.text)
      #expect(lint.succeeded, "promtool check metrics:\n\(lint)")
    }

    // Eight more, of payload 1472: len 1514, in le="2047". The next scrape reads the kernel again.
    try send(pair: pair, count: 8, sizes: [1472], mark: "0x8a01", port: 9801)
    let second = try swtrace.scrape(until: { $0.value("swtrace_pkts_total", pkts) ?? 0 >= 48 })
    #expect(second.value("swtrace_pkts_total", pkts) == 48, "\(second.text)")
    #expect(second.value("swtrace_sizes_bucket", ["host": host, "le": "1023"]) == 30, "\(second.text)")
    #expect(second.value("swtrace_sizes_bucket", ["host": host, "le": "2047"]) == 48, "\(second.text)")
    #expect(second.value("swtrace_sizes_count", ["host": host]) == 48, "\(second.text)")

    // Anything but /metrics is not found; the root page points at it.
    #expect(try MetricsHTTP.get(port: port, path: "/nothing").status == 404)
    #expect(try MetricsHTTP.get(port: port, path: "/").body.contains("/metrics"))

    let result = swtrace.stop()
    #expect(result.status == 0, "SIGTERM ends swtrace --metrics with status 0:\n\(result)")
    #expect(
      result.stderrLines.contains("swtrace: serving metrics on http://127.0.0.1:\(port)/metrics"),
      "the one line saying where:\n\(result)")
    let output = JSONTraceOutput(result.stdout)
    #expect(output.events.isEmpty, "--metrics without --print-events prints no events:\n\(firstFew(output.events))")
    #expect(output.maps["@pkts"]?.entry(["ifname": pair.vethA])?.integer == 48, "maps still print at exit:\n\(result)")
    #expect(summary(of: result)?.samples == 48, "events are counted even when not printed:\n\(result)")
    #expect(throws: (any Error).self, "the server is gone once swtrace exits") {
      try MetricsHTTP.get(port: port, path: "/metrics", timeout: 2)
    }
  }

  @Test("every kind of map: stats, avg, min, max, lhist, signed sums and hists, values, addresses, renamed names", .needsTracing)
  func everyAggregation() throws {
    let pair = try NetworkNamespacePair(subnet: 83)
    defer { pair.remove() }
    let port = try MetricsHTTP.freePort()
    let spec = """
      skb:net_dev_queue /mark == 0x8a04/ {
        @st = stats(len); @av = avg(len); @lo = min(len); @hi = max(len)
        @lin = lhist(len, 100, 400, 100); @neg = sum(-1); @sg = hist(-1)
        @last[udp.dport] = len; @who = comm; @dst[daddr] = count(); @events_lost = count()
      }
      """
    let host = "swtrace-metrics-kinds"
    let swtrace = try MetricsRun(["-d", "150", "--metrics", "127.0.0.1:\(port)", "-e", spec], port: port, host: host)
    defer { swtrace.stop() }
    _ = try swtrace.waitUntilServing()
    // 12 datagrams: lengths 142, 342, 1042, four of each, the last one 1042.
    try send(pair: pair, count: 12, sizes: [100, 300, 1000], mark: "0x8a04", port: 9804)
    let h = ["host": host]
    let m = try swtrace.scrape(until: { $0.value("swtrace_st_count", h) == 12 })
    let expected: [(String, [String: String], Double)] = [
      ("swtrace_st_count", h, 12), ("swtrace_st_sum", h, 6104), ("swtrace_st_avg", h, 6104.0 / 12),
      ("swtrace_av", h, 6104.0 / 12), ("swtrace_lo", h, 142), ("swtrace_hi", h, 1042),
      ("swtrace_lin_bucket", ["host": host, "le": "99"], 0), ("swtrace_lin_bucket", ["host": host, "le": "199"], 4),
      ("swtrace_lin_bucket", ["host": host, "le": "299"], 4), ("swtrace_lin_bucket", ["host": host, "le": "399"], 8),
      ("swtrace_lin_bucket", ["host": host, "le": "+Inf"], 12), ("swtrace_lin_count", h, 12),
      ("swtrace_neg", h, -12),
      ("swtrace_sg_bucket", ["host": host, "le": "-1"], 12), ("swtrace_sg_bucket", ["host": host, "le": "0"], 12),
      ("swtrace_last", ["udp_dport": "9804", "host": host], 1042),
      ("swtrace_who", ["value": "swtrace-pktgen", "host": host], 1),
      ("swtrace_dst_total", ["daddr": pair.addressB, "host": host], 12),
      ("swtrace_events_lost_2_total", h, 12), ("swtrace_events_lost_total", h, 0),
    ]
    for (name, labels, value) in expected {
      #expect(m.value(name, labels) == value, "\(name)\(labels) should be \(value):\n\(m.text)")
    }
    let types = [
      "swtrace_st_count": "counter", "swtrace_st_sum": "counter", "swtrace_st_avg": "gauge", "swtrace_av": "gauge",
      "swtrace_lo": "gauge", "swtrace_hi": "gauge", "swtrace_lin": "histogram", "swtrace_neg": "gauge",
      "swtrace_sg": "histogram", "swtrace_last": "gauge", "swtrace_who": "gauge", "swtrace_dst_total": "counter",
      "swtrace_events_lost_2_total": "counter",
    ]
    for (name, type) in types {
      #expect(m.types[name] == type, "# TYPE \(name) should be \(type):\n\(m.text)")
    }
    // lhist bounds: below min, then one per step up to max - 1; a u32 never needs le="-1".
    #expect(m.samples(named: "swtrace_lin_bucket").compactMap { $0.labels["le"] }.sorted() == ["+Inf", "199", "299", "399", "99"])
    if let promtool = findExecutable("promtool") {
      // stats()' _count and _sum counters draw naming lints (status 3); a parse error is 1.
      let lint = try MetricsHTTP.promtoolCheck(promtool, m.text)
      #expect(lint.status == 0 || lint.status == 3, "promtool check metrics cannot parse the scrape:\n\(lint)")
      #expect(!lint.stderr.contains("error while linting"), "\(lint)")
    }
    let result = swtrace.stop()
    #expect(result.status == 0, "\(result)")
    #expect(
      result.stderr.contains("@events_lost is exported as swtrace_events_lost_2_total"),
      "a renamed map is announced:\n\(result)")
  }

  @Test("--metrics on a port that is taken: status 2 and one sentence saying so", .needsTracing)
  func takenPortIsRefused() throws {
    let (listener, port) = try MetricsHTTP.listeningSocket()
    defer { close(listener) }
    let swtrace = try TestEnvironment.binary("swtrace")
    let result = try ProcessRunner.run(
      swtrace, ["--metrics", "127.0.0.1:\(port)", "-d", "20", "-e", "skb:net_dev_queue /mark == 0x8a03/ { @n = count() }"],
      timeout: 60)
    #expect(result.status == 2, "\(result)")
    #expect(result.stderr.contains("cannot listen on 127.0.0.1:\(port)"), "\(result)")
    let usage = try ProcessRunner.run(swtrace, ["--metrics", "nowhere", "-e", "skb:net_dev_queue { @n = count() }"], timeout: 30)
    #expect(usage.status == 64 && usage.stderr.contains("ADDR:PORT"), "a malformed --metrics is a usage error:\n\(usage)")
  }

  // MARK: - (b) a real Prometheus

  @Test("Prometheus scrapes swtrace: the counter and histogram buckets through its query API", .needsTracing)
  func prometheusScrapes() throws {
    guard let prometheus = Tools.ensure("prometheus", package: "prometheus") else {
      try skip("prometheus is not installed and could not be installed (apt-get install -y prometheus)")
    }
    let pair = try NetworkNamespacePair(subnet: 82)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("prometheus")
    defer { scratch.remove() }
    let port = try MetricsHTTP.freePort()
    let node = "swtrace-metrics-test-node"
    let spec = "skb:net_dev_queue /mark == 0x8a02/ { @pkts[ifname] = count(); @sizes = hist(len); print(len) }"
    let swtrace = try MetricsRun(
      ["-f", "json", "-d", "150", "--print-events", "--metrics", "127.0.0.1:\(port)", "-e", spec], port: port,
      host: node)
    defer { swtrace.stop() }
    _ = try swtrace.waitUntilServing()
    // 25 datagrams: 13 of length 142, 12 of length 1042.
    try send(pair: pair, count: 25, sizes: [100, 1000], mark: "0x8a02", port: 9802)
    _ = try swtrace.scrape(until: { $0.value("swtrace_pkts_total", ["ifname": pair.vethA, "host": node]) ?? 0 >= 25 })

    let webPort = try MetricsHTTP.freePort()
    try """
    global:
      scrape_interval: 1s
      scrape_timeout: 1s
    scrape_configs:
      - job_name: swtrace
        static_configs:
          - targets: ['127.0.0.1:\(port)']
    """.write(toFile: scratch.path("prometheus.yml"), atomically: true, encoding: .utf8)
    let server = try RunningProcess(
      prometheus,
      [
        "--config.file=\(scratch.path("prometheus.yml"))", "--storage.tsdb.path=\(scratch.path("data"))",
        "--web.listen-address=127.0.0.1:\(webPort)", "--log.level=warn",
      ])
    defer { server.stop() }
    let api = PrometheusAPI(port: webPort)

    // Scraped at least once, and the counter arrived.
    let deadline = Date().addingTimeInterval(90)
    var counter: [PrometheusAPI.Sample] = []
    while Date() < deadline {
      counter = (try? api.query("swtrace_pkts_total")) ?? []
      if counter.contains(where: { $0.value == 25 }) { break }
      Thread.sleep(forTimeInterval: 0.5)
    }
    let up = try api.query("up{job=\"swtrace\"}")
    #expect(up.first?.value == 1, "Prometheus reached swtrace: \(up)")
    try #require(counter.count == 1, "swtrace_pkts_total through Prometheus: \(counter)")
    let sample = counter[0]
    #expect(sample.value == 25, "\(sample)")
    #expect(sample.labels["host"] == node, "the host label is $SWTRACE_HOST: \(sample)")
    #expect(sample.labels["ifname"] == pair.vethA, "\(sample)")
    #expect(sample.labels["job"] == "swtrace", "\(sample)")

    let buckets = try api.query("swtrace_sizes_bucket")
    func bucket(_ le: Double) -> Double? {
      // Prometheus 3 writes le as "255.0", 2.x as "255": compare as numbers.
      buckets.first { Double($0.labels["le"] ?? "") == le }?.value
    }
    #expect(bucket(127) == 0, "\(buckets)")
    #expect(bucket(255) == 13, "\(buckets)")
    #expect(bucket(1023) == 13, "\(buckets)")
    #expect(bucket(2047) == 25, "\(buckets)")
    #expect(bucket(.infinity) == 25, "\(buckets)")
    #expect(try api.query("swtrace_sizes_count").first?.value == 25)
    // Half of the 25 lengths are in (127, 255]: the median is estimated inside that bucket.
    let median = try api.query("histogram_quantile(0.5, swtrace_sizes_bucket)").first?.value ?? -1
    #expect(median > 127 && median <= 255, "histogram_quantile(0.5, ...) = \(median)")
    #expect(try api.query("swtrace_events_lost_total").first?.value == 0)

    let stopped = server.stop()
    #expect(stopped.status == 0 || stopped.status == 128 + SIGTERM, "Prometheus stopped: \(stopped)")
    let result = swtrace.stop()
    #expect(result.status == 0, "\(result)")
    let events = JSONTraceOutput(result.stdout).events
    #expect(events.count == 25, "--print-events prints the events as well: \(events.count)\n\(result)")
  }

  // MARK: - (c) deploy/

  @Test("deploy/daemonset.yaml and configmap.yaml pass kubernetes-validate; the spec in both is the same and compiles")
  func kubernetesManifestsValidate() throws {
    let deploy = packageRoot.appendingPathComponent("deploy")
    let spec = try String(contentsOf: deploy.appendingPathComponent("spec.spec"), encoding: .utf8)
    let configMap = try String(contentsOf: deploy.appendingPathComponent("configmap.yaml"), encoding: .utf8)
    // The block scalar `spec.spec: |` holds deploy/spec.spec indented by four spaces.
    let lines = configMap.split(separator: "\n", omittingEmptySubsequences: false)
    let embedded = lines.drop { !$0.hasPrefix("  spec.spec: |") }.dropFirst()
      .prefix { $0.isEmpty || $0.hasPrefix("    ") }
      .map { $0.dropFirst(min(4, $0.count)) }.joined(separator: "\n")
    #expect(
      embedded.trimmingCharacters(in: .newlines) == spec.trimmingCharacters(in: .newlines),
      "configmap.yaml must carry deploy/spec.spec as it is")
    if let swtrace = try? TestEnvironment.binary("swtrace") {
      let check = try ProcessRunner.run(swtrace, ["check", deploy.appendingPathComponent("spec.spec").path], timeout: 60)
      #expect(check.succeeded, "the fleet spec compiles against this kernel:\n\(check)")
    }
    let daemonSet = try String(contentsOf: deploy.appendingPathComponent("daemonset.yaml"), encoding: .utf8)
    #expect(daemonSet.contains("\"--metrics\", \"0.0.0.0:9464\""), "the DaemonSet runs swtrace --metrics")

    guard let validator = Tools.kubernetesValidate() else {
      try skip("kubernetes-validate is not installed and `pip install kubernetes-validate` failed")
    }
    let result = try ProcessRunner.run(
      validator.executable,
      validator.arguments + [
        "--strict", deploy.appendingPathComponent("configmap.yaml").path,
        deploy.appendingPathComponent("daemonset.yaml").path,
      ], timeout: 120)
    #expect(result.succeeded, "kubernetes-validate --strict:\n\(result)")
    #expect(result.stdout.components(separatedBy: "passed").count - 1 == 2, "both manifests pass:\n\(result)")
  }

  @Test("deploy/swtrace.service passes systemd-analyze verify")
  func systemdUnitVerifies() throws {
    guard let analyze = Tools.ensure("systemd-analyze", package: "systemd") else {
      try skip("systemd-analyze is not installed and could not be installed (apt-get install -y systemd)")
    }
    let swtrace = try TestEnvironment.binary("swtrace")
    let scratch = try ScratchDirectory("unit")
    defer { scratch.remove() }
    // verify checks that ExecStart's program exists and that Documentation=man:swtrace(1)
    // resolves: point the unit at the swtrace under test, and man at docs/swtrace.1.
    let unit = try String(contentsOf: packageRoot.appendingPathComponent("deploy/swtrace.service"), encoding: .utf8)
    #expect(unit.contains("ExecStart=/usr/local/bin/swtrace --metrics 0.0.0.0:9464 /etc/swtrace/spec.spec"))
    try unit.replacingOccurrences(of: "/usr/local/bin/swtrace", with: swtrace)
      .write(toFile: scratch.path("swtrace.service"), atomically: true, encoding: .utf8)
    let man = scratch.url.appendingPathComponent("man/man1")
    try FileManager.default.createDirectory(at: man, withIntermediateDirectories: true)
    try FileManager.default.copyItem(
      at: packageRoot.appendingPathComponent("docs/swtrace.1"), to: man.appendingPathComponent("swtrace.1"))
    var environment = ProcessInfo.processInfo.environment
    environment["MANPATH"] = scratch.path("man") + ":"
    let result = try ProcessRunner.run(
      analyze, ["verify", scratch.path("swtrace.service")], timeout: 60, environment: environment)
    #expect(result.succeeded, "systemd-analyze verify:\n\(result)")
    #expect(!result.stderr.contains("swtrace.service"), "no complaint about the unit:\n\(result)")
  }

  // MARK: - Helpers

  /// Sends `count` marked datagrams from A to B and checks the sender sent them all.
  func send(pair: NetworkNamespacePair, count: Int, sizes: [Int], mark: String, port: Int) throws {
    try pair.sendUDP(count: count, sizes: sizes, mark: mark, port: port)
  }
}

/// A `swtrace --metrics` running in the background, and scrapes of it.
final class MetricsRun: @unchecked Sendable {
  let process: RunningProcess
  let port: Int

  /// `host`: the value of $SWTRACE_HOST, or nil to leave it unset (the machine's name).
  init(_ arguments: [String], port: Int, host: String?) throws {
    var environment = ProcessInfo.processInfo.environment
    environment["SWTRACE_HOST"] = host
    process = try RunningProcess(try TestEnvironment.binary("swtrace"), arguments, environment: environment)
    self.port = port
  }

  /// A run started some other way (under prlimit, or by a shell that sets a limit first).
  init(started process: RunningProcess, port: Int) {
    self.process = process
    self.port = port
  }

  /// Waits (at most 60 s: compiling and attaching included) until /metrics answers.
  func waitUntilServing() throws -> Exposition {
    let deadline = Date().addingTimeInterval(60)
    var lastError: (any Error)?
    while Date() < deadline {
      do {
        let response = try MetricsHTTP.get(port: port, path: "/metrics", timeout: 5)
        if response.status == 200 { return try Exposition(response.body) }
      } catch {
        lastError = error
      }
      Thread.sleep(forTimeInterval: 0.1)
    }
    throw ProcessRunnerError(
      description: "swtrace did not serve /metrics within 60 s (\(lastError.map { "\($0)" } ?? "no answer")):\n\(process.stop())")
  }

  /// Scrapes until `done` holds (at most 10 s), then returns that scrape (or the last one).
  func scrape(until done: (Exposition) -> Bool) throws -> Exposition {
    let deadline = Date().addingTimeInterval(10)
    var last: Exposition
    repeat {
      let response = try MetricsHTTP.get(port: port, path: "/metrics")
      try #require(response.status == 200, "GET /metrics: \(response.status)\n\(response.body)")
      last = try Exposition(response.body)
      if done(last) { return last }
      Thread.sleep(forTimeInterval: 0.1)
    } while Date() < deadline
    return last
  }

  @discardableResult
  func stop() -> ProcessResult { process.stop() }
}

/// A parsed text exposition: samples with their labels, and `# TYPE` lines.
struct Exposition {
  struct Sample: CustomStringConvertible {
    var name: String
    var labels: [String: String]
    var value: Double
    var description: String { "\(name)\(labels) \(value)" }
  }

  let text: String
  var samples: [Sample] = []
  var types: [String: String] = [:]

  init(_ text: String) throws {
    self.text = text
    for line in text.split(separator: "\n") {
      if line.hasPrefix("# TYPE ") {
        let words = line.split(separator: " ")
        if words.count == 4 { types[String(words[2])] = String(words[3]) }
        continue
      }
      if line.hasPrefix("#") { continue }
      guard let sample = Self.parse(Substring(line)) else {
        throw ProcessRunnerError(description: "not an exposition line: \(line)\nin:\n\(text)")
      }
      samples.append(sample)
    }
  }

  /// `name{a="x",b="y\"z"} 1.5`, with the format's escapes in label values.
  static func parse(_ line: Substring) -> Sample? {
    var rest = line[...]
    let name = String(rest.prefix { $0 != "{" && $0 != " " })
    rest = rest.dropFirst(name.count)
    var labels: [String: String] = [:]
    if rest.first == "{" {
      rest = rest.dropFirst()
      while rest.first != "}" {
        let key = String(rest.prefix { $0 != "=" })
        rest = rest.dropFirst(key.count)
        guard rest.hasPrefix("=\"") else { return nil }
        rest = rest.dropFirst(2)
        var value = ""
        while let character = rest.first, character != "\"" {
          rest = rest.dropFirst()
          if character == "\\" {
            guard let escaped = rest.first else { return nil }
            rest = rest.dropFirst()
            value.append(escaped == "n" ? "\n" : escaped)
          } else {
            value.append(character)
          }
        }
        guard rest.first == "\"" else { return nil }
        rest = rest.dropFirst()
        labels[key] = value
        if rest.first == "," { rest = rest.dropFirst() }
        guard !rest.isEmpty else { return nil }
      }
      rest = rest.dropFirst()
    }
    guard rest.first == " " else { return nil }
    let valueText = rest.dropFirst().split(separator: " ").first.map(String.init) ?? ""
    let value: Double? =
      switch valueText {
      case "+Inf": .infinity
      case "-Inf": -.infinity
      default: Double(valueText)
      }
    guard let value else { return nil }
    return Sample(name: name, labels: labels, value: value)
  }

  func samples(named name: String) -> [Sample] { samples.filter { $0.name == name } }

  /// The value of the one sample `name` whose labels are exactly `labels`.
  func value(_ name: String, _ labels: [String: String]) -> Double? {
    samples.first { $0.name == name && $0.labels == labels }?.value
  }
}

/// Prometheus's HTTP query API.
struct PrometheusAPI {
  struct Sample: CustomStringConvertible {
    var labels: [String: String]
    var value: Double
    var description: String { "\(labels) \(value)" }
  }

  let port: Int

  /// An instant query; the vector's samples.
  func query(_ promQL: String) throws -> [Sample] {
    let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
    let encoded = promQL.addingPercentEncoding(withAllowedCharacters: allowed) ?? promQL
    let response = try MetricsHTTP.get(port: port, path: "/api/v1/query?query=\(encoded)")
    guard response.status == 200,
      let json = try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any],
      json["status"] as? String == "success",
      let data = json["data"] as? [String: Any],
      let result = data["result"] as? [[String: Any]]
    else {
      throw ProcessRunnerError(description: "query \(promQL): status \(response.status)\n\(response.body)")
    }
    return result.compactMap { item in
      guard let labels = item["metric"] as? [String: String], let value = item["value"] as? [Any], value.count == 2,
        let text = value[1] as? String
      else { return nil }
      let number: Double? =
        switch text {
        case "+Inf": .infinity
        case "-Inf": -.infinity
        default: Double(text)
        }
      return number.map { Sample(labels: labels, value: $0) }
    }
  }
}

/// A minimal HTTP/1.1 client over a TCP socket to 127.0.0.1 (no proxy, no library).
enum MetricsHTTP {
  struct Response {
    var status: Int
    var body: String
  }

  /// A port nobody listens on right now: bound to 127.0.0.1:0 and released.
  static func freePort() throws -> Int {
    let (fd, port) = try listeningSocket()
    close(fd)
    return port
  }

  /// A socket listening on 127.0.0.1 at a port the kernel chose.
  static func listeningSocket() throws -> (Int32, Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ProcessRunnerError(description: "socket: errno \(errno)") }
    var address = loopback(port: 0)
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard bound == 0, named == 0, listen(fd, 1) == 0 else {
      close(fd)
      throw ProcessRunnerError(description: "cannot bind a port on 127.0.0.1: errno \(errno)")
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
  }

  static func loopback(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = in_addr_t(UInt32(0x7f00_0001).bigEndian)
    return address
  }

  /// GET http://127.0.0.1:port/path; throws when nothing answers within `timeout` seconds.
  static func get(port: Int, path: String, timeout: Double = 10) throws -> Response {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ProcessRunnerError(description: "socket: errno \(errno)") }
    defer { close(fd) }
    var limit = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    var address = loopback(port: port)
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
      throw ProcessRunnerError(description: "connect to 127.0.0.1:\(port): errno \(errno)")
    }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n".utf8)
    var sent = 0
    while sent < request.count {
      let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
      guard n > 0 else { throw ProcessRunnerError(description: "send to 127.0.0.1:\(port): errno \(errno)") }
      sent += n
    }
    var data: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline, data.count < 64 << 20 {
      let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
      if n == 0 { break }
      if n < 0 {
        if errno == EINTR { continue }
        throw ProcessRunnerError(description: "recv from 127.0.0.1:\(port): errno \(errno)")
      }
      data += buffer[..<n]
    }
    return try parse(data, from: port)
  }

  static func parse(_ data: [UInt8], from port: Int) throws -> Response {
    let separator: [UInt8] = Array("\r\n\r\n".utf8)
    guard let end = (0..<max(0, data.count - 3)).first(where: { Array(data[$0..<$0 + 4]) == separator }) else {
      throw ProcessRunnerError(description: "no HTTP response from 127.0.0.1:\(port) (\(data.count) bytes)")
    }
    let head = String(decoding: data[..<end], as: UTF8.self).split(separator: "\r\n")
    let words = head.first?.split(separator: " ") ?? []
    guard words.count >= 2, let status = Int(words[1]) else {
      throw ProcessRunnerError(description: "bad status line from 127.0.0.1:\(port): \(head.first ?? "")")
    }
    var body = Array(data[(end + 4)...])
    let headers = head.dropFirst().map { $0.lowercased() }
    if headers.contains(where: { $0.hasPrefix("transfer-encoding:") && $0.contains("chunked") }) {
      body = try dechunk(body)
    } else if let length = headers.first(where: { $0.hasPrefix("content-length:") })
      .flatMap({ Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) }),
      length <= body.count
    {
      body = Array(body[..<length])
    }
    return Response(status: status, body: String(decoding: body, as: UTF8.self))
  }

  static func dechunk(_ bytes: [UInt8]) throws -> [UInt8] {
    var out: [UInt8] = []
    var position = 0
    while position < bytes.count {
      guard let lineEnd = (position..<bytes.count - 1).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 }),
        let size = Int(String(decoding: bytes[position..<lineEnd], as: UTF8.self).split(separator: ";")[0], radix: 16)
      else { throw ProcessRunnerError(description: "bad chunked body") }
      if size == 0 { break }
      let start = lineEnd + 2
      guard start + size <= bytes.count else { throw ProcessRunnerError(description: "short chunk") }
      out += bytes[start..<start + size]
      position = start + size + 2
    }
    return out
  }

  /// `promtool check metrics` on `text`.
  static func promtoolCheck(_ promtool: String, _ text: String) throws -> ProcessResult {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("swtrace-metrics-\(getpid())-\(UUID().uuidString).prom")
    try text.write(to: file, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(at: file) }
    return try ProcessRunner.shell("\(shellQuote(promtool)) check metrics < \(shellQuote(file.path))", timeout: 30)
  }
}

/// External tools the deploy tests need, installed on first use where that is possible.
enum Tools {
  /// `name` from PATH, else after `scripts/deps.sh PACKAGE` (root only); nil when neither works.
  static func ensure(_ name: String, package: String) -> String? {
    if let path = findExecutable(name) { return path }
    guard TestEnvironment.isRoot else {
      print("note: \(name) is missing and installing \(package) needs root")
      return nil
    }
    let deps = packageRoot.appendingPathComponent("scripts/deps.sh").path
    print("note: \(name) is missing; installing \(package) with scripts/deps.sh")
    guard let result = try? ProcessRunner.run("/bin/bash", [deps, package], timeout: 600) else { return nil }
    if !result.succeeded { print("note: installing \(package) failed:\n\(result)") }
    return findExecutable(name)
  }

  /// How to run kubernetes-validate: its script on PATH, `python3 -m kubernetes_validate`, or
  /// the one in swtrace's cached virtualenv. When none is there, `pip install` it into that
  /// virtualenv (~/.cache/swtrace/kubernetes-validate; Debian 12's own Python refuses
  /// installs outside one), then with plain pip as a last resort.
  static func kubernetesValidate() -> (executable: String, arguments: [String])? {
    let cache = ProcessInfo.processInfo.environment["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
      ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
    let venv = cache.appendingPathComponent("swtrace/kubernetes-validate")
    let venvScript = venv.appendingPathComponent("bin/kubernetes-validate").path
    func find() -> (String, [String])? {
      if let script = findExecutable("kubernetes-validate") { return (script, []) }
      if FileManager.default.isExecutableFile(atPath: venvScript) { return (venvScript, []) }
      if let python = findExecutable("python3"),
        let probe = try? ProcessRunner.run(python, ["-m", "kubernetes_validate", "--version"], timeout: 60), probe.succeeded
      {
        return (python, ["-m", "kubernetes_validate"])
      }
      return nil
    }
    if let found = find() { return found }
    guard let python = findExecutable("python3") else {
      print("note: no python3 to install kubernetes-validate with")
      return nil
    }
    print("note: kubernetes-validate is missing; installing it with pip into \(venv.path)")
    let pipOptions = ["install", "--quiet", "--disable-pip-version-check", "kubernetes-validate"]
    if let made = try? ProcessRunner.run(python, ["-m", "venv", venv.path], timeout: 300), made.succeeded {
      let pip = venv.appendingPathComponent("bin/pip").path
      if let result = try? ProcessRunner.run(pip, pipOptions, timeout: 600), !result.succeeded {
        print("note: pip install kubernetes-validate into \(venv.path) failed:\n\(result)")
      }
    } else if let result = try? ProcessRunner.run(python, ["-m", "pip"] + pipOptions, timeout: 600), !result.succeeded {
      print("note: python3 -m pip install kubernetes-validate failed (python3-venv would help):\n\(result)")
    }
    return find()
  }
}
