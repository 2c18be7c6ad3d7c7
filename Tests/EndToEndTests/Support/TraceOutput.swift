// Shared helpers for the end-to-end suites that check maps, paths and exits: parsing
// `swtrace -f json` map lines and `-f paths-json` paths, watching the BPF objects a running
// swtrace owns (from /proc/PID/fdinfo), and small conveniences around namespaces.

import Foundation

#if canImport(Glibc)
  import Glibc
#endif

// MARK: - Maps printed with -f json

/// One `{"map": "@x", "aggregation": "...", "entries": [...]}` line of `swtrace -f json`.
struct MapOutput: Decodable, CustomStringConvertible {
  let map: String
  let aggregation: String
  let entries: [Entry]
  var line = ""

  private enum CodingKeys: String, CodingKey { case map, aggregation, entries }

  struct Entry: Decodable {
    let keys: [String: JSONValue]
    /// count, sum, avg, min, max and plain values.
    let value: JSONValue?
    /// hist and lhist.
    let buckets: [Bucket]?
    /// stats.
    let count: Int64?
    let average: Double?
    let total: Int64?

    /// `value` as an integer, when it is one.
    var integer: Int64? {
      if case .integer(let v) = value { return v }
      return nil
    }

    /// Sum of the bucket counts of a histogram entry.
    var sampleCount: Int64 { (buckets ?? []).reduce(0) { $0 + $1.count } }

    /// The key `name` as text: strings as they are, integers in decimal.
    func key(_ name: String) -> String? {
      switch keys[name] {
      case .string(let s): s
      case .integer(let i): "\(i)"
      case .number(let d): "\(d)"
      case .bool(let b): "\(b)"
      default: nil
      }
    }
  }

  struct Bucket: Decodable, Equatable, CustomStringConvertible {
    /// nil for an open lower end (values below an lhist's minimum).
    let min: Int64?
    /// nil for an open upper end (values at or above an lhist's maximum).
    let max: Int64?
    let count: Int64

    var description: String { "[\(min.map(String.init) ?? "...")..\(max.map(String.init) ?? "...")): \(count)" }
  }

  var description: String { line }

  /// The entry whose keys are exactly `keys` (as text), if any.
  func entry(_ keys: [String: String]) -> Entry? {
    entries.first { entry in
      entry.keys.count == keys.count && keys.allSatisfy { entry.key($0.key) == $0.value }
    }
  }

  static func parse(_ line: String) -> MapOutput? {
    guard var map = try? JSONDecoder().decode(MapOutput.self, from: Data(line.utf8)) else { return nil }
    map.line = line
    return map
  }
}

/// What `swtrace -f json` printed on stdout: events, maps, and lines that are neither.
struct JSONTraceOutput {
  var events: [TraceEvent] = []
  var maps: [String: MapOutput] = [:]
  /// Maps in the order printed (a map printed by several interval clauses appears again).
  var mapLines: [MapOutput] = []
  var malformed: [String] = []

  init(_ stdout: String) {
    for line in stdout.split(separator: "\n").map(String.init) where !line.trimmingCharacters(in: .whitespaces).isEmpty {
      if line.hasPrefix("{\"map\"") {
        if let map = MapOutput.parse(line) {
          maps[map.map] = map
          mapLines.append(map)
        } else {
          malformed.append(line)
        }
      } else if case .success(let event) = TraceEvent.parse(line) {
        events.append(event)
      } else {
        malformed.append(line)
      }
    }
  }
}

// MARK: - Paths printed with -f paths-json

/// One `{"skb": "0x...", "ts": N, "complete": bool, "hops": [...]}` line of `-f paths-json`.
struct PacketPath: Decodable, CustomStringConvertible {
  let skb: String
  let ts: UInt64
  let complete: Bool
  let hops: [Hop]
  var line = ""

  private enum CodingKeys: String, CodingKey { case skb, ts, complete, hops }

  struct Hop: Decodable {
    let probe: String
    let dt_ns: UInt64
    let cpu: UInt32
    let values: [String: JSONValue]

    func integer(_ name: String) -> Int64? {
      if case .integer(let v) = values[name] { return v }
      return nil
    }

    func string(_ name: String) -> String? {
      if case .string(let v) = values[name] { return v }
      return nil
    }
  }

  var description: String { line.count > 2000 ? String(line.prefix(2000)) + "..." : line }

  static func parse(_ line: String) -> PacketPath? {
    guard var path = try? JSONDecoder().decode(PacketPath.self, from: Data(line.utf8)) else { return nil }
    path.line = line
    return path
  }
}

// MARK: - BPF objects of a running process

/// The BPF programs, maps and links a process holds, read from /proc/PID/fdinfo.
struct BPFObjects: Equatable, CustomStringConvertible {
  var programs: Set<Int> = []
  var maps: Set<Int> = []
  var links: Set<Int> = []

  var isEmpty: Bool { programs.isEmpty && maps.isEmpty && links.isEmpty }
  var description: String {
    "programs \(programs.sorted()), maps \(maps.sorted()), links \(links.sorted())"
  }

  /// Scans the descriptors of `pid`; empty when the process is gone.
  static func held(by pid: Int32) -> BPFObjects {
    var objects = BPFObjects()
    let fdDirectory = "/proc/\(pid)/fd"
    guard let fds = try? FileManager.default.contentsOfDirectory(atPath: fdDirectory) else { return objects }
    for fd in fds {
      guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fdDirectory)/\(fd)"),
        target.hasPrefix("anon_inode:")
      else { continue }
      guard let info = try? String(contentsOfFile: "/proc/\(pid)/fdinfo/\(fd)", encoding: .utf8) else { continue }
      func field(_ name: String) -> Int? {
        for line in info.split(separator: "\n") where line.hasPrefix(name + ":") {
          return Int(line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces))
        }
        return nil
      }
      if target.contains("bpf_link") || target.contains("bpf-link") {
        if let id = field("link_id") { objects.links.insert(id) }
      } else if target.contains("bpf-prog") {
        if let id = field("prog_id") { objects.programs.insert(id) }
      } else if target.contains("bpf-map") {
        if let id = field("map_id") { objects.maps.insert(id) }
      }
    }
    return objects
  }

  /// Waits until `pid` holds at least `links` BPF links (its probes are attached), at most
  /// `timeout` seconds; returns what it holds then.
  static func waitForAttach(pid: Int32, links: Int, timeout: Double) -> BPFObjects {
    let deadline = Date().addingTimeInterval(timeout)
    var objects = held(by: pid)
    // A process that has exited attaches nothing more: no use waiting for it.
    while objects.links.count < links && Date() < deadline && kill(pid, 0) == 0 && !isZombie(pid) {
      Thread.sleep(forTimeInterval: 0.05)
      objects = held(by: pid)
    }
    return objects
  }

  /// Program and map ids among ours that the kernel still has, waiting up to `timeout`
  /// seconds for them to go (the kernel frees them shortly after the last reference).
  static func stillLoaded(_ objects: BPFObjects, timeout: Double = 5) -> BPFObjects {
    let deadline = Date().addingTimeInterval(timeout)
    var left = objects
    repeat {
      left.programs = left.programs.filter { kernelHas("prog", $0) }
      left.maps = left.maps.filter { kernelHas("map", $0) }
      left.links = left.links.filter { kernelHas("link", $0) }
      if left.isEmpty { return left }
      Thread.sleep(forTimeInterval: 0.1)
    } while Date() < deadline
    return left
  }

  /// Whether `bpftool KIND show id ID` still finds the object.
  static func kernelHas(_ kind: String, _ id: Int) -> Bool {
    guard let bpftool = findExecutable("bpftool"),
      let result = try? ProcessRunner.run(bpftool, [kind, "show", "id", "\(id)"], timeout: 10)
    else { return false }
    return result.succeeded
  }

  /// Names of loaded programs called `swt_*` with one of `ids`, from `bpftool prog show`.
  static func swtracePrograms(among ids: Set<Int>) -> [String] {
    guard let bpftool = findExecutable("bpftool"),
      let result = try? ProcessRunner.run(bpftool, ["prog", "show"], timeout: 20), result.succeeded
    else { return [] }
    return result.stdoutLines.filter { line in
      guard line.contains("name swt_"), let id = Int(line.split(separator: ":").first ?? "") else { return false }
      return ids.contains(id)
    }
  }
}

// MARK: - Namespaces, scratch files, commands

extension NetworkNamespacePair {
  /// The inode number of namespace `namespace`, as `netns` prints it (the N of `net:[N]`).
  func netnsInode(_ namespace: String) throws -> UInt64 {
    let result = try run(in: namespace, ["readlink", "/proc/self/ns/net"], timeout: 10)
    let text = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    guard result.succeeded, text.hasPrefix("net:["), text.hasSuffix("]"),
      let inode = UInt64(text.dropFirst(5).dropLast())
    else {
      throw ProcessRunnerError(description: "cannot read the netns inode of \(namespace): \(result)")
    }
    return inode
  }

  /// Runs `nft` inside `namespace` with the given words, throwing when it fails.
  func nft(in namespace: String, _ words: [String]) throws {
    let result = try run(in: namespace, ["nft"] + words, timeout: 20)
    guard result.succeeded else {
      throw ProcessRunnerError(description: "nft \(words.joined(separator: " ")) failed in \(namespace):\n\(result)")
    }
  }
}

/// A temporary directory removed by `remove()`; holds logs of the traced commands.
final class ScratchDirectory: @unchecked Sendable {
  let url: URL

  init(_ label: String) throws {
    url = FileManager.default.temporaryDirectory
      .appendingPathComponent("swtrace-\(label)-\(getpid())-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  }

  func path(_ name: String) -> String { url.appendingPathComponent(name).path }

  func read(_ name: String) -> String? { try? String(contentsOfFile: path(name), encoding: .utf8) }

  func remove() { try? FileManager.default.removeItem(at: url) }

  deinit { remove() }
}

/// The closing `Samples: N Lost: M` of a run, from the last such stderr line.
func summary(of result: ProcessResult) -> (samples: Int, lost: Int)? {
  result.stderrLines.reversed().lazy.compactMap(parseSummary).first
}

/// The root of the package (where specs/ lives), found from this file's location.
let packageRoot: URL = URL(fileURLWithPath: #filePath)
  .deletingLastPathComponent()  // Support
  .deletingLastPathComponent()  // EndToEndTests
  .deletingLastPathComponent()  // Tests
  .deletingLastPathComponent()

/// The first few lines of a long list, for failure messages.
func firstFew<T>(_ items: [T], _ count: Int = 5) -> String {
  items.prefix(count).map { "\($0)" }.joined(separator: "\n")
}
