// The helpers the e2e tests stand on: if these are wrong, e2e failures mislead.

import Foundation
import Testing

@Suite("test support")
struct SupportTests {
  @Test("ProcessRunner captures stdout, stderr and the exit status")
  func capturesOutput() throws {
    let result = try ProcessRunner.shell("echo out; echo err >&2; exit 3", timeout: 10)
    #expect(result.status == 3)
    #expect(result.stdout == "out\n")
    #expect(result.stderr == "err\n")
    #expect(!result.timedOut)
  }

  @Test("ProcessRunner reads large output without blocking the program")
  func largeOutput() throws {
    let result = try ProcessRunner.shell("yes 123456789 | head -c 1000000", timeout: 20)
    #expect(result.status == 0, "\(result)")
    #expect(result.stdout.utf8.count == 1_000_000)
  }

  @Test("ProcessRunner kills a program and its children at the timeout")
  func timeoutKillsProcessGroup() throws {
    // A sleep duration nobody else uses, to find the child again.
    let duration = "30.\(getpid())\(Int.random(in: 1000...9999))"
    // The background child keeps the output pipes open; it must die with its parent.
    let result = try ProcessRunner.shell("sleep \(duration) & sleep \(duration)", timeout: 0.5)
    #expect(result.timedOut)
    #expect(result.seconds < 10, "\(result)")
    Thread.sleep(forTimeInterval: 0.2)
    let left = try ProcessRunner.run("pgrep", ["-f", "^sleep \(duration)$"], timeout: 10)
    #expect(left.stdout.isEmpty, "children of the timed-out program survived: \(left)")
  }

  @Test("children start with no blocked signals, so SIGTERM and SIGINT reach them")
  func childSignalMask() throws {
    let result = try ProcessRunner.run("/bin/grep", ["SigBlk", "/proc/self/status"], timeout: 10)
    #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "SigBlk:\t0000000000000000", "\(result)")
  }

  @Test("namespace names of dead runs are recognised, others are not")
  func staleNamespaceNames() {
    #expect(NetworkNamespacePair.ownerPid(ofNamespace: "swt1234x2-a") == 1234)
    #expect(NetworkNamespacePair.ownerPid(ofNamespace: "swt1234x2-b") == 1234)
    #expect(NetworkNamespacePair.ownerPid(ofNamespace: "swtdemo1234-a") == nil)
    #expect(NetworkNamespacePair.ownerPid(ofNamespace: "swt1234x2-c") == nil)
    #expect(NetworkNamespacePair.ownerPid(ofNamespace: "blue") == nil)
  }

  @Test("shellQuote survives /bin/sh")
  func quoting() throws {
    let words = ["plain", "with space", "it's", "$HOME", "a\"b", "", "skb:* /mark==0xdead/ < print(len) >"]
    let result = try ProcessRunner.shell("printf '%s\\n' " + words.map(shellQuote).joined(separator: " "), timeout: 10)
    #expect(result.stdout == words.joined(separator: "\n") + "\n")
  }
}
