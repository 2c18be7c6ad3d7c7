/// A half-open range of UTF-8 byte offsets into one `SourceFile`.
///
/// Positions stay byte offsets through every stage; they become line and column only
/// when a diagnostic is printed.
public struct SourceRange: Hashable, Sendable, CustomStringConvertible {
  public var start: Int
  public var end: Int

  public init(_ start: Int, _ end: Int) {
    self.start = start
    self.end = max(start, end)
  }

  /// An empty range at one offset, for "expected X here" diagnostics.
  public static func at(_ offset: Int) -> SourceRange { SourceRange(offset, offset) }

  /// The smallest range covering both.
  public func union(_ other: SourceRange) -> SourceRange {
    SourceRange(min(start, other.start), max(end, other.end))
  }

  public var description: String { "\(start)..<\(end)" }
}

/// The text of one spec (a file, or the argument of `-e`) with its name for diagnostics.
public struct SourceFile: Sendable {
  public let name: String
  public let text: String
  /// UTF-8 bytes of `text`; the lexer and ranges work on these.
  public let bytes: [UInt8]
  private let lineStarts: [Int]

  public init(name: String, text: String) {
    self.name = name
    self.text = text
    self.bytes = Array(text.utf8)
    var starts = [0]
    for (index, byte) in bytes.enumerated() where byte == UInt8(ascii: "\n") {
      starts.append(index + 1)
    }
    self.lineStarts = starts
  }

  /// 1-based line and column (column counted in characters) of a byte offset.
  public func location(of offset: Int) -> (line: Int, column: Int) {
    let clamped = min(max(offset, 0), bytes.count)
    var low = 0
    var high = lineStarts.count - 1
    while low < high {
      let mid = (low + high + 1) / 2
      if lineStarts[mid] <= clamped { low = mid } else { high = mid - 1 }
    }
    let lineStart = lineStarts[low]
    let prefix = bytes[lineStart..<clamped]
    let column = String(decoding: prefix, as: UTF8.self).count + 1
    return (low + 1, column)
  }

  /// The text of line `line` (1-based) without its newline.
  public func lineText(_ line: Int) -> String {
    guard line >= 1, line <= lineStarts.count else { return "" }
    let start = lineStarts[line - 1]
    var end = line < lineStarts.count ? lineStarts[line] - 1 : bytes.count
    if end > start, bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
    return String(decoding: bytes[start..<max(start, end)], as: UTF8.self)
  }

  /// The source text a range covers, used for JSON keys and messages (`print(len)` -> "len").
  public func text(of range: SourceRange) -> String {
    let start = min(max(range.start, 0), bytes.count)
    let end = min(max(range.end, start), bytes.count)
    return String(decoding: bytes[start..<end], as: UTF8.self)
  }
}
