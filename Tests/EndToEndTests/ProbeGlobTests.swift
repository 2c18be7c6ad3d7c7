// What a tracepoint glob attaches to, as `swtrace -l` lists it and as a run counts it:
// a category names exactly that category's tracepoints (specs/syscalls-hello.spec and
// every `tracepoint:net:*` spec rely on it).

import Foundation
import Testing

@Suite("tracepoint globs end to end", .serialized)
struct ProbeGlobTests {
  /// Names listed by `swtrace -l PROBE`: lines `tracepoint:NAME(args)`.
  func listed(_ probe: String) throws -> (names: [String], result: ProcessResult) {
    let swtrace = try TestEnvironment.binary("swtrace")
    let result = try ProcessRunner.run(swtrace, ["-l", probe], timeout: 60)
    let names = result.stdoutLines.compactMap { line -> String? in
      guard line.hasPrefix("tracepoint:"), let open = line.firstIndex(of: "(") else { return nil }
      return String(line[line.index(line.startIndex, offsetBy: "tracepoint:".count)..<open])
    }
    return (names, result)
  }

  @Test("tracepoint:raw_syscalls:* is sys_enter and sys_exit, nothing from other categories", .needsTracing)
  func categoryGlobStaysInCategory() throws {
    let (names, result) = try listed("tracepoint:raw_syscalls:*")
    #expect(result.status == 0, "\(result)")
    #expect(
      Set(names) == ["sys_enter", "sys_exit"],
      "raw_syscalls has two tracepoints; also listed: \(names.filter { $0 != "sys_enter" && $0 != "sys_exit" })")

    // And what a run attaches to: only those two fire.
    let swtrace = try TestEnvironment.binary("swtrace")
    let run = try ProcessRunner.run(swtrace, ["-o", "json", "-d", "1", "-e", "tracepoint:raw_syscalls:* { @[probe] = count() }"], timeout: 60)
    #expect(run.status == 0, "\(run)")
    let fired = Set(JSONTraceOutput(run.stdout).maps["@"]?.entries.compactMap { $0.key("probe") } ?? [])
    #expect(fired.isSubset(of: ["sys_enter", "sys_exit"]) && !fired.isEmpty, "probes that fired: \(fired.sorted())")
  }

  @Test("tracepoint:net:* holds net_dev_queue and no scheduler tracepoints", .needsTracing)
  func netCategory() throws {
    let (names, result) = try listed("tracepoint:net:*")
    #expect(result.status == 0, "\(result)")
    #expect(names.contains("net_dev_queue"), "\(result)")
    let foreign = names.filter { $0.hasPrefix("sched_") || $0.hasPrefix("pelt_") || $0.hasPrefix("tcp_") }
    #expect(foreign.isEmpty, "tracepoints of other categories listed under net: \(foreign)")
  }
}
