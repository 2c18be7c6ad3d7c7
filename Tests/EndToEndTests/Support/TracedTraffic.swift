// Runs swtrace around a burst of UDP datagrams sent from namespace A of a pair to B, and
// keeps everything a failure message needs: swtrace's result and the senders' logs.

import Foundation
import Testing

/// One `swtrace-pktgen udp` burst from A to B.
struct UDPBurst {
  var sizes: [Int]
  var count: Int
  var mark: UInt32?
  var port: Int
  /// Extra pktgen options, such as ["--rate", "1000"].
  var extra: [String] = []

  /// Payload of datagram `i` (0-based): pktgen cycles through the sizes.
  func payload(_ i: Int) -> Int { sizes[i % sizes.count] }
  var payloads: [Int] { (0..<count).map(payload) }
}

/// swtrace's result and the logs of the commands it ran.
struct TracedRun: CustomStringConvertible {
  let result: ProcessResult
  let logs: [(name: String, text: String?)]
  var json: JSONTraceOutput { JSONTraceOutput(result.stdout) }

  var description: String {
    var text = "\(result)"
    for log in logs { text += "\n--- \(log.name) ---\n\(log.text ?? "(did not run)")" }
    return text
  }

  /// Whether every sender said `sent N` for its full count.
  func sendersSent(_ bursts: [UDPBurst]) -> Bool {
    zip(logs, bursts).allSatisfy { log, burst in log.text?.contains("sent \(burst.count)") == true }
  }
}

enum TracedTraffic {
  /// The shell command that sends `burst` from A to B, its output going to `log`.
  static func sendCommand(_ burst: UDPBurst, pair: NetworkNamespacePair, pktgen: String, log: String) -> String {
    var words = [
      pktgen, "udp", "--dst", pair.addressB, "--port", "\(burst.port)", "--count", "\(burst.count)",
      "--sizes", burst.sizes.map(String.init).joined(separator: ","), "--max-seconds", "30",
    ]
    if let mark = burst.mark { words += ["--mark", "0x" + String(mark, radix: 16)] }
    words += burst.extra
    return pair.shellCommand(in: pair.namespaceA, words) + " >" + shellQuote(log) + " 2>&1"
  }

  /// Runs `swtrace ARGS -e SPEC -c '<bursts, one after the other>'` and returns what happened.
  static func run(
    spec: String, arguments: [String] = ["-f", "json"], bursts: [UDPBurst], pair: NetworkNamespacePair,
    scratch: ScratchDirectory, before: String? = nil, after: String? = nil, timeout: Double = 180
  ) throws -> TracedRun {
    let swtrace = try TestEnvironment.binary("swtrace")
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    var names: [String] = []
    var parts: [String] = []
    if let before { parts.append(before) }
    for (index, burst) in bursts.enumerated() {
      let name = "burst\(index).log"
      names.append(name)
      parts.append(sendCommand(burst, pair: pair, pktgen: pktgen, log: scratch.path(name)))
    }
    if let after { parts.append(after) }
    let command = parts.joined(separator: " && ")
    let result = try ProcessRunner.run(swtrace, arguments + ["-c", command, "-e", spec], timeout: timeout)
    return TracedRun(result: result, logs: names.map { ($0, scratch.read($0)) })
  }
}

extension NetworkNamespacePair {
  /// Sends `count` UDP datagrams from A to B with swtrace-pktgen (payload sizes cycling
  /// through `sizes`, SO_MARK `mark`) and requires that it sent them all.
  func sendUDP(count: Int, sizes: [Int] = [64], mark: String, port: Int) throws {
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    let result = try run(
      in: namespaceA,
      [
        pktgen, "udp", "--dst", addressB, "--port", "\(port)", "--count", "\(count)",
        "--sizes", sizes.map(String.init).joined(separator: ","), "--mark", mark, "--max-seconds", "30",
      ], timeout: 60)
    try #require(result.succeeded && result.stdout.contains("sent \(count)"), "pktgen:\n\(result)")
  }
}
