import FoundationEssentials
import Glibc
import Runtime
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

  /// Prints the whole output of a command that prints once (`-l`, `fmt`, `--dump-bpf`) on
  /// standard output; a failed write is said in one sentence and ends swtrace with status 2.
  static func printOnce(_ text: String, contents: String) throws {
    if let failure = DescriptorOutput.printOnce(text, contents: contents) {
      error(failure)
      throw ExitStatus.systemRefused
    }
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

  /// Writes all of `text` to stderr. A stderr that cannot be written to (closed, a full disk)
  /// is not an error of its own; one that takes nothing for a second (a stalled
  /// `2>&1 | less`) loses the message rather than hold swtrace, and after that a message is
  /// written only if stderr takes it at once.
  static func writeError(_ text: String) {
    errorLock.withLock { _ in
      let output = standardError
      output.append(text.utf8, events: 0)
      if !output.drain(until: .now + (stderrStalled ? .zero : .seconds(1)), stall: nil) {
        output.abandon()
        stderrStalled = true
      }
    }
  }

  private static let errorLock = Mutex(())
  nonisolated(unsafe) private static let standardError = DescriptorOutput(descriptor: 2, capacity: 1 << 16)
  nonisolated(unsafe) private static var stderrStalled = false
}
