import Glibc

/// Where a trace writes its lines: events, maps, BEGIN/END text. The run stops when nothing
/// more can be written (`isClosed`).
public protocol LineOutput: AnyObject {
  func writeLine(_ line: String)
  func flush()
  var isClosed: Bool { get }
}

/// Buffered output to a file descriptor: standard output by default, or the file of
/// `-o FILE` (lines) or `-w FILE` (the bytes of a pcapng capture). Every write is checked: a reader that went away (`| head -1`, EPIPE) ends the
/// run cleanly, any other failure (a full disk, an I/O error) ends it with `failure`, a
/// sentence naming the destination, so output is never lost silently.
public final class DescriptorOutput: LineOutput {
  /// How the destination is named in messages: `'trace.json'` or `standard output`.
  public let name: String
  /// What is written there, for messages.
  public let contents: OutputContents
  private let descriptor: Int32
  private let ownsDescriptor: Bool
  private var buffer: [UInt8] = []
  private var isFinished = false
  /// Nothing more can be written: the reader went away, or writing failed (`failure`).
  public private(set) var isClosed = false
  /// Why writing failed, as one sentence, or nil (a closed pipe is not a failure).
  public private(set) var failure: String?

  public convenience init(descriptor: Int32 = 1, contents: OutputContents = .trace) {
    self.init(
      descriptor: descriptor, name: descriptor == 1 ? "standard output" : descriptor == 2 ? "standard error" : "descriptor \(descriptor)", owns: false,
      contents: contents)
  }

  private init(descriptor: Int32, name: String, owns: Bool, contents: OutputContents) {
    self.descriptor = descriptor
    self.name = name
    self.contents = contents
    self.ownsDescriptor = owns
    // A closed pipe must be an EPIPE to handle here, not a SIGPIPE that kills the process.
    signal(SIGPIPE, SIG_IGN)
    buffer.reserveCapacity(1 << 16)
  }

  /// Creates (or truncates) `path` for writing, as bpftrace's `-o FILE` does. The file is
  /// closed on exec, so the `-c` command does not inherit it.
  public static func create(path: String, contents: OutputContents = .trace) -> Result<DescriptorOutput, OutputFileError> {
    let descriptor = path.withCString { open($0, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) }
    guard descriptor >= 0 else { return .failure(OutputFileError(path: path, code: errno, contents: contents)) }
    return .success(DescriptorOutput(descriptor: descriptor, name: "'\(path)'", owns: true, contents: contents))
  }

  /// Whether this is standard output, which then carries nothing else.
  public var isStandardOutput: Bool { descriptor == 1 }

  /// Appends bytes as they are (a capture's pcapng blocks).
  public func write(_ bytes: [UInt8]) {
    guard !isClosed else { return }
    buffer.append(contentsOf: bytes)
    if buffer.count >= 1 << 15 { flush() }
  }

  public func writeLine(_ line: String) {
    guard !isClosed else { return }
    buffer.append(contentsOf: line.utf8)
    buffer.append(UInt8(ascii: "\n"))
    if buffer.count >= 1 << 15 { flush() }
  }

  public func flush() {
    guard !isClosed, !isFinished, !buffer.isEmpty else {
      buffer.removeAll(keepingCapacity: true)
      return
    }
    var offset = 0
    while offset < buffer.count {
      let written = buffer[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
      if written < 0 {
        let code = errno
        if code == EINTR { continue }
        // The reader went away (`| head -1`): stop writing; tracing ends cleanly.
        if code != EPIPE { failure = "cannot write \(contents.noun) to \(name): \(String(cString: strerror(code)))" }
        isClosed = true
        break
      }
      offset += written
    }
    buffer.removeAll(keepingCapacity: true)
  }

  /// Flushes, then closes a file of `-o FILE`; a failing close (as on a network file system
  /// that reports a full disk only then) is a failure too. Safe to call more than once.
  public func finish() {
    flush()
    guard ownsDescriptor, !isFinished else { return }
    isFinished = true
    let result = Glibc.close(descriptor)
    let code = errno
    // After EINTR the descriptor is closed all the same on Linux; nothing was lost.
    if result != 0, code != EINTR, failure == nil {
      failure = "cannot write \(contents.noun) to \(name): \(String(cString: strerror(code)))"
    }
  }

  deinit { finish() }
}

/// What a `DescriptorOutput` carries, as messages name it.
public enum OutputContents: Sendable {
  /// Events and maps (`-o FILE`).
  case trace
  /// The pcapng packet capture (`-w FILE`).
  case capture

  var noun: String { self == .trace ? "the trace output" : "the packet capture" }
  var option: String { self == .trace ? "-o" : "-w" }
}

/// `-o FILE` or `-w FILE` could not be opened.
public struct OutputFileError: Error, Sendable, CustomStringConvertible {
  public var path: String
  public var code: Int32
  public var contents: OutputContents = .trace
  public var description: String {
    "cannot open '\(path)' for \(contents.noun) (\(contents.option)): \(String(cString: strerror(code)))"
  }
}
