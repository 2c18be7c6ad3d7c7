// Where the binaries under test are, and whether this machine can run the e2e tests.

import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
  import Glibc
#endif

enum TestEnvironment {
  /// The directory holding `swtrace` and `swtrace-pktgen`: `$SWTRACE_BIN_DIR` when set,
  /// else the directory of the test runner itself (`swift test` puts the test bundle next
  /// to the package's executables, e.g. `.build/x86_64-unknown-linux-gnu/debug/`).
  static let binDirectory: URL = {
    if let override = ProcessInfo.processInfo.environment["SWTRACE_BIN_DIR"], !override.isEmpty {
      return URL(fileURLWithPath: override, isDirectory: true)
    }
    var runner = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
    runner.resolveSymlinksInPath()
    var directory = runner.deletingLastPathComponent()
    // On platforms where the test bundle is a directory (`X.xctest/Contents/MacOS/X`),
    // climb out of it to the build directory.
    while directory.pathComponents.contains(where: { $0.hasSuffix(".xctest") }) {
      directory = directory.deletingLastPathComponent()
    }
    return directory
  }()

  /// The absolute path of a binary under test, or a descriptive error if it is missing.
  static func binary(_ name: String) throws -> String {
    let path = binDirectory.appendingPathComponent(name).path
    guard FileManager.default.isExecutableFile(atPath: path) else {
      throw ProcessRunnerError(
        description: "\(name) not found at \(path); build it first (`swift build`) or set SWTRACE_BIN_DIR")
    }
    return path
  }

  static var isRoot: Bool { geteuid() == 0 }

  /// Why the network tests (namespaces, SO_MARK, raw sockets) cannot run here, or nil.
  static var networkSkipReason: String? {
    isRoot ? nil : "not root (euid \(geteuid())): creating network namespaces needs root"
  }

  /// A trivial spec used to ask swtrace whether the kernel lets it load and attach.
  static let probeSpec = "skb:* /mark==0xdead/ < print(len) >"

  /// Why the swtrace end-to-end tests cannot run here, or nil when they must run.
  /// Computed once per test process.
  static let tracingSkipReason: String? = computeTracingSkipReason()

  private static func computeTracingSkipReason() -> String? {
    if let reason = networkSkipReason { return reason }
    guard let swtrace = try? binary("swtrace") else {
      return nil  // Not a reason to skip: the test itself will fail, saying what is missing.
    }
    guard let probe = try? ProcessRunner.run(swtrace, ["-c", "true", "-e", probeSpec], timeout: 60) else {
      return nil
    }
    guard probe.status == 2 else { return nil }
    // swtrace says the system refused. Believe it only if the bpf() syscall itself is
    // unusable; if bpftool can list programs, BPF works and the refusal is a bug to fail on.
    if let bpftool = findExecutable("bpftool"),
      let check = try? ProcessRunner.run(bpftool, ["prog", "show"], timeout: 30), check.succeeded
    {
      print("note: swtrace says the system refused (status 2), but bpftool can use bpf(): not skipping")
      return nil
    }
    let said = probe.stderrLines.last ?? "(no message)"
    return "the kernel refuses BPF here: `swtrace -c true -e '\(probeSpec)'` exited 2: \(said)"
  }
}

extension Trait where Self == ConditionTrait {
  /// Root, and a kernel that lets swtrace load and attach programs.
  static var needsTracing: Self {
    .requires("needs root and a kernel that lets swtrace load and attach BPF programs") {
      TestEnvironment.tracingSkipReason
    }
  }

  /// bash, for pipelines the tests build (PIPESTATUS, process substitution).
  static var needsBash: Self {
    .requires("needs bash") { findExecutable("bash") == nil ? "bash is not installed" : nil }
  }

  /// Root, for network namespaces, marks and raw sockets.
  static var needsNetwork: Self {
    .requires("needs root to create network namespaces") { TestEnvironment.networkSkipReason }
  }
}
