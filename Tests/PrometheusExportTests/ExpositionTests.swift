// The Prometheus text exposition of a scrape, without a kernel or a server: map entries as
// Output hands them over, rendered, then read back by Prometheus' own checker (promtool check
// metrics, from the prometheus package `make deps` installs) and by a plain reading of the
// series, whose values must be the snapshot's.

import Foundation
@testable import Output
import PrometheusExport
import Testing
import TestSupport

@testable import Sema
import SwtraceSyntax

private func map(_ name: String, _ aggregation: Aggregation, keys: [String] = [], value: ValueType = .u64) -> MapDeclaration {
  MapDeclaration(
    name: name, keys: keys.map { MapKey(label: $0, type: .string(capacity: 16)) }, aggregation: aggregation,
    valueType: value, range: SourceRange(0, 0))
}

/// `name{labels} value` lines, keyed by the name with its labels as written.
private func series(_ text: String) -> [String: String] {
  var result: [String: String] = [:]
  for line in text.split(separator: "\n") where !line.hasPrefix("#") {
    guard let space = line.lastIndex(of: " ") else { continue }
    result[String(line[..<space])] = String(line[line.index(after: space)...])
  }
  return result
}

@Suite struct PrometheusExposition {
  static let maps = [
    map("drops", .count, keys: ["reason"]),
    map("delta", .sum, value: .integer(bytes: 8, signed: true)),
    map("len", .stats),
    map("sizes", .histogram),
    map("dev", .value, keys: ["ifname"], value: .string(capacity: 16)),
    // Named like a series of @len: it must be renamed rather than collide.
    map("len_avg", .average),
  ]

  static let snapshot = MetricsSnapshot(
    maps: [
      [
        MapEntry(keys: [.name("SKB_DROP_REASON_NO_SOCKET")], value: .unsigned(10)),
        MapEntry(keys: [.name("quote \" and \\ and\nnewline")], value: .unsigned(2)),
      ],
      [MapEntry(keys: [], value: .number(-5))],
      [MapEntry(keys: [], value: .stats(count: 4, total: 400))],
      // Buckets 9 ([128, 256)) and 11 ([512, 1024)).
      [MapEntry(keys: [], value: .histogram([9: 10, 11: 5]))],
      [MapEntry(keys: [.text("eth0")], value: .stored(.text("up")))],
      [MapEntry(keys: [], value: .stats(count: 2, total: 3))],
    ],
    lostEvents: 3, fullMaps: [0, 1, 0, 0, 0, 0])

  static var text: String { String(decoding: MetricsRenderer(maps: maps, host: "node-1").render(snapshot), as: UTF8.self) }

  @Test func everySeriesHasTheSnapshotsValue() {
    let values = series(Self.text)
    #expect(values[#"swtrace_events_lost_total{host="node-1"}"#] == "3")
    #expect(values[#"swtrace_map_full_total{map="@delta",host="node-1"}"#] == "1")
    #expect(values[#"swtrace_drops_total{reason="SKB_DROP_REASON_NO_SOCKET",host="node-1"}"#] == "10")
    #expect(values[#"swtrace_drops_total{reason="quote \" and \\ and\nnewline",host="node-1"}"#] == "2")
    #expect(values[#"swtrace_delta{host="node-1"}"#] == "-5")
    #expect(values[#"swtrace_len_count{host="node-1"}"#] == "4")
    #expect(values[#"swtrace_len_sum{host="node-1"}"#] == "400")
    #expect(values[#"swtrace_len_avg{host="node-1"}"#] == "100.0")
    #expect(values[#"swtrace_dev{ifname="eth0",host="node-1",value="up"}"#] == "1")
    #expect(values[#"swtrace_len_avg_2{host="node-1"}"#] == "1.5")
    #expect(values[#"swtrace_len_avg{host="node-1"}"#] == "100.0")
  }

  /// Integer buckets: `[128, 256)` is everything up to 255, so its bound is `le="255"`; counts
  /// are cumulative and `+Inf` is the total.
  @Test func histogramBucketsAreCumulativeWithExactBounds() {
    let values = series(Self.text)
    #expect(values[#"swtrace_sizes_bucket{host="node-1",le="127"}"#] == "0")
    #expect(values[#"swtrace_sizes_bucket{host="node-1",le="255"}"#] == "10")
    #expect(values[#"swtrace_sizes_bucket{host="node-1",le="511"}"#] == "10")
    #expect(values[#"swtrace_sizes_bucket{host="node-1",le="1023"}"#] == "15")
    #expect(values[#"swtrace_sizes_bucket{host="node-1",le="+Inf"}"#] == "15")
    #expect(values[#"swtrace_sizes_count{host="node-1"}"#] == "15")
  }

  /// Prometheus' own checker reads the scrape without an error. Its only lint findings may be
  /// about the documented names of `stats()` (README, "Metrics for a fleet"): `_count` and
  /// `_sum` counters, which it would rather see as a summary or with `_total`.
  @Test(.requires("needs promtool (the prometheus package)") {
    findPromtool() == nil ? "promtool is not installed (apt-get install prometheus)" : nil
  })
  func promtoolAcceptsTheScrape() throws {
    let promtool = try #require(findPromtool())
    let process = Process()
    process.executableURL = URL(fileURLWithPath: promtool)
    process.arguments = ["check", "metrics"]
    let input = Pipe()
    let output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    process.standardError = output
    try process.run()
    input.fileHandleForWriting.write(Data(Self.text.utf8))
    try input.fileHandleForWriting.close()
    let said = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    // 0: clean; 3: lint findings only (a scrape that does not parse is 1).
    let findings = said.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
    let documented = findings.filter { $0.hasPrefix("swtrace_len_count ") || $0.hasPrefix("swtrace_len_sum ") }
    #expect(
      process.terminationStatus == 0 || (process.terminationStatus == 3 && documented.count == findings.count),
      "promtool check metrics (status \(process.terminationStatus)):\n\(said)\n--- scrape ---\n\(Self.text)")
  }
}

private func findPromtool() -> String? {
  ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }
}
