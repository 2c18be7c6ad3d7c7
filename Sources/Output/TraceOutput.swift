import Glibc

/// Where a run's output goes (events, map dumps, printf text): standard output, or the file
/// named by `-o FILE`. Messages about the run go to stderr and never come here.
///
/// Buffered, and every write checked: a reader that went away (`| head -1`, EPIPE) ends the
/// run cleanly (`isClosed`), any other failure (a full disk, an I/O error) ends it with a
/// sentence naming the destination (`failure`), so output is never lost silently.
public final class TraceOutput {
  /// How the destination is named in messages: `'trace.json'` or `standard output`.
  public let name: String
  private let descriptor: Int32
  private let ownsDescriptor: Bool
  private var buffer: [UInt8] = []
  private var isFinished = false
  /// The reader of a pipe went away: nothing more can be delivered, and that is not an error.
  public private(set) var isClosed = false
  /// Why writing failed, as one sentence, or nil.
  public private(set) var failure: String?

  /// Whether the run should end because nothing more can be written.
  public var hasEnded: Bool { isClosed || failure != nil }

  private init(name: String, descriptor: Int32, ownsDescriptor: Bool) {
    self.name = name
    self.descriptor = descriptor
    self.ownsDescriptor = ownsDescriptor
    // A closed pipe must be an EPIPE to handle here, not a SIGPIPE that kills the process.
    signal(SIGPIPE, SIG_IGN)
    buffer.reserveCapacity(1 << 16)
  }

  /// Standard output.
  public static func standardOutput() -> TraceOutput {
    TraceOutput(name: "standard output", descriptor: 1, ownsDescriptor: false)
  }

  /// Creates (or truncates) `path` for writing, as bpftrace's `-o FILE` does. The file is
  /// closed on exec, so the `-c` command does not inherit it.
  public static func create(path: String) -> Result<TraceOutput, TraceOutputError> {
    let descriptor = path.withCString { open($0, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) }
    guard descriptor >= 0 else { return .failure(TraceOutputError(path: path, code: errno)) }
    return .success(TraceOutput(name: "'\(path)'", descriptor: descriptor, ownsDescriptor: true))
  }

  public func writeLine(_ line: String) {
    guard !hasEnded else { return }
    buffer.append(contentsOf: line.utf8)
    buffer.append(UInt8(ascii: "\n"))
    if buffer.count >= 1 << 15 { flush() }
  }

  /// Writes out what is buffered.
  public func flush() {
    guard !hasEnded, !isFinished, !buffer.isEmpty else {
      buffer.removeAll(keepingCapacity: true)
      return
    }
    var offset = 0
    while offset < buffer.count {
      let written = buffer[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
      if written < 0 {
        let code = errno
        if code == EINTR { continue }
        if code == EPIPE {
          isClosed = true
        } else {
          failure = "cannot write the trace output to \(name): \(String(cString: strerror(code)))"
        }
        break
      }
      offset += written
    }
    buffer.removeAll(keepingCapacity: true)
  }

  /// Flushes, then closes a file of `-o FILE`; a failing close (as on a network file system
  /// that reports a full disk only then) is a failure too.
  /// Safe to call more than once.
  public func finish() {
    flush()
    guard ownsDescriptor, !isFinished else { return }
    isFinished = true
    let result = Glibc.close(descriptor)
    let code = errno
    // After EINTR the descriptor is closed all the same on Linux; nothing was lost.
    if result != 0, code != EINTR, failure == nil {
      failure = "cannot write the trace output to \(name): \(String(cString: strerror(code)))"
    }
  }

  deinit { finish() }
}

/// `-o FILE` could not be opened.
public struct TraceOutputError: Error, Sendable, CustomStringConvertible {
  public var path: String
  public var code: Int32
  public var description: String {
    "cannot open '\(path)' for the trace output (-o): \(String(cString: strerror(code)))"
  }
}
