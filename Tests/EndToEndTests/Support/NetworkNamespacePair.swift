// Two private network namespaces joined by a veth pair: the project's own test hosts.
//
//   namespace A (host A)                 namespace B (host B)
//   lo up, vethA 10.200.S.1/24  <--->    vethB 10.200.S.2/24, lo up
//
// Traffic between them crosses a namespace boundary (the kernel scrubs skb->mark on the
// way), and stays entirely inside the two namespaces. Names carry our pid so parallel
// runs never collide, and namespaces left behind by a dead run are removed on the next.

import Foundation

#if canImport(Glibc)
  import Glibc
#endif

final class NetworkNamespacePair: @unchecked Sendable {
  /// Namespace names (as `ip netns` knows them) of host A and host B.
  let namespaceA: String
  let namespaceB: String
  /// Interface names of the veth ends: `vethA` lives in A, `vethB` in B.
  let vethA: String
  let vethB: String
  /// The third octet S of 10.200.S.0/24.
  let subnet: Int
  var addressA: String { "10.200.\(subnet).1" }
  var addressB: String { "10.200.\(subnet).2" }

  private let lock = NSLock()
  private var removed = false

  /// Prefix of every name we create: `swt<pid>x<n>`, so stale ones can be traced to a pid.
  static let namePrefix = "swt"

  /// Creates both namespaces and the veth pair, assigns 10.200.`subnet`.1/.2 and brings
  /// every link up. On any failure, whatever was created is removed before throwing.
  init(subnet: Int = 1) throws {
    precondition((0...255).contains(subnet), "subnet octet out of range")
    Self.removeStaleNamespaces()
    let base = "\(Self.namePrefix)\(getpid())x\(Self.nextSerial())"
    namespaceA = base + "-a"
    namespaceB = base + "-b"
    vethA = base + "a"  // at most 3 + 7 + 1 + 3 + 1 = 15 characters (IFNAMSIZ - 1)
    vethB = base + "b"
    precondition(vethA.utf8.count <= 15, "interface name too long: \(vethA)")
    self.subnet = subnet
    do {
      try Self.ip(["netns", "add", namespaceA])
      try Self.ip(["netns", "add", namespaceB])
      try Self.ip([
        "link", "add", vethA, "netns", namespaceA, "type", "veth", "peer", "name", vethB, "netns", namespaceB,
      ])
      try Self.ip(["-n", namespaceA, "addr", "add", "\(addressA)/24", "dev", vethA])
      try Self.ip(["-n", namespaceB, "addr", "add", "\(addressB)/24", "dev", vethB])
      for (namespace, link) in [(namespaceA, vethA), (namespaceA, "lo"), (namespaceB, vethB), (namespaceB, "lo")] {
        try Self.ip(["-n", namespace, "link", "set", link, "up"])
      }
    } catch {
      remove()
      throw error
    }
  }

  /// The shell command line that runs `command` inside namespace `namespace`.
  func shellCommand(in namespace: String, _ command: [String]) -> String {
    (["ip", "netns", "exec", namespace] + command).map(shellQuote).joined(separator: " ")
  }

  /// Runs `command` inside namespace `namespace` (via `ip netns exec`) and waits for it.
  func run(in namespace: String, _ command: [String], timeout: Double = 30) throws -> ProcessResult {
    try ProcessRunner.run("ip", ["netns", "exec", namespace] + command, timeout: timeout)
  }

  /// Deletes both namespaces (which deletes the veth pair with them). Idempotent.
  func remove() {
    let alreadyRemoved = lock.withLock {
      defer { removed = true }
      return removed
    }
    if alreadyRemoved { return }
    for namespace in [namespaceA, namespaceB] {
      _ = try? ProcessRunner.run("ip", ["netns", "delete", namespace], timeout: 20)
    }
  }

  deinit { remove() }

  // MARK: - Helpers

  private static let serialLock = NSLock()
  nonisolated(unsafe) private static var serial = 0

  private static func nextSerial() -> Int {
    serialLock.withLock {
      serial += 1
      return serial
    }
  }

  /// Runs `ip` with `arguments`, throwing with its stderr when it fails.
  static func ip(_ arguments: [String]) throws {
    let result = try ProcessRunner.run("ip", arguments, timeout: 20)
    guard result.succeeded else {
      throw ProcessRunnerError(description: "ip \(arguments.joined(separator: " ")) failed:\n\(result)")
    }
  }

  /// Lists our namespaces (`swt<pid>x<n>-a|b`) whose pid no longer runs, and deletes them:
  /// leftovers of a run that was killed before it could clean up.
  static func removeStaleNamespaces() {
    guard let result = try? ProcessRunner.run("ip", ["netns", "list"], timeout: 20), result.succeeded else { return }
    for line in result.stdoutLines {
      guard let name = line.split(separator: " ").first.map(String.init),
        let pid = ownerPid(ofNamespace: name), pid != getpid()
      else { continue }
      if kill(pid, 0) != 0 && errno == ESRCH {
        _ = try? ProcessRunner.run("ip", ["netns", "delete", name], timeout: 20)
      }
    }
  }

  /// The pid encoded in one of our namespace names, or nil for anybody else's namespace.
  static func ownerPid(ofNamespace name: String) -> Int32? {
    guard name.hasPrefix(namePrefix), name.hasSuffix("-a") || name.hasSuffix("-b") else { return nil }
    let middle = name.dropFirst(namePrefix.count).dropLast(2)
    let parts = middle.split(separator: "x", omittingEmptySubsequences: false)
    guard parts.count == 2, let pid = Int32(parts[0]), pid > 0, Int(parts[1]) != nil else { return nil }
    return pid
  }
}
