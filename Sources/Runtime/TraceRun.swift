public import CodeGen
import FoundationEssentials
import Glibc
public import Output
import Sema
import Synchronization

/// How a trace runs once attached: what it prints and when it stops.
public struct TraceOptions: Sendable {
  public var format: OutputFormat
  /// `-c`: run this with `/bin/sh -c` once attached, and stop when it ends.
  public var command: String?
  /// `-d`: stop after this many seconds.
  public var duration: Double?
  /// False with `--metrics` alone: events are counted, not printed.
  public var printsEvents: Bool
  /// The host name JSON events carry.
  public var host: String?
  /// `-p`: stop when this process exits (its events are filtered in the kernel, by
  /// `DesugaringOptions.processID`).
  public var processID: Int32?

  public init(
    format: OutputFormat = .text, command: String? = nil, duration: Double? = nil, printsEvents: Bool = true,
    host: String? = ProcessInfo.processInfo.hostName, processID: Int32? = nil
  ) {
    self.format = format
    self.command = command
    self.duration = duration
    self.printsEvents = printsEvents
    self.host = host
    self.processID = processID
  }
}

/// What a finished run counted, for the lines swtrace prints last.
public struct TraceSummary: Sendable {
  /// Events read from the ring buffer.
  public var samples: UInt64
  /// Events the kernel could not write because the ring buffer was full.
  public var lost: UInt64
  /// Updates each full map refused (maps that refused none are left out), in spec order.
  public var fullMaps: [(map: MapDeclaration, dropped: UInt64)]
  /// How the `-c` command ended, when it ended on its own rather than being stopped.
  public var commandEnding: CommandEnding?
  /// Packets written to the capture file (`-w`), and packets that could not be captured.
  public var packets: UInt64 = 0
  public var lostPackets: UInt64 = 0
  /// Why writing the capture file failed, when it did (a full disk).
  public var captureFailure: String?
  /// Events whose `kstack` the kernel could not record, by reason.
  public var stacksUnavailable: [(reason: String, count: UInt64)] = []
}

/// How a `-c` command that ran to its end ended.
public enum CommandEnding: Sendable, Equatable {
  /// The shell exited with this status; 126 and 127 mean it could not run the command at all.
  case exited(Int32)
  /// A signal from elsewhere ended it.
  case signaled(Int32)
}

/// Why a run could not go on after attaching.
public enum TraceRunError: Error, Sendable, CustomStringConvertible {
  case command(ChildCommandError)

  public var description: String {
    switch self {
    case .command(let error): "cannot run the -c command: \(error)"
    }
  }
}

/// One trace from loading to detaching: the session, the event loop, the BEGIN, END and
/// interval clauses, and the stop conditions (a signal, `exit()`, `-d`, the `-c` command
/// ending, a closed output). Callers drive the steps and print what they return; nothing here
/// writes to stderr.
public final class TraceRun {
  public let compiled: CompiledSpec
  public let session: TraceSession
  public let options: TraceOptions
  private let sink: EventSink
  private let maps: MapPrinter
  /// Resolves `kstack` values, when the spec has any.
  private let stacks: KernelStackTable?

  /// `capture`: where `-w` writes the packets, when the spec captures any.
  public init(compiled: CompiledSpec, options: TraceOptions, output: LineOutput, capture: PacketCaptureOptions? = nil) {
    self.compiled = compiled
    let session = TraceSession(compiled: compiled)
    self.session = session
    self.options = options
    let stacks = compiled.stackMap.map { _ in KernelStackTable { session.kernelStack($0) } }
    self.stacks = stacks
    let wallClockOffset = EventFormatter.currentWallClockOffset()
    let formatter = EventFormatter(format: options.format, host: options.host, wallClockOffset: wallClockOffset)
    let captures = capture.flatMap { capture in
      compiled.packetMap.map { _ in
        CaptureSink(compiled: compiled, stacks: stacks, options: capture, wallClockOffset: wallClockOffset)
      }
    }
    self.sink = EventSink(
      decoder: EventDecoder(compiled: compiled, stacks: stacks), formatter: formatter, output: output,
      printsEvents: options.printsEvents, captures: captures)
    self.maps = MapPrinter(compiled: compiled, format: options.format, stacks: stacks)
  }

  deinit { session.detach() }

  /// Creates the maps and loads the programs.
  public func load() throws(RuntimeError) {
    ProcessLimits.raiseOpenFiles()
    try session.load()
  }

  /// Attaches every program; `progress` sees attach points done and their total.
  public func attach(progress: ((Int, Int) -> Void)? = nil) throws(RuntimeError) -> AttachReport {
    try session.attach(progress: progress)
  }

  /// Starts handing ring buffer records to the decoder.
  public func startReading() throws(RuntimeError) {
    let sink = self.sink
    let captures = sink.captures
    try session.startReading({ bytes in sink.handle(bytes) }, packets: captures.map { captures in { captures.handle($0) } })
  }

  /// Runs BEGIN, then events and interval clauses until something says stop, then detaches
  /// the programs (`beforeDetaching` runs first: what reads the maps from another thread stops
  /// there), reads what is left, runs END (or prints every map), and frees the session.
  /// `stopWhen` is asked after every poll, for a stop condition of the caller's (a metrics
  /// server that failed).
  public func run(beforeDetaching: () -> Void = {}, stopWhen: () -> Bool = { false }) throws(TraceRunError)
    -> TraceSummary
  {
    let interpreter = UserClauseInterpreter(session: session, output: sink.output, maps: maps)
    var stopRequested = interpreter.run(compiled.userClauses, on: .begin)
    let child: ChildCommand?
    do {
      let quietStandardOutput = sink.captures?.output.isStandardOutput ?? false
      child =
        stopRequested
        ? nil
        : try options.command.map { command throws(ChildCommandError) in
          try ChildCommand(command, standardOutputToError: quietStandardOutput)
        }
    } catch {
      throw .command(error)
    }
    let deadline = options.duration.map { Date().addingTimeInterval($0) }
    var intervals = compiled.userClauses.compactMap { clause -> (UserClause, TimeInterval, Date)? in
      guard case .interval(let nanoseconds) = clause.trigger else { return nil }
      let period = Double(nanoseconds) / 1e9
      return (clause, period, Date().addingTimeInterval(period))
    }
    while !stopRequested {
      let nextTimer = intervals.map(\.2).min()
      // Short waits with -c, -p and -d, so swtrace ends promptly after the command, the
      // process or the deadline.
      let longest: Int32 = child != nil || deadline != nil || options.processID != nil ? 10 : 100
      let wait = nextTimer.map { max(0, min(longest, Int32($0.timeIntervalSinceNow * 1000))) } ?? longest
      session.poll(milliseconds: wait)
      sink.output.flush()
      sink.captures?.flush()
      for index in intervals.indices where Date() >= intervals[index].2 {
        if interpreter.run(intervals[index].0.steps) { stopRequested = true }
        intervals[index].2 = intervals[index].2.addingTimeInterval(intervals[index].1)
      }
      if StopSignals.received || sink.exitRequested || sink.output.isClosed { break }
      if sink.captures?.output.isClosed == true { break }
      if let deadline, Date() >= deadline { break }
      if let child, !child.isRunning { break }
      if let processID = options.processID, !TracedProcess.isRunning(processID) { break }
      if stopWhen() { break }
    }
    beforeDetaching()
    // No new events after this point; everything already written is still read.
    session.detachPrograms()
    session.drain()
    for unfinished in sink.paths?.finish() ?? [] { sink.output.writeLine(unfinished) }
    sink.output.flush()
    sink.captures?.flush()
    if compiled.userClauses.contains(where: { $0.trigger == .end }) {
      _ = interpreter.run(compiled.userClauses, on: .end)
    } else {
      for index in compiled.userMaps.indices { interpreter.printMap(index) }
    }
    sink.output.flush()
    let fullMaps = zip(compiled.userMaps, session.fullMapCounts()).filter { $0.1 > 0 }.map { (map: $0.0, dropped: $0.1) }
    var summary = TraceSummary(samples: sink.samples, lost: session.lostEvents, fullMaps: fullMaps)
    if let captures = sink.captures {
      summary.packets = captures.packets
      summary.lostPackets = session.lostPackets
      summary.captureFailure = captures.output.failure
    }
    summary.stacksUnavailable = stacks?.unavailable ?? []
    session.detach()
    if let child {
      let ranToEnd = !child.isRunning
      child.stop()
      if ranToEnd {
        summary.commandEnding = child.exitCode.map(CommandEnding.exited) ?? child.terminatingSignal.map(CommandEnding.signaled)
      }
    }
    return summary
  }

  /// Detaches and frees everything now. Safe to call more than once.
  public func detach() { session.detach() }
}

/// Decodes and prints ring buffer records and counts them; a class because the ring buffer
/// callback shares it.
final class EventSink {
  var samples: UInt64 = 0
  var exitRequested = false
  let output: LineOutput
  let decoder: EventDecoder
  let formatter: EventFormatter
  let paths: PathCollector?
  let printsEvents: Bool
  /// Where captures (`-w`) go; kprobes send theirs through the ring buffer with the events.
  let captures: CaptureSink?

  init(
    decoder: EventDecoder, formatter: EventFormatter, output: LineOutput, printsEvents: Bool,
    captures: CaptureSink? = nil
  ) {
    self.decoder = decoder
    self.formatter = formatter
    self.output = output
    self.printsEvents = printsEvents
    self.captures = captures
    self.paths = formatter.format.groupsByPacket && printsEvents ? PathCollector(json: formatter.format.isJSON) : nil
  }

  func handle(_ bytes: UnsafeRawBufferPointer) {
    if decoder.isExitRequest(bytes) {
      exitRequested = true
      return
    }
    if CaptureDecoder.isCapture(bytes) {
      captures?.handle(bytes)
      return
    }
    guard let event = decoder.decode(bytes) else { return }
    samples += 1
    guard printsEvents else { return }
    if let paths {
      if let finished = paths.add(event) { output.writeLine(finished) }
    } else {
      output.writeLine(formatter.line(event))
    }
  }
}

/// Runs BEGIN, END and interval clauses: their steps print and clear maps, print text, and
/// ask the trace to stop.
struct UserClauseInterpreter {
  let session: TraceSession
  let output: LineOutput
  let maps: MapPrinter

  /// Runs every clause with this trigger; true when one of them called exit().
  func run(_ clauses: [UserClause], on trigger: UserClause.Trigger) -> Bool {
    var exit = false
    for clause in clauses where clause.trigger == trigger {
      if run(clause.steps) { exit = true }
    }
    return exit
  }

  /// Runs the steps of one clause; true when it called exit().
  func run(_ steps: [UserClause.Step]) -> Bool {
    for step in steps {
      switch step {
      case .printMap(let index): printMap(index)
      case .clearMap(let index): session.clearUserMap(index)
      case .printText(let text): output.writeLine(text)
      case .exit: return true
      }
    }
    output.flush()
    return false
  }

  func printMap(_ index: Int) {
    let entries = maps.entries(index, raw: session.userMapEntries(index))
    output.writeLine(String(maps.render(index, entries: entries).dropLast()))
  }
}

/// SIGINT and SIGTERM while tracing: the handler only counts, the run loop stops; a second
/// signal exits at once (links are file descriptors, so exiting detaches them).
public enum StopSignals {
  private static let count = Atomic<Int>(0)

  public static var received: Bool { count.load(ordering: .relaxed) > 0 }

  public static func install() {
    let handler: @convention(c) (Int32) -> Void = { _ in
      if StopSignals.count.add(1, ordering: .relaxed).newValue >= 2 { _exit(130) }
    }
    signal(SIGINT, handler)
    signal(SIGTERM, handler)
  }
}

/// Limits of this process that tracing outgrows.
enum ProcessLimits {
  /// Every program, map and link is a file descriptor: skb:* over 1,700 functions needs
  /// about 3,500, more than the usual soft limit of 1,024.
  static func raiseOpenFiles() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
  }
}
