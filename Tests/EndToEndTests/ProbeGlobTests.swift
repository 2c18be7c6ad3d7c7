// What a tracepoint glob attaches to, as `swtrace -l` lists it and as a run counts it:
// a category names exactly that category's tracepoints (specs/syscalls-hello.spec and
// every `tracepoint:net:*` spec rely on it).

import Foundation
import Testing

@Suite("tracepoint globs end to end", .serialized)
struct ProbeGlobTests {
  /// Names listed by `swtrace -l PROBE`: lines `tracepoint:CATEGORY:NAME (args)`, with the
  /// categories they were listed under.
  func listed(_ probe: String) throws -> (names: [String], categories: Set<String>, result: ProcessResult) {
    let swtrace = try TestEnvironment.binary("swtrace")
    let result = try ProcessRunner.run(swtrace, ["-l", probe], timeout: 60)
    var names: [String] = []
    var categories = Set<String>()
    for line in result.stdoutLines {
      guard let probe = line.split(separator: " ").first else { continue }
      let parts = probe.split(separator: ":", omittingEmptySubsequences: false)
      guard parts.count == 3, parts[0] == "tracepoint" else { continue }
      categories.insert(String(parts[1]))
      names.append(String(parts[2]))
    }
    return (names, categories, result)
  }

  @Test("tracepoint:raw_syscalls:* is sys_enter and sys_exit, nothing from other categories", .needsTracing)
  func categoryGlobStaysInCategory() throws {
    let (names, categories, result) = try listed("tracepoint:raw_syscalls:*")
    #expect(result.status == 0, "\(result)")
    #expect(categories == ["raw_syscalls"], "\(result)")
    #expect(
      Set(names) == ["sys_enter", "sys_exit"],
      "raw_syscalls has two tracepoints; also listed: \(names.filter { $0 != "sys_enter" && $0 != "sys_exit" })")

    // And what a run attaches to: only those two fire.
    let swtrace = try TestEnvironment.binary("swtrace")
    let run = try ProcessRunner.run(swtrace, ["-f", "json", "-d", "1", "-e", "tracepoint:raw_syscalls:* { @[probe] = count() }"], timeout: 60)
    #expect(run.status == 0, "\(run)")
    let fired = Set(JSONTraceOutput(run.stdout).maps["@"]?.entries.compactMap { $0.key("probe") } ?? [])
    #expect(fired.isSubset(of: ["sys_enter", "sys_exit"]) && !fired.isEmpty, "probes that fired: \(fired.sorted())")
  }

  @Test("tracepoint:net:* holds net_dev_queue and no scheduler tracepoints", .needsTracing)
  func netCategory() throws {
    let (names, categories, result) = try listed("tracepoint:net:*")
    #expect(result.status == 0, "\(result)")
    #expect(categories == ["net"], "\(result)")
    #expect(names.contains("net_dev_queue"), "\(result)")
    let foreign = names.filter { $0.hasPrefix("sched_") || $0.hasPrefix("pelt_") || $0.hasPrefix("tcp_") }
    #expect(foreign.isEmpty, "tracepoints of other categories listed under net: \(foreign)")
  }
}
