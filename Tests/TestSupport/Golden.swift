import Foundation
public import Testing

/// Golden files: expected output checked into the repository next to the tests, for
/// diagnostics and disassembly. A missing file fails like a differing one; only
/// `SWTRACE_RECORD=1` writes them, after an intended change, for review in the diff.
public enum Golden {
  public static var isRecording: Bool { ProcessInfo.processInfo.environment["SWTRACE_RECORD"] == "1" }

  /// The `Golden` directory beside the test file that asks.
  public static func directory(besides filePath: String = #filePath) -> URL {
    URL(fileURLWithPath: filePath).deletingLastPathComponent().appendingPathComponent("Golden")
  }

  /// Expects `actual` to be the text of golden file `name` in `directory`; with
  /// `SWTRACE_RECORD=1`, writes it there instead.
  public static func check(
    _ actual: String, name: String, directory: URL, sourceLocation: SourceLocation = #_sourceLocation
  ) throws {
    let url = directory.appendingPathComponent(name)
    if isRecording {
      try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
      try actual.write(to: url, atomically: true, encoding: .utf8)
      return
    }
    guard let expected = try? String(contentsOf: url, encoding: .utf8) else {
      Issue.record(
        "golden file \(name) is missing from \(directory.path); record it with SWTRACE_RECORD=1 and review it",
        sourceLocation: sourceLocation)
      return
    }
    #expect(
      actual == expected, "golden \(name) differs; rerun with SWTRACE_RECORD=1 if the change is intended",
      sourceLocation: sourceLocation)
  }
}
