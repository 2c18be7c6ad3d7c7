import CodeGen
import Foundation
import Output
import PrometheusExport
import Runtime
import Sema
import Synchronization

/// Signals seen since tracing started; the handler only counts, the loop acts.
let stopSignals = Atomic<Int>(0)

/// Loads and attaches a compiled spec, prints its events until told to stop, then detaches
/// and reports how many events were seen and lost.
struct TraceRunner {
  let compiled: CompiledSpec
  let format: OutputFormat
  let command: String?
  let duration: Double?
  let verbose: Bool
  /// `--metrics`: serve the maps over HTTP while running.
  var metrics: MetricsEndpoint? = nil
  /// False with `--metrics` alone: events are counted, not printed.
  var printEvents = true
  /// Standard output, or the file of `-o FILE`.
  var output = TraceOutput.standardOutput()
  /// `-p PID`: the run ends when this process does.
  var processID: Int32? = nil

  /// Counts what it prints; a class because the ring buffer callback shares it.
  final class EventSink {
    var samples: UInt64 = 0
    var exitRequested = false
    let output: TraceOutput
    let decoder: EventDecoder
    let formatter: EventFormatter
    let paths: PathCollector?
    let printsEvents: Bool
    init(decoder: EventDecoder, formatter: EventFormatter, output: TraceOutput, printsEvents: Bool = true) {
      self.output = output
      self.decoder = decoder
      self.formatter = formatter
      self.printsEvents = printsEvents
      self.paths = formatter.format.groupsByPacket && printsEvents ? PathCollector(json: formatter.format.isJSON) : nil
    }

    func handle(_ event: DecodedEvent) {
      samples += 1
      guard printsEvents else { return }
      if let paths {
        if let finished = paths.add(event) { output.writeLine(finished) }
      } else {
        output.writeLine(formatter.line(event))
      }
    }
  }

  func run() throws -> Int32 {
    raiseOpenFileLimit()
    let session = TraceSession(compiled: compiled)
    defer { session.detach() }
    do {
      try session.load()
    } catch {
      Console.error(error.description)
      throw ExitStatus.systemRefused
    }
    let attaching = "Attaching \(compiled.programs.count) probe\(compiled.programs.count == 1 ? "" : "s")..."
    // On a terminal one line counts up while attaching (thousands of functions take a while);
    // elsewhere two plain lines, which scripts can read.
    let quiet = Console.quiet.load(ordering: .relaxed)
    let live = Console.stderrIsTerminal && !quiet
    if live { Console.writeError("swtrace: \(attaching)") } else { Console.progress(attaching) }
    let report: AttachReport
    do {
      var shown = 0
      report = try session.attach { done, total in
        guard live, done == total || done - shown >= max(1, total / 100) else { return }
        shown = done
        Console.writeError("\r\u{1B}[Kswtrace: \(attaching) \(done)/\(total)")
      }
    } catch {
      if live { Console.writeError("\n") }
      Console.error(error.description)
      throw ExitStatus.systemRefused
    }
    let outcome = "\(report.attached) attached, \(report.failed.count) skipped"
    if live { Console.writeError("\r\u{1B}[Kswtrace: \(attaching) \(outcome)\n") } else { Console.progress(outcome) }
    if verbose {
      for failure in report.failed { Console.note("  skipped \(failure.probe): \(failure.reason)") }
    }

    let formatter = EventFormatter(
      format: format, host: MetricsMode.hostLabel,
      wallClockOffset: EventFormatter.currentWallClockOffset())
    let sink = EventSink(
      decoder: EventDecoder(compiled: compiled), formatter: formatter, output: output, printsEvents: printEvents)
    do {
      try session.startReading { bytes in
        if sink.decoder.isExitRequest(bytes) {
          sink.exitRequested = true
          return
        }
        guard let event = sink.decoder.decode(bytes) else { return }
        sink.handle(event)
      }
    } catch {
      Console.error(error.description)
      throw ExitStatus.systemRefused
    }

    installSignalHandlers()
    // Stopped before the session frees its maps: this defer runs ahead of the one above.
    let metricsMode = try metrics.map { try MetricsMode(endpoint: $0, session: session) }
    defer { metricsMode?.stop() }
    let maps = MapPrinter(compiled: compiled, format: format)
    var stopRequested = runUserClauses(.begin, session: session, sink: sink, maps: maps)
    let child = stopRequested ? nil : try startCommand()
    let deadline = duration.map { Date().addingTimeInterval($0) }
    var intervals = compiled.userClauses.compactMap { clause -> (UserClause, TimeInterval, Date)? in
      guard case .interval(let nanoseconds) = clause.trigger else { return nil }
      let period = Double(nanoseconds) / 1e9
      return (clause, period, Date().addingTimeInterval(period))
    }
    while !stopRequested {
      let nextTimer = intervals.map(\.2).min()
      // Short waits with -c, -p and -d, so swtrace ends promptly after the command, the
      // process or the deadline.
      let longest: Int32 = child != nil || deadline != nil || processID != nil ? 10 : 100
      let wait = nextTimer.map { max(0, min(longest, Int32($0.timeIntervalSinceNow * 1000))) } ?? longest
      session.poll(milliseconds: wait)
      sink.output.flush()
      for index in intervals.indices where Date() >= intervals[index].2 {
        if runSteps(intervals[index].0.steps, session: session, sink: sink, maps: maps) { stopRequested = true }
        intervals[index].2 = intervals[index].2.addingTimeInterval(intervals[index].1)
      }
      if stopSignals.load(ordering: .relaxed) > 0 || sink.exitRequested || sink.output.hasEnded { break }
      if let deadline, Date() >= deadline { break }
      if let child, !child.isRunning { break }
      if let processID, !TracedProcess.isRunning(processID) { break }
    }
    metricsMode?.stop()
    // No new events after this point; everything already written is still read.
    session.detachPrograms()
    session.drain()
    for unfinished in sink.paths?.finish() ?? [] { sink.output.writeLine(unfinished) }
    sink.output.flush()
    let ended = compiled.userClauses.filter { $0.trigger == .end }
    if ended.isEmpty {
      for index in compiled.userMaps.indices { printMap(index, session: session, sink: sink, maps: maps) }
    } else {
      _ = runUserClauses(.end, session: session, sink: sink, maps: maps)
    }
    sink.output.flush()
    for (index, dropped) in session.fullMapCounts().enumerated() where dropped > 0 {
      Console.note(
        "\(compiled.userMaps[index].displayName) was full: \(dropped) update\(dropped == 1 ? "" : "s") dropped (raise --map-entries)")
    }
    sink.output.finish()
    let lost = session.lostEvents
    session.detach()
    // With -q the summary is left out unless something was lost.
    if !quiet || lost > 0 { Console.writeError("Samples: \(sink.samples) Lost: \(lost)\n") }
    if let failure = sink.output.failure {
      Console.error(failure)
      return 2
    }
    guard let child else { return 0 }
    let ranToEnd = !child.isRunning
    child.stop()
    guard ranToEnd else { return 0 }
    return ChildCommand.report(child)
  }

  /// Runs every clause with this trigger; true when one of them called exit().
  func runUserClauses(_ trigger: UserClause.Trigger, session: TraceSession, sink: EventSink, maps: MapPrinter) -> Bool {
    var exit = false
    for clause in compiled.userClauses where clause.trigger == trigger {
      if runSteps(clause.steps, session: session, sink: sink, maps: maps) { exit = true }
    }
    return exit
  }

  func runSteps(_ steps: [UserClause.Step], session: TraceSession, sink: EventSink, maps: MapPrinter) -> Bool {
    for step in steps {
      switch step {
      case .printMap(let index): printMap(index, session: session, sink: sink, maps: maps)
      case .clearMap(let index): session.clearUserMap(index)
      case .printText(let text): sink.output.writeLine(text)
      case .exit: return true
      }
    }
    sink.output.flush()
    return false
  }

  func printMap(_ index: Int, session: TraceSession, sink: EventSink, maps: MapPrinter) {
    let entries = maps.entries(index, raw: session.userMapEntries(index))
    let text = maps.render(index, entries: entries)
    sink.output.writeLine(String(text.dropLast()))
  }

  func startCommand() throws -> ChildCommand? {
    guard let command else { return nil }
    do {
      return try ChildCommand(command)
    } catch {
      Console.error("cannot run the -c command: \(error)")
      throw ExitStatus.systemRefused
    }
  }

  /// Every program, map and link is a file descriptor: skb:* over 1,700 functions needs
  /// about 3,500, more than the usual soft limit of 1,024.
  func raiseOpenFileLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
  }

  func installSignalHandlers() {
    let handler: @convention(c) (Int32) -> Void = { _ in
      // A second signal means "now": links are file descriptors, so exiting detaches them.
      if stopSignals.add(1, ordering: .relaxed).newValue >= 2 { _exit(130) }
    }
    signal(SIGINT, handler)
    signal(SIGTERM, handler)
  }
}
