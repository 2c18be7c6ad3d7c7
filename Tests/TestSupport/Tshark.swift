import Foundation
public import Testing

/// tshark's dissection of a capture file, the outside reading of what swtrace wrote: each
/// packet's fields as `tshark -T json` gives them, by field name.
public struct TsharkPacket: Sendable, CustomStringConvertible {
  /// Every value of each field, in the order tshark printed them (a field can repeat).
  public var fields: [String: [String]]

  public subscript(_ name: String) -> String? { fields[name]?.first }

  public func integer(_ name: String) -> Int? { self[name].flatMap { Int($0) } }

  /// A bytes field (`data.data`), which tshark's JSON writes as hex pairs between colons.
  public func bytes(_ name: String) -> [UInt8]? {
    guard let text = self[name] else { return nil }
    let pairs = text.split(separator: ":")
    let bytes = pairs.compactMap { UInt8($0, radix: 16) }
    return bytes.count == pairs.count ? bytes : nil
  }

  public var description: String {
    fields.keys.sorted().filter { !$0.hasPrefix("_") }.map { "\($0)=\(fields[$0]!.joined(separator: ","))" }
      .joined(separator: " ")
  }
}

/// Runs tshark (Debian's `tshark` package, which `make deps` installs).
public enum Tshark {
  public static let path: String? = ["/usr/bin/tshark", "/usr/local/bin/tshark"].first {
    FileManager.default.isExecutableFile(atPath: $0)
  }

  public static let capinfosPath: String? = ["/usr/bin/capinfos", "/usr/local/bin/capinfos"].first {
    FileManager.default.isExecutableFile(atPath: $0)
  }

  /// Why tshark cannot be used here, or nil.
  public static var missing: String? {
    path == nil || capinfosPath == nil ? "tshark and capinfos are not installed (apt-get install tshark)" : nil
  }

  public struct Failure: Error, CustomStringConvertible {
    public var description: String
  }

  /// Dissects `file` (`-r FILE -T json`, with `extra` arguments such as a display filter).
  public static func packets(_ file: String, _ extra: [String] = []) throws -> [TsharkPacket] {
    let output = try run(path, ["-r", file, "-T", "json"] + extra)
    return try parse(output)
  }

  /// The packets of tshark's `-T json` output.
  public static func parse(_ output: String) throws -> [TsharkPacket] {
    guard let list = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]] else {
      throw Failure(description: "tshark's output is not a JSON list:\n\(output.prefix(2000))")
    }
    return list.map { packet in
      var fields: [String: [String]] = [:]
      func walk(_ value: Any, key: String) {
        switch value {
        case let object as [String: Any]:
          for (name, inner) in object { walk(inner, key: name) }
        case let array as [Any]:
          for inner in array { walk(inner, key: key) }
        case let text as String:
          fields[key, default: []].append(text)
        default:
          break
        }
      }
      walk(packet["_source"] ?? [:], key: "")
      return TsharkPacket(fields: fields)
    }
  }

  /// `capinfos` on `file`: what it says, line by line.
  public static func capinfos(_ file: String) throws -> String {
    try run(capinfosPath, [file])
  }

  /// Runs `tool` with `arguments` for at most `timeout` seconds; its standard output, or an
  /// error with what it said when it fails.
  public static func run(_ tool: String?, _ arguments: [String], timeout: Double = 60) throws -> String {
    guard let tool else { throw Failure(description: missing ?? "tool missing") }
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swtrace-tshark-\(getpid())-\(UUID())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let out = directory.appendingPathComponent("out")
    let err = directory.appendingPathComponent("err")
    FileManager.default.createFile(atPath: out.path, contents: nil)
    FileManager.default.createFile(atPath: err.path, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: tool)
    process.arguments = arguments
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = try FileHandle(forWritingTo: err)
    process.standardInput = FileHandle.nullDevice
    let done = DispatchSemaphore(value: 0)
    process.terminationHandler = { _ in done.signal() }
    try process.run()
    if done.wait(timeout: .now() + timeout) == .timedOut {
      process.terminate()
      _ = done.wait(timeout: .now() + 5)
      throw Failure(description: "\(tool) \(arguments.joined(separator: " ")) ran past \(timeout) s")
    }
    let said = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
    let complaint = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
    guard process.terminationStatus == 0 else {
      throw Failure(
        description: "\(tool) \(arguments.joined(separator: " ")) exited \(process.terminationStatus):\n\(complaint)\n\(said.prefix(2000))")
    }
    return said
  }
}

extension Trait where Self == ConditionTrait {
  /// tshark and capinfos, to read back what swtrace wrote.
  public static var needsTshark: Self {
    .requires("needs tshark (apt-get install tshark)") { Tshark.missing }
  }
}
