// A `swtrace-pktgen sink` running in a namespace, started before traffic is sent.

import Foundation

/// A running UDP sink; `finish()` waits for it and returns (received, bytes).
final class RunningSink: @unchecked Sendable {
  let process: RunningProcess
  let readyFile: URL

  /// Starts a sink in `namespace` on `port` expecting `count` datagrams, bounded by
  /// `maxSeconds`, and waits (at most 10 s) until it is listening.
  init(pktgen: String, namespace: String, port: Int, count: Int, maxSeconds: Int, verbose: Bool = false) throws {
    readyFile = FileManager.default.temporaryDirectory
      .appendingPathComponent("swtrace-sink-\(getpid())-\(UUID().uuidString).ready")
    var arguments = [
      "netns", "exec", namespace, pktgen, "sink", "--port", "\(port)", "--count", "\(count)",
      "--max-seconds", "\(maxSeconds)", "--ready-file", readyFile.path,
    ]
    if verbose { arguments.append("--verbose") }
    process = try RunningProcess("ip", arguments)
    let deadline = Date().addingTimeInterval(10)
    while !FileManager.default.fileExists(atPath: readyFile.path) {
      if Date() > deadline {
        let result = process.stop()
        throw ProcessRunnerError(description: "sink did not start listening within 10 s:\n\(result)")
      }
      Thread.sleep(forTimeInterval: 0.02)
    }
  }

  /// Waits for the sink to finish and parses its `received N bytes B` line.
  func finish(timeout: Double) -> (result: ProcessResult, received: Int?, bytes: Int?) {
    let result = process.wait(timeout: timeout)
    try? FileManager.default.removeItem(at: readyFile)
    guard let line = result.stdoutLines.last(where: { $0.hasPrefix("received ") }) else {
      return (result, nil, nil)
    }
    let words = line.split(separator: " ")
    guard words.count == 4 else { return (result, nil, nil) }
    return (result, Int(words[1]), Int(words[3]))
  }

  deinit {
    process.stop()
    try? FileManager.default.removeItem(at: readyFile)
  }
}
