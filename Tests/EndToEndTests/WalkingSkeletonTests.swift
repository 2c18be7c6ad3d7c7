// The walking skeleton, end to end: spec text -> eBPF -> kernel -> events -> JSON.
//
// Contract of the CLI under test:
//   swtrace -f json -c '<cmd>' -e 'skb:* /mark==0xdead/ < print(len, gso_type) >'
// runs <cmd> with /bin/sh -c once its programs are attached, stops when it exits, drains
// the events and prints one JSON object per event on stdout,
//   {"probe": "net_dev_queue", "ts": 123, "cpu": 0, "values": {"len": 142, "gso_type": "none"}}
// (the `values` keys are the print arguments' source text), and `Samples: N Lost: M` as
// the last line of stderr. Exit status 0; 1 = spec error; 2 = the system refused.
//
// Facts about the traffic, observed with bpftrace on tracepoint:net:net_dev_queue here
// (Linux 6.18, veth between two namespaces):
//  * a UDP datagram with payload p is queued on the sending veth with skb->len == p + 42
//    (14 Ethernet + 20 IPv4 + 8 UDP), skb->mark == the sender's SO_MARK, gso_type 0;
//  * on the receiving side (netif_rx, netif_receive_skb) len == p + 28 (the Ethernet
//    header is pulled) and mark == 0: veth scrubs the mark when crossing namespaces.
// So with marked payloads 100...149 and unmarked 300...349 no length of one group, at
// any header level, can be mistaken for one of the other.

import Foundation
import Testing

/// A JSON value as swtrace prints it in `values`.
enum JSONValue: Decodable, Equatable, CustomStringConvertible {
  case integer(Int64)
  case number(Double)
  case string(String)
  case bool(Bool)
  case null
  case other

  init(from decoder: Decoder) throws {
    let container = try decoder.singleValueContainer()
    if container.decodeNil() {
      self = .null
    } else if let value = try? container.decode(Int64.self) {
      self = .integer(value)
    } else if let value = try? container.decode(Double.self) {
      self = .number(value)
    } else if let value = try? container.decode(String.self) {
      self = .string(value)
    } else if let value = try? container.decode(Bool.self) {
      self = .bool(value)
    } else {
      self = .other
    }
  }

  var description: String {
    switch self {
    case .integer(let v): "\(v)"
    case .number(let v): "\(v)"
    case .string(let v): "\"\(v)\""
    case .bool(let v): "\(v)"
    case .null: "null"
    case .other: "(array or object)"
    }
  }
}

/// One line of `swtrace -f json` output.
struct TraceEvent: Decodable, CustomStringConvertible {
  let probe: String
  let ts: UInt64
  let cpu: UInt32
  let values: [String: JSONValue]
  var line = ""

  private enum CodingKeys: String, CodingKey { case probe, ts, cpu, values }

  var description: String { line }

  /// Parses one JSON line; the error says what does not fit the contract.
  static func parse(_ line: String) -> Result<TraceEvent, ParseFailure> {
    do {
      var event = try JSONDecoder().decode(TraceEvent.self, from: Data(line.utf8))
      event.line = line
      guard !event.probe.isEmpty else { return .failure(ParseFailure("empty probe name: \(line)")) }
      return .success(event)
    } catch {
      return .failure(ParseFailure("\(error): \(line)"))
    }
  }

  struct ParseFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
  }

  /// `values["len"]` when it is a JSON integer.
  var len: Int? {
    if case .integer(let value) = values["len"] { return Int(value) }
    return nil
  }

  var gsoType: String? {
    if case .string(let value) = values["gso_type"] { return value }
    return nil
  }
}

/// `Samples: N Lost: M`, the closing stderr line.
func parseSummary(_ line: String) -> (samples: Int, lost: Int)? {
  let words = line.split(separator: " ")
  guard words.count == 4, words[0] == "Samples:", words[2] == "Lost:",
    let samples = Int(words[1]), let lost = Int(words[3])
  else { return nil }
  return (samples, lost)
}

@Suite("swtrace end to end", .serialized)
struct WalkingSkeletonTests {
  static let spec = "skb:* /mark==0xdead/ < print(len, gso_type) >"
  static let markedPayloads = Array(100...149)
  static let unmarkedPayloads = Array(300...349)
  /// Ethernet + IPv4 + UDP headers in front of the payload at net_dev_queue on a veth.
  static let netDevQueueOverhead = 14 + 20 + 8
  /// Where else a datagram's length may be reported: payload only, UDP, IP, Ethernet.
  static let headerLevels = [0, 8, 28, 42]

  @Test("marked UDP datagrams are traced at net_dev_queue, unmarked ones never", .needsTracing)
  func markedDatagramsAreTraced() throws {
    let swtrace = try TestEnvironment.binary("swtrace")
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    let pair = try NetworkNamespacePair(subnet: 21)
    defer { pair.remove() }
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("swtrace-e2e-\(getpid())-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }

    // A sink in B receives everything, so B answers nothing (no ICMP port unreachable).
    let total = Self.markedPayloads.count + Self.unmarkedPayloads.count
    let sink = try RunningSink(pktgen: pktgen, namespace: pair.namespaceB, port: 9000, count: total, maxSeconds: 90)

    // The traced command: 50 marked datagrams, then 50 unmarked ones, from A to B. Its own
    // output goes to files so that swtrace's stdout holds nothing but events.
    func send(_ payloads: [Int], mark: String?, log: String) -> String {
      var words = [
        pktgen, "udp", "--dst", pair.addressB, "--port", "9000",
        "--count", "\(payloads.count)", "--sizes", "\(payloads.first!)-\(payloads.last!)", "--max-seconds", "20",
      ]
      if let mark { words += ["--mark", mark] }
      return pair.shellCommand(in: pair.namespaceA, words) + " >"
        + shellQuote(scratch.appendingPathComponent(log).path) + " 2>&1"
    }
    let command =
      send(Self.markedPayloads, mark: "0xdead", log: "marked.log") + " && "
      + send(Self.unmarkedPayloads, mark: nil, log: "unmarked.log")

    let trace = try ProcessRunner.run(swtrace, ["-f", "json", "-c", command, "-e", Self.spec], timeout: 120)
    let markedLog = (try? String(contentsOf: scratch.appendingPathComponent("marked.log"), encoding: .utf8))
    let unmarkedLog = (try? String(contentsOf: scratch.appendingPathComponent("unmarked.log"), encoding: .utf8))
    // When the senders never ran, don't wait for datagrams that will not come.
    let (sinkResult, received, _) = sink.finish(timeout: unmarkedLog == nil ? 1 : 30)
    let context = """
      \(trace)
      --- marked sender ---
      \(markedLog ?? "(did not run)")
      --- unmarked sender ---
      \(unmarkedLog ?? "(did not run)")
      --- sink ---
      \(sinkResult)
      """

    // The run itself.
    try #require(!trace.timedOut, "swtrace did not finish within 120 s:\n\(context)")
    try #require(trace.status == 0, "swtrace failed:\n\(context)")
    #expect(
      markedLog?.contains("sent 50") == true && unmarkedLog?.contains("sent 50") == true,
      "the senders fell short:\n\(context)")
    #expect(received == total, "the sink in \(pair.namespaceB) should have received all \(total) datagrams:\n\(context)")

    // Every stdout line is one well-formed event.
    var events: [TraceEvent] = []
    for line in trace.stdoutLines where !line.trimmingCharacters(in: .whitespaces).isEmpty {
      switch TraceEvent.parse(line) {
      case .success(let event): events.append(event)
      case .failure(let failure): Issue.record("bad event line: \(failure)")
      }
    }
    let wrongKeys = events.filter { Set($0.values.keys) != ["len", "gso_type"] }
    #expect(
      wrongKeys.count == 0,
      "the keys of \"values\" must be the print arguments' source text, len and gso_type, e.g.\n\(examples(wrongKeys))")
    #expect(events.count >= Self.markedPayloads.count, "\(context)")

    // The closing summary accounts for every line and lost none.
    let lastLine = trace.stderrLines.last(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty }) ?? ""
    let summary = parseSummary(lastLine)
    #expect(summary != nil, "last stderr line should be `Samples: N Lost: M`, got `\(lastLine)`\n\(context)")
    if let summary {
      #expect(summary.lost == 0, "\(context)")
      #expect(summary.samples == trace.stdoutLines.count, "Samples must equal the number of JSON lines\n\(context)")
    }

    // Only marked datagrams: no event's length belongs to an unmarked one at any header
    // level, and each event's length belongs to a marked one (exactly payload + 42 at
    // net_dev_queue). Violations are collected so that a broken filter fails with a few
    // examples instead of thousands of issues.
    let unmarkedLengths = Set(Self.unmarkedPayloads.flatMap { p in Self.headerLevels.map { p + $0 } })
    let markedLengths = Set(Self.markedPayloads.flatMap { p in Self.headerLevels.map { p + $0 } })
    let queuedLengths = Set(Self.markedPayloads.map { $0 + Self.netDevQueueOverhead })
    let withoutLen = events.filter { $0.len == nil }
    let leaked = events.filter { $0.len.map(unmarkedLengths.contains) == true }
    let unexplained = events.filter { event in
      guard let len = event.len, !unmarkedLengths.contains(len) else { return false }
      return event.probe == "net_dev_queue" ? !queuedLengths.contains(len) : !markedLengths.contains(len)
    }
    let notNone = events.filter { $0.probe == "net_dev_queue" && $0.gsoType != "none" }
    #expect(withoutLen.count == 0, "\(withoutLen.count) events without an integer len, e.g.\n\(examples(withoutLen))")
    #expect(
      leaked.count == 0,
      "\(leaked.count) events have the len of an unmarked datagram (the mark filter let them through), e.g.\n\(examples(leaked))")
    #expect(
      unexplained.count == 0,
      "\(unexplained.count) events have a len matching no marked datagram (net_dev_queue: payload 100...149 + 42), e.g.\n\(examples(unexplained))")
    #expect(notNone.count == 0, "small UDP datagrams are not GSO, yet gso_type is not \"none\" in e.g.\n\(examples(notNone))")

    // Each of the 50 marked datagrams (distinct lengths 142...191) was seen at net_dev_queue.
    let seen = Set(events.filter { $0.probe == "net_dev_queue" }.compactMap(\.len))
    let missing = queuedLengths.subtracting(seen).sorted()
    #expect(missing.isEmpty, "no net_dev_queue event for marked datagrams of len \(missing)\n\(context)")
  }

  private func examples(_ events: [TraceEvent]) -> String {
    events.prefix(5).map(\.line).joined(separator: "\n")
  }
}
