// Robustness (issue 10): swtrace is no way around the kernel's permissions, and says so
// plainly. Without CAP_BPF and CAP_PERFMON (or root) a trace stops before compiling, with
// one sentence naming what is needed, status 2, and none of libbpf's or the verifier's
// words; `swtrace check` needs only the world-readable /sys/kernel/btf/vmlinux.
//
// As root the tests drop privileges with setpriv(1): to uid/gid 65534 (nobody) with no
// capabilities, and as root with CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN out of the bounding
// set. As another user they run swtrace as that user.

import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
  import Glibc
#endif

@Suite("robustness: privileges (issue 10)", .serialized)
struct PrivilegeTests {
  /// A user with no privileges at all: nobody, no groups, no capabilities to inherit.
  static let asNobody = ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
  /// Root, but without the capabilities BPF tracing needs.
  static let asRootWithoutBPF = ["--bounding-set=-bpf,-perfmon,-sys_admin", "--inh-caps=-all"]

  static let spec = "skb:* /mark == 0xa111/ < print(len, gso_type) >"

  /// Runs swtrace with `arguments` under `drop` (setpriv options) when root, as is otherwise;
  /// a reason to skip when the dropped user cannot even start the binary here.
  func runDropped(_ drop: [String], _ arguments: [String]) throws -> Result<ProcessResult, SkipReason> {
    let swtrace = try TestEnvironment.binary("swtrace")
    guard TestEnvironment.isRoot else { return .success(try ProcessRunner.run(swtrace, arguments, timeout: 60)) }
    guard let setpriv = findExecutable("setpriv") else { return .failure(SkipReason("setpriv (util-linux) is not installed")) }
    let result = try ProcessRunner.run(setpriv, drop + [swtrace] + arguments, timeout: 60)
    // 126/127: the exec itself failed, e.g. a build directory nobody may enter.
    if result.status == 126 || result.status == 127 {
      return .failure(SkipReason("setpriv \(drop.joined(separator: " ")) could not start \(swtrace): \(result.stderr)"))
    }
    return .success(result)
  }

  struct SkipReason: Error { let text: String; init(_ text: String) { self.text = text } }

  /// setpriv drops root's privileges; without root the tests run as the user they are.
  static let needsSetpriv = ConditionTrait.requires("needs setpriv (util-linux) to drop root's privileges") {
    TestEnvironment.isRoot && findExecutable("setpriv") == nil ? "setpriv (util-linux) is not installed" : nil
  }

  @Test(
    "a trace without CAP_BPF and CAP_PERFMON: status 2 and one sentence saying what is needed", needsSetpriv,
    arguments: [["-e", spec], ["-d", "1", "-e", spec], ["-c", "true", "-e", spec], ["-f", "json", "-e", spec]])
  func unprivilegedTrace(arguments: [String]) throws {
    for drop in [Self.asNobody, Self.asRootWithoutBPF] {
      if !TestEnvironment.isRoot && drop == Self.asRootWithoutBPF { continue }
      let result: ProcessResult
      switch try runDropped(drop, arguments) {
      case .success(let run): result = run
      case .failure(let reason): try skip(reason.text)
      }
      let brief = "as \(TestEnvironment.isRoot ? drop.joined(separator: " ") : "uid \(geteuid())"):\n\(result)"
      #expect(!result.timedOut && crashSigns(result).isEmpty, "\(brief)")
      #expect(result.status == 2, "the system refusing is status 2: \(brief)")
      #expect(result.stdout.isEmpty, "\(brief)")
      #expect(result.stderrLines.count == 1, "one sentence, nothing before or after it: \(brief)")
      let message = result.stderrLines.first ?? ""
      for word in ["error:", "CAP_BPF", "CAP_PERFMON", "root", "swtrace check"] {
        #expect(message.contains(word), "the message should mention '\(word)': \(brief)")
      }
      for noise in ["libbpf", "verifier", "errno", "Operation not permitted", "map", "BTF", "kprobes"] {
        #expect(!result.stderr.contains(noise), "'\(noise)' is noise to someone who lacks privileges: \(brief)")
      }
    }
  }

  @Test("swtrace check works without privileges", needsSetpriv)
  func unprivilegedCheck() throws {
    let file = packageRoot.appendingPathComponent("specs/mark-path.spec").path
    for drop in [Self.asNobody, Self.asRootWithoutBPF] {
      if !TestEnvironment.isRoot && drop == Self.asRootWithoutBPF { continue }
      let result: ProcessResult
      switch try runDropped(drop, ["check", "-e", Self.spec, file]) {
      case .success(let run): result = run
      case .failure(let reason): try skip(reason.text)
      }
      let brief = "as \(TestEnvironment.isRoot ? drop.joined(separator: " ") : "uid \(geteuid())"):\n\(result)"
      #expect(result.status == 0, "\(brief)")
      #expect(result.stderr.contains("<spec>: ok (") && result.stderr.contains("mark-path.spec: ok ("), "\(brief)")
      #expect(!result.stderr.contains("error:"), "\(brief)")
    }
  }
}
