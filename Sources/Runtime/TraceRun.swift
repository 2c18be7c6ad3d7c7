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

  public init(compiled: CompiledSpec, options: TraceOptions, output: LineOutput) {
    self.compiled = compiled
    self.session = TraceSession(compiled: compiled)
    self.options = options
    let formatter = EventFormatter(
      format: options.format, host: options.host, wallClockOffset: EventFormatter.currentWallClockOffset())
    self.sink = EventSink(
      decoder: EventDecoder(compiled: compiled), formatter: formatter, output: output,
      printsEvents: options.printsEvents)
    self.maps = MapPrinter(compiled: compiled, format: options.format)
  }

  deinit { session.detach() }

  /// Creates the maps and loads the programs.
  /// Then writes what the programs read from the start: the start time for `elapsed`, and
  /// BEGIN's map assignments (lookup tables), before any probe is attached.
  public func load() throws(RuntimeError) {
    ProcessLimits.raiseOpenFiles()
    try session.load()
    try session.writeStartTime()
    for clause in compiled.userClauses where clause.trigger == .begin {
      for case .assignMap(let index, let keys, let value) in clause.steps {
        try session.writeUserMapEntry(
          index, key: UserValueBytes.key(keys, of: compiled.userMaps[index]),
          value: UserValueBytes.slot(value, size: MapLayout.valueSize(compiled.userMaps[index])))
      }
    }
  }

  /// Attaches every program; `progress` sees attach points done and their total.
  public func attach(progress: ((Int, Int) -> Void)? = nil) throws(RuntimeError) -> AttachReport {
    try session.attach(progress: progress)
  }

  /// Starts handing ring buffer records to the decoder.
  public func startReading() throws(RuntimeError) {
    let sink = self.sink
    try session.startReading { bytes in sink.handle(bytes) }
  }

  /// Runs BEGIN, then events and interval clauses until something says stop, then detaches
  /// the programs (`beforeDetaching` runs first: what reads the maps from another thread stops
  /// there), reads what is left, runs END (or prints every map), and frees the session.
  /// `stopWhen` is asked after every poll, for a stop condition of the caller's (a metrics
  /// server that failed).
  public func run(beforeDetaching: () -> Void = {}, stopWhen: () -> Bool = { false }) throws(TraceRunError)
    -> TraceSummary
  {
    var interpreter = UserClauseInterpreter(session: session, output: sink.output, maps: maps)
    // BEGIN's map assignments were written by `load()`, before attaching.
    var stopRequested = interpreter.run(compiled.userClauses, on: .begin, skippingMapWrites: true)
    let child: ChildCommand?
    do {
      child = stopRequested ? nil : try options.command.map { command throws(ChildCommandError) in try ChildCommand(command) }
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
      for index in intervals.indices where Date() >= intervals[index].2 {
        if interpreter.run(intervals[index].0.steps) { stopRequested = true }
        intervals[index].2 = intervals[index].2.addingTimeInterval(intervals[index].1)
      }
      if StopSignals.received || sink.exitRequested || sink.output.isClosed { break }
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
    if compiled.userClauses.contains(where: { $0.trigger == .end }) {
      _ = interpreter.run(compiled.userClauses, on: .end)
      interpreter.finishLine()
      // As bpftrace: the maps END left with entries print after it (tools clear() theirs).
      for index in compiled.userMaps.indices where !session.userMapEntries(index).isEmpty {
        interpreter.printMap(index)
      }
    } else {
      for index in compiled.userMaps.indices { interpreter.printMap(index) }
    }
    sink.output.flush()
    let fullMaps = zip(compiled.userMaps, session.fullMapCounts()).filter { $0.1 > 0 }.map { (map: $0.0, dropped: $0.1) }
    var summary = TraceSummary(samples: sink.samples, lost: session.lostEvents, fullMaps: fullMaps)
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

  init(decoder: EventDecoder, formatter: EventFormatter, output: LineOutput, printsEvents: Bool) {
    self.decoder = decoder
    self.formatter = formatter
    self.output = output
    self.printsEvents = printsEvents
    self.paths = formatter.format.groupsByPacket && printsEvents ? PathCollector(json: formatter.format.isJSON) : nil
  }

  func handle(_ bytes: UnsafeRawBufferPointer) {
    if decoder.isExitRequest(bytes) {
      exitRequested = true
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
  /// Text a printf left without its newline, continued by the next one (as bpftrace's printf
  /// continues a line).
  var openLine = ""

  init(session: TraceSession, output: LineOutput, maps: MapPrinter) {
    self.session = session
    self.output = output
    self.maps = maps
  }

  /// Runs every clause with this trigger; true when one of them called exit().
  mutating func run(_ clauses: [UserClause], on trigger: UserClause.Trigger, skippingMapWrites: Bool = false) -> Bool {
    var exit = false
    for clause in clauses where clause.trigger == trigger {
      if run(clause.steps, skippingMapWrites: skippingMapWrites) { exit = true }
    }
    return exit
  }

  /// Runs the steps of one clause; true when it called exit().
  mutating func run(_ steps: [UserClause.Step], skippingMapWrites: Bool = false) -> Bool {
    for step in steps {
      switch step {
      case .printMap(let index):
        finishLine()
        printMap(index)
      case .printMapTop(let index, let top):
        finishLine()
        printMap(index, top: top)
      case .clearMap(let index): session.clearUserMap(index)
      case .zeroMap(let index): session.zeroUserMap(index)
      case .printText(let text):
        finishLine()
        output.writeLine(text)
      case .printf(let format, let values):
        write(PrintfRenderer.render(format, constants: values.map { ($0.type, UserValueBytes.printed($0)) }))
      case .printTime(let format):
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        write(WallTime.format(nanoseconds: UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec), format))
      case .assignMap(let index, let keys, let value):
        guard !skippingMapWrites else { continue }
        let map = maps.compiled.userMaps[index]
        do {
          try session.writeUserMapEntry(
            index, key: UserValueBytes.key(keys, of: map), value: UserValueBytes.slot(value, size: MapLayout.valueSize(map)))
        } catch {
          finishLine()
          output.writeLine("swtrace: \(error)")
        }
      case .exit:
        output.flush()
        return true
      }
    }
    output.flush()
    return false
  }

  /// Writes `text`, whole lines now and the rest when a later newline ends it.
  mutating func write(_ text: String) {
    var lines = (openLine + text).split(separator: "\n", omittingEmptySubsequences: false)
    openLine = String(lines.removeLast())
    for line in lines { output.writeLine(String(line)) }
  }

  /// Ends a line a printf left open.
  mutating func finishLine() {
    guard !openLine.isEmpty else { return }
    output.writeLine(openLine)
    openLine = ""
  }

  func printMap(_ index: Int, top: Int? = nil) {
    var entries = maps.entries(index, raw: session.userMapEntries(index))
    if let top { entries = maps.largest(index, entries: entries, count: top) }
    output.writeLine(String(maps.render(index, entries: entries).dropLast()))
  }
}

/// The bytes of constants from BEGIN, END and interval clauses, as the generated code lays
/// out the same values.
enum UserValueBytes {
  /// The value at its own width (a number's low bytes), for printf.
  static func printed(_ value: UserValue) -> [UInt8] {
    switch value.constant {
    case .number(let bits):
      let width = max(1, min(8, value.type.storageSize))
      return Array(withUnsafeBytes(of: bits.littleEndian, Array.init).prefix(width))
    case .text(let text): return Array(text.utf8) + [0]
    case .bytes(let bytes): return bytes
    }
  }

  /// The value in a map slot of `size` bytes: numbers as 64 bits, text and bytes zero-padded.
  static func slot(_ value: UserValue, size: Int) -> [UInt8] {
    var bytes: [UInt8]
    switch value.constant {
    case .number(let bits): bytes = withUnsafeBytes(of: bits.littleEndian, Array.init)
    case .text(let text): bytes = Array(text.utf8)
    case .bytes(let raw): bytes = raw
    }
    bytes = Array(bytes.prefix(size))
    return bytes + [UInt8](repeating: 0, count: size - bytes.count)
  }

  /// A map's key: each key in its slot, padded to the map's key size.
  static func key(_ keys: [UserValue], of map: MapDeclaration) -> [UInt8] {
    var bytes: [UInt8] = []
    for (value, key) in zip(keys, map.keys) { bytes += slot(value, size: key.slotSize) }
    let size = MapLayout.keySize(map)
    return bytes + [UInt8](repeating: 0, count: max(0, size - bytes.count))
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
