import FoundationEssentials
import Glibc
import SwtraceSyntax

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

/// Buffered standard output that reports a closed pipe instead of dying of SIGPIPE.
final class OutputStream {
  private var buffer: [UInt8] = []
  private(set) var isClosed = false

  init() {
    signal(SIGPIPE, SIG_IGN)
    buffer.reserveCapacity(1 << 16)
  }

  func writeLine(_ line: String) {
    guard !isClosed else { return }
    buffer.append(contentsOf: line.utf8)
    buffer.append(UInt8(ascii: "\n"))
    if buffer.count >= 1 << 15 { flush() }
  }

  func flush() {
    guard !isClosed, !buffer.isEmpty else { return }
    var offset = 0
    while offset < buffer.count {
      let written = buffer[offset...].withUnsafeBytes { Glibc.write(1, $0.baseAddress, $0.count) }
      if written < 0 {
        if errno == EINTR { continue }
        // The reader went away (`| head -1`): stop writing; tracing ends cleanly.
        isClosed = true
        break
      }
      offset += written
    }
    buffer.removeAll(keepingCapacity: true)
  }
}
