import Foundation

/// BTF of other kernels, checked in under Tests/Fixtures/btf (see its README), so type
/// checking can be tested against kernels this machine does not run.
public enum Fixtures {
  public static let directory: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/btf")

  /// The repository root, for specs/ and grammar/.
  public static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

  public static let kernelReleases = ["6.1.0-56-amd64", "6.1.0-56-rt-amd64", "6.12.117+deb12-amd64"]

  private static let lock = NSLock()

  /// Path of the decompressed raw BTF of a fixture kernel, decompressed once per run.
  public static func btfPath(_ release: String) throws -> String {
    lock.lock()
    defer { lock.unlock() }
    let cache = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("swtrace-fixtures-\(getuid())")
    try FileManager.default.createDirectory(at: cache, withIntermediateDirectories: true)
    let output = cache.appendingPathComponent("\(release).btf")
    if FileManager.default.fileExists(atPath: output.path) { return output.path }
    let partial = output.appendingPathExtension("partial-\(getpid())")
    FileManager.default.createFile(atPath: partial.path, contents: nil)
    let handle = try FileHandle(forWritingTo: partial)
    let xz = Process()
    xz.executableURL = URL(fileURLWithPath: "/usr/bin/xz")
    xz.arguments = ["-dc", directory.appendingPathComponent("\(release).btf.xz").path]
    xz.standardOutput = handle
    try xz.run()
    xz.waitUntilExit()
    try handle.close()
    guard xz.terminationStatus == 0 else { throw FixtureError.decompressionFailed(release) }
    guard rename(partial.path, output.path) == 0 else { throw FixtureError.decompressionFailed(release) }
    return output.path
  }

  /// The facts recorded about a fixture kernel when it was extracted (offsets, sizes, counts).
  public static func facts(_ release: String) throws -> FixtureFacts {
    let data = try Data(contentsOf: directory.appendingPathComponent("\(release).json"))
    return try JSONDecoder().decode(FixtureFacts.self, from: data)
  }

  /// Tracepoint name -> category of a fixture kernel.
  public static func tracepointCategories(_ release: String) throws -> [String: String] {
    let text = try String(contentsOf: directory.appendingPathComponent("\(release).tracepoints"), encoding: .utf8)
    var result: [String: String] = [:]
    for line in text.split(separator: "\n") {
      let parts = line.split(separator: ":", maxSplits: 1)
      if parts.count == 2 { result[String(parts[1])] = String(parts[0]) }
    }
    return result
  }
}

public enum FixtureError: Error { case decompressionFailed(String) }

public struct FixtureFacts: Decodable, Sendable {
  public struct Stats: Decodable, Sendable {
    public var btf_trace_typedefs: Int
    public var funcs_with_skb_param: Int
    public var offsets: [String: Int]
    public var sizeof: [String: Int]
  }
  public var release: String
  public var has_kprobes: Bool
  public var has_fentry: Bool
  public var stats: Stats
}
