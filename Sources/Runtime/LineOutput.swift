import Glibc

/// Where a trace writes: event lines, packet paths, maps, BEGIN/END text (and, through
/// `append(_:events:)`, any other bytes a writer produces). The run loop never waits for a
/// destination longer than it allows: it asks whether the buffer is full (then it stops
/// reading events and the kernel counts what it cannot hold as lost), which descriptor to
/// wait on for room, and at a stop it gives the destination a bounded time to take what is
/// buffered, then counts the events it did not take as lost.
///
/// A new writer (another file, another format) plugs in by writing through a
/// `DescriptorOutput` of its own, or by implementing this protocol; `TraceRun` drives every
/// output it has the same way.
public protocol LineOutput: AnyObject {
  /// Appends `bytes`; `events` is how many trace events they carry (0 for maps and text), so
  /// that what is never written is counted.
  func append(_ bytes: some Collection<UInt8>, events: Int)
  /// `append(_:events:)` for bytes in memory: the event path's, one memcpy into the buffer.
  func append(contiguous bytes: UnsafeRawBufferPointer, events: Int)
  /// Writes what the destination takes now, without waiting for it (a regular file takes
  /// everything).
  func flush()
  /// Nothing more can be written: the reader went away, or writing failed.
  var isClosed: Bool { get }
  /// Why writing failed, as one sentence naming the destination; nil while it works and when
  /// the reader just went away (`| head -1`).
  var failure: String? { get }
  /// The buffer holds as much as it may: the run loop stops reading events until it drains.
  var isFull: Bool { get }
  /// Bytes appended and not written yet.
  var pendingBytes: Int { get }
  /// The descriptor to wait on (for POLLOUT) while bytes wait for room; nil when none wait.
  var waitingDescriptor: Int32? { get }
  /// The descriptor of a pipe or FIFO destination, on which poll(2) reports POLLERR once its
  /// reader has gone; nil for other destinations.
  var pipeDescriptor: Int32? { get }
  /// The reader of `pipeDescriptor` has gone (poll said POLLERR): closes the output as an
  /// EPIPE would, before anything more is written.
  func readerLeft()
  /// Writes what is buffered, waiting for the destination to take it until `deadline`, or
  /// until it has taken nothing for `stall`; true when everything was written.
  func drain(until deadline: ContinuousClock.Instant, stall: Duration?) -> Bool
  /// Drops what is still buffered (a destination that took nothing within its time); the
  /// events it carried are counted in `lostEvents`. Every append is a whole line (or capture
  /// block) for its reader: one the destination took only part of keeps its rest, written
  /// before anything appended later, so that what follows never continues a cut line; its
  /// events count as lost until that rest is written.
  func abandon()
  /// Events carried by bytes written in full.
  var writtenEvents: UInt64 { get }
  /// Events appended but never written: writing failed, or the destination did not take them
  /// in time. Events appended after the reader went away are neither written nor lost.
  var lostEvents: UInt64 { get }
}

extension LineOutput {
  /// Appends one line and its newline.
  public func writeLine(_ line: String, events: Int = 0) {
    var line = line
    line.append("\n")
    line.withUTF8 { append($0, events: events) }
  }

  public func append(contiguous bytes: UnsafeRawBufferPointer, events: Int) { append(bytes, events: events) }
  public var isFull: Bool { false }
  public var pendingBytes: Int { 0 }
  public var waitingDescriptor: Int32? { nil }
  public var pipeDescriptor: Int32? { nil }
  public func readerLeft() {}
  public var failure: String? { nil }
  public func drain(until deadline: ContinuousClock.Instant, stall: Duration?) -> Bool {
    flush()
    return true
  }
  public func abandon() {}
}

/// Buffered output to a file descriptor: standard output or error, or the file of `-o FILE`
/// (lines) or `-w FILE` (the bytes of a pcapng capture). Every write is checked: a reader
/// that went away (EPIPE) ends the run cleanly, any other failure (a full disk, an I/O error,
/// a closed descriptor) ends it with `failure`, a sentence naming the destination, so output
/// is never lost silently.
///
/// Writing never blocks the caller on a reader that stalls: for a pipe, FIFO or terminal the
/// bytes go through a private non-blocking open file description of the same object (the
/// shared one is left blocking, so a `-c` command writing to the same pipe is not disturbed),
/// for a socket through `send(MSG_DONTWAIT)`; what the destination cannot take waits in a
/// bounded buffer, and `waitingDescriptor` is what to poll for room. Regular files and
/// devices such as /dev/null take every write at once.
public final class DescriptorOutput: LineOutput {
  /// How the destination is named in messages: `'trace.json'` or `standard output`.
  public let name: String
  /// What is written there, for messages: "the trace output", "the probe list".
  public let contents: String
  /// The descriptor as given: `-o FILE`'s is closed by `finish()`.
  private let descriptor: Int32
  private let ownsDescriptor: Bool
  private let mode: WriteMode
  /// The destination is a pipe or FIFO (not a terminal): its reader can go away.
  private let isPipe: Bool
  /// Bytes appended and not yet written are `buffer[head...]`.
  private var buffer: [UInt8] = []
  private var head = 0
  /// The buffer is full at this many pending bytes (one line may go beyond).
  public let capacity: Int
  /// Bytes appended and written since the start, to match events to what was written.
  private var appendedBytes: UInt64 = 0
  private var writtenBytes: UInt64 = 0
  /// Each append not yet written in full, oldest first from `marksHead`: an append is what a
  /// reader must get whole (a line, a capture block).
  private var marks: [Appended] = []
  private var marksHead = 0
  /// The end of the last append written in full: `writtenBytes` beyond it means the
  /// destination holds the first part of the next one.
  private var settledEnd: UInt64 = 0
  private var isFinished = false
  public private(set) var writtenEvents: UInt64 = 0
  public private(set) var lostEvents: UInt64 = 0
  /// Nothing more can be written: the reader went away, or writing failed (`failure`).
  public private(set) var isClosed = false
  public private(set) var failure: String?
  /// `finish()` dropped the rest of an append the destination had taken part of: what it
  /// holds ends partway through a line (or capture block). Nothing was written after it.
  public private(set) var endsCut = false

  /// One append: where it ends (in `appendedBytes`), the events it carries, and whether they
  /// are counted as lost already (the rest of a cut append kept by `abandon()`), so that
  /// writing it moves them back to written.
  private struct Appended {
    var end: UInt64
    var events: Int
    var countedLost = false
  }

  /// How bytes reach the destination.
  private enum WriteMode {
    /// write(2) on the descriptor, which never waits long: a regular file, /dev/null.
    case direct
    /// write(2) on a private non-blocking description of the pipe, FIFO or terminal.
    case nonBlocking(Int32)
    /// send(2) with MSG_DONTWAIT: a socket (systemd's journal, for one).
    case socket
    /// A pipe that could not be opened again: wait for room with poll(2), then write at most
    /// PIPE_BUF bytes, which a pipe with room takes without waiting.
    case polledPipe
  }

  /// Standard output (or another inherited descriptor), checked at once: a descriptor that
  /// was closed when swtrace started fails here, before anything is traced.
  public convenience init(descriptor: Int32 = 1, capacity: Int = 4 << 20, contents: String = "the trace output") {
    let name =
      switch descriptor {
      case 1: "standard output"
      case 2: "standard error"
      default: "descriptor \(descriptor)"
      }
    self.init(descriptor: descriptor, name: name, owns: false, capacity: capacity, contents: contents)
    if StandardStreams.wasClosed(descriptor) {
      fail("it was closed when swtrace started")
    }
  }

  private init(descriptor: Int32, name: String, owns: Bool, capacity: Int, contents: String) {
    self.descriptor = descriptor
    self.name = name
    self.contents = contents
    self.ownsDescriptor = owns
    self.capacity = capacity
    // A closed pipe must be an EPIPE to handle here, not a SIGPIPE that kills the process.
    signal(SIGPIPE, SIG_IGN)
    var reopenedWithoutReader = false
    self.mode = Self.mode(for: descriptor, readerGone: &reopenedWithoutReader)
    var status = stat()
    self.isPipe = fstat(descriptor, &status) == 0 && status.st_mode & S_IFMT == S_IFIFO
    buffer.reserveCapacity(1 << 16)
    if reopenedWithoutReader { isClosed = true }
  }

  deinit {
    finish()
    if case .nonBlocking(let own) = mode { Glibc.close(own) }
  }

  /// Creates (or truncates) `path` for writing, as bpftrace's `-o FILE` does. The file is
  /// closed on exec, so the `-c` command does not inherit it. A FIFO is opened without
  /// waiting for a reader: with none, opening fails (ENXIO) rather than hanging. `contents`
  /// and `option` name it in messages: the trace output of `-o`, the packet capture of `-w`.
  public static func create(
    path: String, capacity: Int = 4 << 20, contents: String = "the trace output", option: String = "-o"
  ) -> Result<DescriptorOutput, OutputFileError> {
    let descriptor = path.withCString { open($0, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0o644) }
    guard descriptor >= 0 else {
      return .failure(OutputFileError(path: path, code: errno, contents: contents, option: option))
    }
    // Non-blocking only to open: writes to a FIFO go through a private description anyway.
    let flags = fcntl(descriptor, F_GETFL)
    if flags >= 0 { _ = fcntl(descriptor, F_SETFL, flags & ~O_NONBLOCK) }
    return .success(
      DescriptorOutput(descriptor: descriptor, name: "'\(path)'", owns: true, capacity: capacity, contents: contents))
  }

  /// Whether this is standard output, which then carries nothing else.
  public var isStandardOutput: Bool { descriptor == 1 }

  /// How to write to `descriptor` without waiting on its reader.
  private static func mode(for descriptor: Int32, readerGone: inout Bool) -> WriteMode {
    var status = stat()
    guard fstat(descriptor, &status) == 0 else { return .direct }
    let kind = status.st_mode & S_IFMT
    switch kind {
    case S_IFSOCK:
      return .socket
    case _ where kind == S_IFIFO || (kind == S_IFCHR && isatty(descriptor) == 1):
      // Opening /proc/self/fd/N opens the same pipe or terminal anew, with flags of its own.
      let reopened = open("/proc/self/fd/\(descriptor)", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
      if reopened >= 0 { return .nonBlocking(reopened) }
      // A FIFO whose reader has gone cannot be opened for writing without one.
      if errno == ENXIO { readerGone = true }
      return kind == S_IFIFO ? .polledPipe : .direct
    default:
      return .direct
    }
  }

  public var pendingBytes: Int { buffer.count - head }
  /// What was pending when the last write found the destination full (EAGAIN), 0 after a
  /// write that took something.
  private var pendingWhenFull = 0

  public var isFull: Bool { pendingBytes >= capacity }

  public var waitingDescriptor: Int32? {
    guard !isClosed, pendingBytes > 0 else { return nil }
    switch mode {
    case .direct: return nil
    case .nonBlocking(let own): return own
    case .socket, .polledPipe: return descriptor
    }
  }

  public var pipeDescriptor: Int32? {
    switch mode {
    case .nonBlocking(let own) where isPipe: return own
    case .polledPipe: return descriptor
    default: return nil
    }
  }

  public func readerLeft() {
    guard !isClosed else { return }
    isClosed = true
    dropPending()
  }

  public func append(_ bytes: some Collection<UInt8>, events: Int) {
    guard takes(events: events) else { return }
    buffer.append(contentsOf: bytes)
    appended(bytes.count, events: events)
  }

  public func append(contiguous bytes: UnsafeRawBufferPointer, events: Int) {
    guard takes(events: events) else { return }
    buffer.append(contentsOf: bytes)
    appended(bytes.count, events: events)
  }

  /// Whether bytes carrying `events` can still be appended; when not, after a failure, the
  /// events are lost (after the reader left, nobody wanted them).
  private func takes(events: Int) -> Bool {
    if isClosed, failure != nil { lostEvents += UInt64(events) }
    return !isClosed
  }

  /// Counts `count` bytes just appended, carrying `events`, and writes when enough wait.
  private func appended(_ count: Int, events: Int) {
    appendedBytes += UInt64(count)
    // One mark per append, so that an event written in full counts as written even when the
    // write that took it stopped within the next one, and so that `abandon()` knows where the
    // line it cuts ends.
    marks.append(Appended(end: appendedBytes, events: events))
    // 64 KiB, a pipe's capacity: one write(2) per that many bytes of lines. After the
    // destination was found full, again only once another 64 KiB wait: a stalled reader would
    // otherwise cost one failed write per event until the buffer fills.
    if pendingBytes >= 1 << 16, pendingBytes >= pendingWhenFull + 1 << 16 { flush() }
  }

  public func flush() {
    while !isClosed, !isFinished, pendingBytes > 0 {
      let written = writeSome()
      if written > 0 {
        head += written
        writtenBytes += UInt64(written)
        pendingWhenFull = 0
        continue
      }
      let code = errno
      if written == 0 || code == EAGAIN || code == EWOULDBLOCK {
        pendingWhenFull = pendingBytes
        break
      }
      if code == EINTR { continue }
      if code == EPIPE {
        // The reader went away (`| head -1`): tracing ends cleanly; what waits is dropped.
        isClosed = true
      } else {
        fail(String(cString: strerror(code)))
      }
    }
    settleMarks()
    if head > 0, head >= buffer.count / 2 || head >= 1 << 20 {
      buffer.removeSubrange(0..<head)
      head = 0
    }
    if isClosed { dropPending() }
  }

  /// One write of pending bytes in the destination's way: the count written, 0 when it takes
  /// none now, or -1 with errno.
  private func writeSome() -> Int {
    let chunk = min(pendingBytes, 1 << 20)
    return buffer.withUnsafeBytes { all -> Int in
      let start = all.baseAddress! + head
      switch mode {
      case .direct:
        return Glibc.write(descriptor, start, chunk)
      case .nonBlocking(let own):
        return Glibc.write(own, start, chunk)
      case .socket:
        let sent = send(descriptor, start, chunk, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
        // Not a socket after all (fstat said so): write as to any descriptor.
        if sent < 0, errno == ENOTSOCK { return Glibc.write(descriptor, start, chunk) }
        return sent
      case .polledPipe:
        var ready = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
        guard poll(&ready, 1, 0) == 1 else { return 0 }
        if ready.revents & Int16(POLLERR) != 0 {
          errno = EPIPE
          return -1
        }
        return Glibc.write(descriptor, start, min(chunk, Int(PIPE_BUF)))
      }
    }
  }

  public func drain(until deadline: ContinuousClock.Instant, stall: Duration?) -> Bool {
    var lastProgress = ContinuousClock.now
    var taken = writtenBytes
    while true {
      flush()
      if isClosed || pendingBytes == 0 { break }
      let now = ContinuousClock.now
      if writtenBytes != taken {
        taken = writtenBytes
        lastProgress = now
      }
      var until = deadline
      if let stall { until = min(until, lastProgress + stall) }
      guard now < until else { break }
      guard let waitOn = waitingDescriptor else {
        // A descriptor that said "try again" but cannot be waited on: look again shortly.
        _ = poll(nil, 0, 10)
        continue
      }
      var ready = pollfd(fd: waitOn, events: Int16(POLLOUT), revents: 0)
      _ = poll(&ready, 1, Self.milliseconds(until - now))
    }
    return pendingBytes == 0 && failure == nil
  }

  public func abandon() {
    settleMarks()
    lostEvents += pendingEvents
    // The destination holds the first part of an append (a pipe takes what fits, not whole
    // lines): its rest stays first in line, so that the final maps, END's text or the next
    // message do not continue the cut line (`22@n: 1400000`, issue 19).
    guard !isClosed, !isFinished, marksHead < marks.count, writtenBytes > settledEnd else {
      dropPending()
      return
    }
    var cut = marks[marksHead]
    cut.countedLost = true
    let rest = Int(cut.end - writtenBytes)
    buffer.removeSubrange((head + rest)...)
    marks = [cut]
    marksHead = 0
    appendedBytes = cut.end
  }

  /// Writes all of `text` to standard output for a command that prints once (`-l`, `fmt`,
  /// `--dump-bpf`), waiting for the reader as long as it reads; the failure, if writing failed.
  public static func printOnce(_ text: String, contents: String) -> String? {
    let output = DescriptorOutput(descriptor: 1, contents: contents)
    output.append(text.utf8, events: 0)
    while !output.drain(until: .now + .seconds(3600), stall: nil), !output.isClosed {}
    output.finish()
    return output.failure
  }

  /// Flushes, then closes a file of `-o FILE`; a failing close (as on a network file system
  /// that reports a full disk only then) is a failure too. What could not be written without
  /// waiting is counted as lost. Safe to call more than once.
  public func finish() {
    guard !isFinished else { return }
    flush()
    isFinished = true
    settleMarks()
    // Nothing can follow now: a cut append's rest is dropped, and said to be.
    if !isClosed, pendingBytes > 0, writtenBytes > settledEnd { endsCut = true }
    abandon()
    guard ownsDescriptor else { return }
    let result = Glibc.close(descriptor)
    let code = errno
    // After EINTR the descriptor is closed all the same on Linux; nothing was lost.
    if result != 0, code != EINTR, failure == nil { fail(String(cString: strerror(code))) }
  }

  private func fail(_ reason: String) {
    failure = "cannot write \(contents) to \(name): \(reason)"
    isClosed = true
    lostEvents += pendingEvents
    dropPending()
  }

  /// Moves the events of fully written bytes to `writtenEvents` (from `lostEvents` for the
  /// rest of a cut append written after all).
  private func settleMarks() {
    while marksHead < marks.count, marks[marksHead].end <= writtenBytes {
      let settled = marks[marksHead]
      writtenEvents += UInt64(settled.events)
      if settled.countedLost { lostEvents -= UInt64(settled.events) }
      settledEnd = settled.end
      marksHead += 1
    }
    if marksHead > 0, marksHead >= marks.count / 2 {
      marks.removeSubrange(0..<marksHead)
      marksHead = 0
    }
  }

  /// Events in bytes not written in full, less those already counted as lost.
  private var pendingEvents: UInt64 {
    settleMarks()
    return marks[marksHead...].reduce(0) { $0 + ($1.countedLost ? 0 : UInt64($1.events)) }
  }

  private func dropPending() {
    buffer.removeAll(keepingCapacity: true)
    head = 0
    marks.removeAll()
    marksHead = 0
    writtenBytes = appendedBytes
    settledEnd = appendedBytes
  }

  public static func milliseconds(_ duration: Duration) -> Int32 {
    let (seconds, attoseconds) = duration.components
    let total = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
    return Int32(clamping: max(0, total))
  }
}

/// `-o FILE` or `-w FILE` could not be opened.
public struct OutputFileError: Error, Sendable, CustomStringConvertible {
  public var path: String
  public var code: Int32
  /// What the file was for, and the option that named it: "the trace output" and "-o".
  public var contents: String = "the trace output"
  public var option: String = "-o"
  public var description: String {
    let reason = code == ENXIO ? "it is a FIFO that no program reads" : String(cString: strerror(code))
    return "cannot open '\(path)' for \(contents) (\(option)): \(reason)"
  }
}

/// Standard input, output and error as swtrace found them. A descriptor that was closed at
/// start (`>&-`) is filled with /dev/null, so that no file, map or program swtrace opens
/// later takes its number (events would land in a BPF map's descriptor, or in the spec file),
/// and writing to it is reported as closed.
public enum StandardStreams {
  nonisolated(unsafe) private static var closedAtStart: Set<Int32> = []

  /// Call first thing, before opening anything. Also makes SIGPIPE and SIGXFSZ errors of the
  /// write that causes them (EPIPE, EFBIG) rather than signals that kill the process.
  public static func prepare() {
    signal(SIGPIPE, SIG_IGN)
    signal(SIGXFSZ, SIG_IGN)
    for descriptor: Int32 in 0...2 where fcntl(descriptor, F_GETFD) < 0 && errno == EBADF {
      let placeholder = open("/dev/null", descriptor == 0 ? O_RDONLY : O_WRONLY)
      if placeholder >= 0, placeholder != descriptor {
        dup2(placeholder, descriptor)
        Glibc.close(placeholder)
      }
      closedAtStart.insert(descriptor)
    }
  }

  /// Whether `descriptor` (0, 1 or 2) was closed when swtrace started.
  public static func wasClosed(_ descriptor: Int32) -> Bool { closedAtStart.contains(descriptor) }
}
