import FoundationEssentials
import Glibc
import SwtraceSyntax
import Synchronization

/// Writes to stdout and stderr. Diagnostics go through the one renderer; colour only on a
/// terminal and never with NO_COLOR.
enum Console {
  static var stderrIsTerminal: Bool { isatty(2) == 1 }

  static var useColor: Bool {
    stderrIsTerminal && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
  }

  static func error(_ message: String) {
    let label = useColor ? "\u{1B}[1;31merror:\u{1B}[0m" : "error:"
    writeError("swtrace: \(label) \(message)\n")
  }

  static func note(_ message: String) {
    writeError("swtrace: \(message)\n")
  }

  /// `-q`: progress messages (attaching, the backend in use, where metrics are served) are
  /// left out; warnings, errors and anything lost are still said.
  static let quiet = Atomic<Bool>(false)

  /// A message about progress, left out with `-q`.
  static func progress(_ message: String) {
    if !quiet.load(ordering: .relaxed) { note(message) }
  }

  /// At most this many diagnostics are printed: a binary file given as a spec must not turn
  /// into megabytes of errors.
  static let diagnosticLimit = 20

  static func diagnostics(_ diagnostics: [Diagnostic], in file: SourceFile) {
    writeError(DiagnosticRenderer(useColor: useColor).render(Array(diagnostics.prefix(diagnosticLimit)), in: file))
    if diagnostics.count > diagnosticLimit {
      let errors = diagnostics.dropFirst(diagnosticLimit).filter { $0.severity == .error }.count
      writeError("swtrace: \(diagnostics.count - diagnosticLimit) more diagnostics (\(errors) errors) not shown\n")
    }
  }

  /// Writes all of `text` to stderr; a stderr that cannot be written to is not an error of its own.
  static func writeError(_ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
      let written = bytes.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
      if written < 0 && errno == EINTR { continue }
      guard written > 0 else { return }
      bytes = bytes.dropFirst(written)
    }
  }
}
