// bpftrace as the reference: the same program run by bpftrace and by swtrace at the same
// time, over the same traffic, so that every event is seen by both. bpftrace is started
// first; once it has attached it runs (`-c`) swtrace, which once attached runs the traffic.
// bpftrace needs tracefs at /sys/kernel/tracing, which it finds nowhere on a machine where
// nothing mounted it: it runs in a mount namespace of its own with tracefs mounted there.

import Foundation
import Testing

enum BpftraceReference {
  /// Why bpftrace cannot be the reference here, or nil.
  static var skipReason: String? {
    if let reason = TestEnvironment.tracingSkipReason { return reason }
    guard findExecutable("bpftrace") != nil else { return "bpftrace is not installed (apt-get install bpftrace)" }
    guard findExecutable("unshare") != nil else { return "unshare (util-linux) is not installed" }
    return nil
  }

  struct Run: CustomStringConvertible {
    var bpftrace: ProcessResult
    /// Lines bpftrace printed after attaching (its warnings go to stderr).
    var bpftraceLines: [String]
    /// Lines swtrace printed (its -o file).
    var swtraceLines: [String]
    var swtraceLog: String

    var description: String {
      "bpftrace: \(bpftrace)\n-- bpftrace lines:\n\(bpftraceLines.joined(separator: "\n"))\n"
        + "-- swtrace lines:\n\(swtraceLines.joined(separator: "\n"))\n-- swtrace stderr:\n\(swtraceLog)"
    }
  }

  /// Runs `program` (bpftrace's text) with bpftrace and `spec` (swtrace's, the same program
  /// where the spelling is shared) with swtrace while `traffic` (a shell script) runs.
  static func run(program: String, spec: String? = nil, traffic: String, scratch: ScratchDirectory, timeout: Double = 120)
    throws -> Run
  {
    let swtrace = try TestEnvironment.binary("swtrace")
    try program.write(toFile: scratch.path("program.bt"), atomically: true, encoding: .utf8)
    try (spec ?? program).write(toFile: scratch.path("program.spec"), atomically: true, encoding: .utf8)
    try traffic.write(toFile: scratch.path("traffic.sh"), atomically: true, encoding: .utf8)
    // bpftrace splits -c at spaces without a shell, so swtrace's command line is a script.
    let inner = [
      swtrace, "-o", scratch.path("swtrace.out"), scratch.path("program.spec"),
      "-c", "/bin/sh " + scratch.path("traffic.sh"),
    ].map(shellQuote).joined(separator: " ")
    try "exec \(inner) 2>\(shellQuote(scratch.path("swtrace.err")))\n".write(
      toFile: scratch.path("inner.sh"), atomically: true, encoding: .utf8)
    let outer =
      "mount -t tracefs tracefs /sys/kernel/tracing && exec bpftrace "
      + shellQuote(scratch.path("program.bt")) + " -c " + shellQuote("/bin/sh " + scratch.path("inner.sh"))
    let result = try ProcessRunner.run("unshare", ["-m", "sh", "-c", outer], timeout: timeout)
    let lines = result.stdoutLines
    let attached = lines.firstIndex { $0.hasPrefix("Attaching ") }.map { $0 + 1 } ?? lines.count
    return Run(
      bpftrace: result,
      bpftraceLines: lines[attached...].filter { !$0.isEmpty },
      swtraceLines: (scratch.read("swtrace.out") ?? "").split(separator: "\n").map(String.init),
      swtraceLog: scratch.read("swtrace.err") ?? "")
  }
}

extension Trait where Self == ConditionTrait {
  /// Root, a kernel that loads and attaches swtrace's programs, bpftrace and unshare.
  static var needsBpftrace: Self {
    .requires("needs root, tracing, bpftrace and unshare") { BpftraceReference.skipReason }
  }
}

/// A TCP connection from host A to host B of `pair`, on `port`: connect, one byte each way,
/// close; `count` times, each with its own connection. Bounded: every socket times out in 5 s.
func tcpExchangeScript(pair: NetworkNamespacePair, port: Int, count: Int = 1) -> String {
  let server = """
    import socket
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("\(pair.addressB)", \(port))); s.listen(16); s.settimeout(5)
    for _ in range(\(count)):
        a, _ = s.accept(); a.settimeout(5); a.sendall(a.recv(1)); a.close()
    s.close()
    """
  let client = """
    import socket, time
    for _ in range(\(count)):
        for attempt in range(50):
            try:
                c = socket.create_connection(("\(pair.addressB)", \(port)), timeout=5); break
            except ConnectionRefusedError:
                time.sleep(0.05)
        c.sendall(b"x"); c.recv(1); c.close()
    """
  return """
    \(pair.shellCommand(in: pair.namespaceB, ["timeout", "20", "python3", "-c", server])) &
    \(pair.shellCommand(in: pair.namespaceA, ["timeout", "20", "python3", "-c", client]))
    wait
    """
}
