import Foundation

/// Golden files: expected output checked into the repository next to the tests. A missing
/// file, or `SWTRACE_RECORD=1`, records the actual text instead of comparing.
public enum Golden {
  public static var isRecording: Bool { ProcessInfo.processInfo.environment["SWTRACE_RECORD"] == "1" }

  /// Returns the expected text, or nil after recording `actual` as the new golden text.
  public static func expected(_ actual: String, name: String, directory: URL) throws -> String? {
    let url = directory.appendingPathComponent(name)
    if isRecording || !FileManager.default.fileExists(atPath: url.path) {
      try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
      try actual.write(to: url, atomically: true, encoding: .utf8)
      return nil
    }
    return try String(contentsOf: url, encoding: .utf8)
  }
}
