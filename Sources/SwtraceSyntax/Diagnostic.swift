/// A stable identifier for a kind of diagnostic, so tests can match without depending on wording.
public struct DiagnosticID: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
  public let rawValue: String
  public init(_ rawValue: String) { self.rawValue = rawValue }
  public init(stringLiteral value: String) { self.rawValue = value }
  public var description: String { rawValue }
}

/// One problem found in a spec, by any stage, with the source range it is about.
public struct Diagnostic: Error, Hashable, Sendable {
  public enum Severity: String, Sendable { case error, warning, note }

  /// A secondary remark: `note:` with its own range (such as "block opened here"), or `help:`.
  public struct Note: Hashable, Sendable {
    public enum Kind: String, Sendable { case note, help }
    public var kind: Kind
    public var message: String
    public var range: SourceRange?
    public init(_ kind: Kind, _ message: String, at range: SourceRange? = nil) {
      self.kind = kind
      self.message = message
      self.range = range
    }
  }

  public var id: DiagnosticID
  public var severity: Severity
  public var message: String
  public var range: SourceRange
  public var notes: [Note]

  public init(
    _ id: DiagnosticID, _ message: String, at range: SourceRange,
    severity: Severity = .error, notes: [Note] = []
  ) {
    self.id = id
    self.severity = severity
    self.message = message
    self.range = range
    self.notes = notes
  }

  public func with(_ note: Note) -> Diagnostic {
    var copy = self
    copy.notes.append(note)
    return copy
  }
}

/// Every diagnostic of one compilation, in one error value, so a stage can report several at once.
public struct DiagnosticList: Error, Sendable {
  public var diagnostics: [Diagnostic]
  public init(_ diagnostics: [Diagnostic]) { self.diagnostics = diagnostics }
  public var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }
}

/// Prints diagnostics as `FILE:LINE:COL: error: MESSAGE`, the source line, and a caret line.
///
/// This is the one place that formats diagnostics; colour is the caller's decision
/// (a terminal and no `NO_COLOR`).
public struct DiagnosticRenderer: Sendable {
  public var useColor: Bool
  public init(useColor: Bool = false) { self.useColor = useColor }

  public func render(_ diagnostic: Diagnostic, in file: SourceFile) -> String {
    var out = header(
      file: file, range: diagnostic.range, label: diagnostic.severity.rawValue,
      message: diagnostic.message, color: diagnostic.severity == .error ? "31" : "33")
    out += snippet(file: file, range: diagnostic.range)
    for note in diagnostic.notes {
      if let range = note.range {
        out += header(
          file: file, range: range, label: note.kind.rawValue, message: note.message, color: "36")
        out += snippet(file: file, range: range)
      } else {
        out += paint("\(note.kind.rawValue):", "36") + " \(TerminalText.escaped(note.message, keeping: ["\n", "\t"]))\n"
      }
    }
    return out
  }

  public func render(_ diagnostics: [Diagnostic], in file: SourceFile) -> String {
    diagnostics.map { render($0, in: file) }.joined()
  }

  private func header(
    file: SourceFile, range: SourceRange, label: String, message: String, color: String
  ) -> String {
    let (line, column) = file.location(of: range.start)
    // The file's name and the message may hold spec text: escaped like any untrusted text.
    return paint("\(TerminalText.escaped(file.name)):\(line):\(column):", "1") + " " + paint("\(label):", "1;\(color)")
      + " " + paint(TerminalText.escaped(message, keeping: ["\n", "\t"]), "1") + "\n"
  }

  private func snippet(file: SourceFile, range: SourceRange) -> String {
    let (line, column) = file.location(of: range.start)
    let text = file.lineText(line)
    let (endLine, endColumn) = file.location(of: range.end)
    let width: Int
    if endLine == line {
      width = max(1, endColumn - column)
    } else {
      width = max(1, text.count - column + 1)
    }
    // The line is shown with its control characters escaped (a spec can hold any bytes); the
    // caret is placed and sized by the escaped text, so it stays under the right characters.
    func shown(_ part: Substring) -> String { TerminalText.escaped(String(part), keeping: ["\t"]) }
    let gutter = String(line)
    let pad = String(repeating: " ", count: gutter.count)
    // Very long lines (minified or generated specs) are cut to a window around the range.
    if text.count > 200 {
      let start = max(0, column - 80)
      let window = text.dropFirst(start).prefix(160)
      let before = shown(window.prefix(max(0, column - 1 - start)))
      let marked = shown(window.dropFirst(max(0, column - 1 - start)).prefix(width))
      let lead = (start > 0 ? "..." : "") + before
      let tail = start + 160 < text.count ? "..." : ""
      return " \(gutter) | \(lead)\(shown(window.dropFirst(max(0, column - 1 - start))))\(tail)\n \(pad) | "
        + String(repeating: " ", count: lead.count)
        + paint(String(repeating: "^", count: max(1, marked.count)), "1;32") + "\n"
    }
    let before = shown(text.prefix(column - 1))
    let marked = shown(text.dropFirst(column - 1).prefix(width))
    // Tabs are kept in the caret line so the caret stays under the right character.
    let lead = String(before.map { $0 == "\t" ? "\t" : " " })
    return " \(gutter) | \(shown(text[...]))\n \(pad) | \(lead)"
      + paint(String(repeating: "^", count: max(1, marked.count)), "1;32") + "\n"
  }

  private func paint(_ text: String, _ code: String) -> String {
    useColor ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text
  }
}
