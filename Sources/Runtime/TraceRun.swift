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
  /// Where the `-c` command's standard output goes, when not to swtrace's own (with JSON on
  /// standard output, it goes to stderr so that the JSON stays JSON).
  public var commandOutput: Int32?
  /// `-d`: stop after this many seconds.
  public var duration: Double?
  /// False with `--metrics` alone: events are counted, not printed.
  public var printsEvents: Bool
  /// The host name JSON events carry.
  public var host: String?
  /// `-p`: stop when this process exits (its events are filtered in the kernel, by
  /// `DesugaringOptions.processID`).
  public var processID: Int32?
  /// How long, after a stop, the output has to take the events still buffered; what it has
  /// not taken then is counted as lost.
  public var stopGrace: Duration
  /// How long the final maps and END output may take after that: as long as the output
  /// keeps taking bytes (`finalStall` without any ends it), at most `finalLimit` after the stop.
  public var finalStall: Duration
  public var finalLimit: Duration
  /// What `-f paths` may hold.
  public var pathLimits: PathLimits

  public init(
    format: OutputFormat = .text, command: String? = nil, duration: Double? = nil, printsEvents: Bool = true,
    host: String? = ProcessInfo.processInfo.hostName, processID: Int32? = nil, commandOutput: Int32? = nil,
    stopGrace: Duration = .seconds(1), finalStall: Duration = .seconds(1), finalLimit: Duration = .seconds(5),
    pathLimits: PathLimits = PathLimits()
  ) {
    self.format = format
    self.command = command
    self.duration = duration
    self.printsEvents = printsEvents
    self.host = host
    self.processID = processID
    self.commandOutput = commandOutput
    self.stopGrace = stopGrace
    self.finalStall = finalStall
    self.finalLimit = finalLimit
    self.pathLimits = pathLimits
  }
}

/// What a finished run counted, for the lines swtrace prints last.
public struct TraceSummary: Sendable {
  /// Events delivered: written in full to the output (or, when events are not printed, read).
  public var samples: UInt64
  /// Events the kernel could not write because the ring buffer was full.
  public var lostInKernel: UInt64
  /// Events read but never written: the output failed, or took nothing while the run
  /// stopped (they waited in swtrace's buffer or in the ring buffer).
  public var notWritten: UInt64
  /// Every event lost: `Samples + Lost` is every event the programs tried to emit (less those
  /// read after the output's reader went away, which nobody wanted).
  public var lost: UInt64 { lostInKernel + notWritten }
  /// The final maps or END output could not all be written (the output took nothing).
  public var finalOutputLost: Bool
  /// Bytes still waited for the output when the time after the stop ran out: the output, not
  /// swtrace's reading, kept events from being written.
  public var outputStalled: Bool
  /// `-f paths`: paths printed before their packet was freed, to keep memory bounded.
  public var pathEvictions: PathEvictions
  /// Updates each full map refused (maps that refused none are left out), in spec order.
  public var fullMaps: [(map: MapDeclaration, dropped: UInt64)]
  /// How the `-c` command ended, when it ended on its own rather than being stopped.
  public var commandEnding: CommandEnding?
  /// The signal that stopped the run, if one did.
  public var stoppedBy: Int32?
  /// `-w`: the packets written in full to the capture, those the kernel could not hand over
  /// (no room in a perf ring or the ring buffer, or refused by `bpf_skb_output`), and those
  /// read but not written (the capture failed, or did not take them within a second of the
  /// stop).
  public var packets: UInt64 = 0
  public var packetsLostInKernel: UInt64 = 0
  public var packetsNotWritten: UInt64 = 0
  public var lostPackets: UInt64 { packetsLostInKernel + packetsNotWritten }
  /// Bytes still waited for the capture when the time after the stop ran out: events
  /// waited in the ring buffer for it too (a full output holds back the reading of all).
  public var captureStalled = false
  /// Events whose `kstack` the kernel could not record, by reason.
  public var stacksUnavailable: [(reason: String, count: UInt64)] = []
}

/// Another output a run writes events to besides its lines (a capture file, say): it sees
/// every decoded event, and the run loop polls, drains and accounts its `output` like the
/// main one: a full buffer stops reading, a failure or a closed reader stops the run, what it
/// did not take after a stop is counted as lost.
public struct EventWriter {
  public let output: LineOutput
  /// Appends what `event` becomes in this output (`output.append(bytes, events: 1)`).
  public let write: (DecodedEvent) -> Void

  public init(output: LineOutput, write: @escaping (DecodedEvent) -> Void) {
    self.output = output
    self.write = write
  }
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
/// ending, a closed or failed output). Callers drive the steps and print what they return;
/// nothing here writes to stderr.
///
/// The loop never waits on the output: it waits (poll) for events and, while bytes wait in
/// the output's buffer, for the output to take them; when that buffer is full it stops
/// reading events, and the kernel counts those it has no room for. A stop detaches the
/// programs at once, whatever the output is doing.
public final class TraceRun {
  public let compiled: CompiledSpec
  public let session: TraceSession
  public let options: TraceOptions
  private let sink: EventSink
  private let maps: MapPrinter
  /// Resolves `kstack` values, when the spec has any.
  private let stacks: KernelStackTable?

  /// The main output, then those of `writers`: what events are written to.
  private var eventOutputs: [LineOutput] { [sink.output] + sink.writers.map(\.output) }
  /// Every output the loop drives: the event outputs, then `-w`'s capture.
  private var outputs: [LineOutput] { eventOutputs + (sink.captures.map { [$0.output] } ?? []) }

  /// `capture`: where `-w` writes the packets, when the spec captures any.
  public init(
    compiled: CompiledSpec, options: TraceOptions, output: LineOutput, writers: [EventWriter] = [],
    capture: PacketCaptureOptions? = nil
  ) {
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
    // Tracepoints are passed once per device and namespace by a packet, kernel functions not.
    let passedOnce = Set(compiled.programs.filter { $0.attachPoint.backend == .tracepoint }.map(\.attachPoint.name))
    self.sink = EventSink(
      decoder: EventDecoder(compiled: compiled, stacks: stacks), formatter: formatter, output: output,
      printsEvents: options.printsEvents, pathLimits: options.pathLimits, passedOnce: passedOnce, writers: writers,
      captures: captures)
    self.maps = MapPrinter(compiled: compiled, format: options.format, stacks: stacks)
  }

  deinit { session.detach() }

  /// Creates the maps and loads the programs, once the limit on open files is known to leave
  /// room for them. Then writes what the programs read from the start: the start time for
  /// `elapsed`, and BEGIN's map assignments (lookup tables), before any probe is attached.
  public func load() throws(RuntimeError) {
    ProcessLimits.raiseOpenFiles()
    try ProcessLimits.checkOpenFiles(for: session)
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

  /// Starts handing ring buffer records to the decoder, and perf samples (`-w`'s packets)
  /// to the capture.
  public func startReading() throws(RuntimeError) {
    let sink = self.sink
    let captures = sink.captures
    try session.startReading({ bytes in sink.handle(bytes) }, packets: captures.map { captures in { captures.handle($0) } })
  }

  /// Runs BEGIN, then events and interval clauses until something says stop, then detaches
  /// the programs (`beforeDetaching` runs first: what reads the maps from another thread stops
  /// there), writes what is left within `options.stopGrace`, runs END (or prints every map),
  /// and frees the session. `stopWhen` is asked after every wait, for a stop condition of the
  /// caller's (a metrics server that failed).
  public func run(beforeDetaching: () -> Void = {}, stopWhen: () -> Bool = { false }) throws(TraceRunError)
    -> TraceSummary
  {
    let output = sink.output
    var interpreter = UserClauseInterpreter(session: session, output: output, maps: maps)
    // BEGIN's map assignments were written by `load()`, before attaching.
    var stopRequested = interpreter.run(compiled.userClauses, on: .begin, skippingMapWrites: true)
    let child: ChildCommand?
    do {
      child =
        stopRequested
        ? nil
        : try options.command.map { command throws(ChildCommandError) in
          try ChildCommand(command, standardOutput: options.commandOutput)
        }
    } catch {
      throw .command(error)
    }
    let deadline = options.duration.map { ContinuousClock.now + .milliseconds(Int64(($0 * 1000).rounded(.up))) }
    var intervals = compiled.userClauses.compactMap { clause -> (UserClause, Duration, ContinuousClock.Instant)? in
      guard case .interval(let nanoseconds) = clause.trigger else { return nil }
      let period = Duration.nanoseconds(Int64(clamping: nanoseconds))
      return (clause, period, .now + period)
    }
    // The ends of the -c command and of the -p process wake the wait like events do (pidfds);
    // without them the loop looks every 10 ms. A signal ends any wait at once.
    let tracedProcessEnded = options.processID.flatMap(TracedProcess.endedDescriptor)
    defer { if let tracedProcessEnded { close(tracedProcessEnded) } }
    let endings = [child?.endedDescriptor, tracedProcessEnded].compactMap { $0 }
    let looksForEndings = (child != nil && child?.endedDescriptor == nil) || (options.processID != nil && tracedProcessEnded == nil)
    while !stopRequested {
      var until = ContinuousClock.now + .milliseconds(looksForEndings ? 10 : 100)
      // The programs wake this loop only when the ring buffer fills (`RingBufferWakeUp`): it
      // looks for events on its own this often, so that none waits longer.
      if session.eventsDescriptor != nil {
        until = min(until, .now + .milliseconds(RingBufferWakeUp.readerPollMilliseconds))
      }
      if let next = intervals.map(\.2).min() { until = min(until, next) }
      if let deadline { until = min(until, deadline) }
      waitForEventsOrOutput(until: until, endings: endings)
      readEvents()
      for index in intervals.indices where ContinuousClock.now >= intervals[index].2 {
        if interpreter.run(intervals[index].0.steps) { stopRequested = true }
        intervals[index].2 = intervals[index].2 + intervals[index].1
      }
      if StopSignals.received || sink.exitRequested || outputs.contains(where: \.isClosed) { break }
      if let deadline, ContinuousClock.now >= deadline { break }
      if let child, !child.isRunning { break }
      if let processID = options.processID, !TracedProcess.isRunning(processID) { break }
      if stopWhen() { break }
    }
    let stopped = ContinuousClock.now
    beforeDetaching()
    // No new events after this point; those already written to the ring buffer are still
    // read, and written while the output takes them, for `stopGrace` at most.
    session.detachPrograms()
    let graceEnd = stopped + options.stopGrace
    while !outputs.contains(where: \.isClosed) {
      let read = readEvents()
      if read == 0, outputs.allSatisfy({ $0.pendingBytes == 0 }) { break }
      if ContinuousClock.now >= graceEnd { break }
      waitForEventsOrOutput(until: min(graceEnd, .now + .milliseconds(50)))
    }
    // What the outputs did not take in time is lost, counted, not waited for.
    let outputStalled = eventOutputs.contains { $0.pendingBytes > 0 }
    let captureStalled = (sink.captures?.output.pendingBytes ?? 0) > 0
    // A reader that left (`| head -1`, `-w - | tshark -c 1`) ended the run: what was still in
    // the ring buffer then came after the end, and nobody was waiting for it.
    let endedByReader = outputs.contains { $0.isClosed && $0.failure == nil }
    sink.discardRemaining(session)
    for each in outputs { each.abandon() }
    for unfinished in sink.paths?.finish() ?? [] { output.writeLine(unfinished.text, events: unfinished.events) }
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
    let finalWritten = output.drain(until: stopped + options.finalLimit, stall: options.finalStall)
    if !finalWritten { output.abandon() }
    for other in outputs.dropFirst() {
      if !other.drain(until: stopped + options.finalLimit, stall: options.finalStall) { other.abandon() }
    }
    let fullMaps = zip(compiled.userMaps, session.fullMapCounts()).filter { $0.1 > 0 }.map { (map: $0.0, dropped: $0.1) }
    var summary = TraceSummary(
      samples: options.printsEvents ? output.writtenEvents : sink.read,
      lostInKernel: session.lostEvents,
      notWritten: eventOutputs.reduce(endedByReader ? 0 : sink.discarded) { $0 + $1.lostEvents },
      finalOutputLost: !finalWritten && output.failure == nil && !output.isClosed, outputStalled: outputStalled,
      pathEvictions: sink.paths?.evictions ?? PathEvictions(), fullMaps: fullMaps,
      stoppedBy: StopSignals.first)
    if let captures = sink.captures {
      summary.packets = captures.output.writtenEvents
      summary.packetsLostInKernel = session.lostPackets
      summary.packetsNotWritten = captures.output.lostEvents + (endedByReader ? 0 : captures.discarded)
      summary.captureStalled = captureStalled
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

  /// Waits until events wait in the ring buffer (while the output has room for them), the
  /// output can take bytes (while some wait), one of `endings` (pidfds) is readable, a signal
  /// arrives, or `until`.
  private func waitForEventsOrOutput(until: ContinuousClock.Instant, endings: [Int32] = []) {
    var descriptors: [pollfd] = endings.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
    if !outputs.contains(where: \.isFull) {
      for ready in [session.eventsDescriptor, session.packetsDescriptor].compactMap({ $0 }) {
        descriptors.append(pollfd(fd: ready, events: Int16(POLLIN), revents: 0))
      }
    }
    for waiting in outputs.compactMap(\.waitingDescriptor) {
      descriptors.append(pollfd(fd: waiting, events: Int16(POLLOUT), revents: 0))
    }
    // Pipes with nothing to write are watched too: poll reports POLLERR on a pipe whose
    // reader has gone, so a trace whose events are rare still ends when `| head` leaves.
    let watched = outputs.filter { $0.waitingDescriptor == nil && !$0.isClosed && $0.pipeDescriptor != nil }
    for output in watched {
      descriptors.append(pollfd(fd: output.pipeDescriptor!, events: 0, revents: 0))
    }
    let timeout = DescriptorOutput.milliseconds(until - .now)
    _ = descriptors.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), timeout) }
    for (output, polled) in zip(watched, descriptors.suffix(watched.count)) where polled.revents & Int16(POLLERR) != 0 {
      output.readerLeft()
    }
  }

  /// Writes what the output takes now, reads the events it has room for, and writes again;
  /// returns the records read.
  @discardableResult
  private func readEvents() -> Int {
    let output = sink.output
    for each in outputs { each.flush() }
    var read = 0
    if !outputs.contains(where: \.isFull) {
      read = session.consume()
      for each in outputs { each.flush() }
    }
    if let paths = sink.paths {
      for expired in paths.expire(now: EventFormatter.monotonicNanoseconds()) {
        output.writeLine(expired.text, events: expired.events)
      }
    }
    return read
  }

  /// Detaches and frees everything now. Safe to call more than once.
  public func detach() { session.detach() }
}

/// Decodes and prints ring buffer records and counts them; a class because the ring buffer
/// callback shares it.
final class EventSink {
  /// Events decoded.
  var read: UInt64 = 0
  /// Events left in the ring buffer when the output's time was up: counted, not decoded.
  var discarded: UInt64 = 0
  var exitRequested = false
  private var discarding = false
  let output: LineOutput
  let decoder: EventDecoder
  let formatter: EventFormatter
  let paths: PathCollector?
  let printsEvents: Bool
  let writers: [EventWriter]
  /// Where captures (`-w`) go; kprobes send theirs through the ring buffer with the events.
  let captures: CaptureSink?
  /// Lines written straight from the records, when nothing else needs a `DecodedEvent`:
  /// events are printed as text or JSON lines and no other writer takes them.
  private let direct: RecordFormatter?
  /// The line `direct` formats into, reused for every event.
  private var line: [UInt8] = []

  init(
    decoder: EventDecoder, formatter: EventFormatter, output: LineOutput, printsEvents: Bool, pathLimits: PathLimits,
    passedOnce: Set<String>, writers: [EventWriter], captures: CaptureSink? = nil
  ) {
    self.writers = writers
    self.captures = captures
    self.decoder = decoder
    self.formatter = formatter
    self.output = output
    self.printsEvents = printsEvents
    self.paths =
      formatter.format.groupsByPacket && printsEvents
      ? PathCollector(json: formatter.format.isJSON, limits: pathLimits, passedOnce: passedOnce) : nil
    self.direct = printsEvents && writers.isEmpty ? RecordFormatter(decoder: decoder, formatter: formatter) : nil
    line.reserveCapacity(4096)
  }

  /// Handles one record; false when the output has no room for more.
  func handle(_ bytes: UnsafeRawBufferPointer) -> Bool {
    if decoder.isExitRequest(bytes) {
      exitRequested = true
      return true
    }
    if CaptureDecoder.isCapture(bytes) {
      guard let captures else { return true }
      captures.handle(bytes)
      return !captures.output.isFull && !captures.output.isClosed
    }
    if discarding {
      if bytes.count >= EventHeader.size { discarded += 1 }
      return true
    }
    // An output that takes nothing more (its reader left, or writing failed) stops the
    // reading at once: decoding and formatting the rest of a flooded ring buffer (some
    // 100,000 records) for nobody kept swtrace running for seconds after `| head -1` left,
    // twenty under AddressSanitizer. The run loop stops on the closed output next.
    if output.isClosed || writers.contains(where: { $0.output.isClosed }) || captures?.output.isClosed == true {
      if bytes.count >= EventHeader.size { discarded += 1 }
      return false
    }
    if let direct {
      line.removeAll(keepingCapacity: true)
      switch direct.append(bytes, to: &line) {
      case .formatted:
        read += 1
        line.withUnsafeBytes { output.append(contiguous: $0, events: 1) }
        return !output.isFull && !othersFull
      case .notAnEvent: return true
      case .general: break
      }
    }
    guard let event = decoder.decode(bytes) else { return true }
    read += 1
    for writer in writers { writer.write(event) }
    guard printsEvents else { return !othersFull }
    if let paths {
      for finished in paths.add(event) { output.writeLine(finished.text, events: finished.events) }
    } else {
      output.writeLine(formatter.line(event), events: 1)
    }
    return !output.isFull && !othersFull
  }

  /// A writer's output or the capture's has no room for more.
  private var othersFull: Bool {
    writers.contains { $0.output.isFull } || captures?.output.isFull == true
  }

  /// Counts the events still in the ring buffer as not written.
  func discardRemaining(_ session: TraceSession) {
    discarding = true
    captures?.discarding = true
    defer {
      discarding = false
      captures?.discarding = false
    }
    while session.consume() > 0 {}
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

/// The signals that end a trace: the handler only counts, the run loop stops, detaches and
/// prints what it has, as for Ctrl-C; a second signal exits at once (links are file
/// descriptors, so exiting detaches them, and the `-c` command's guardian ends the command).
/// SIGPIPE and SIGXFSZ are ignored (`StandardStreams.prepare`): a write that meets them
/// fails with EPIPE or EFBIG, which the output reports.
public enum StopSignals {
  private static let count = Atomic<Int>(0)
  private static let firstSignal = Atomic<Int32>(0)

  /// Every signal whose default action ends the process, less those of a fault (SIGSEGV and
  /// the like, which the runtime reports) and the two ignored above.
  public static let handled: [Int32] =
    [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGXCPU, SIGPWR, SIGIO, SIGSTKFLT]
    + Array(SIGRTMIN...SIGRTMAX)

  public static var received: Bool { count.load(ordering: .relaxed) > 0 }

  /// The first signal received, if any.
  public static var first: Int32? {
    let signal = firstSignal.load(ordering: .relaxed)
    return signal == 0 ? nil : signal
  }

  public static func install() {
    var action = sigaction()
    action.__sigaction_handler.sa_handler = { signal in
      _ = StopSignals.firstSignal.compareExchange(expected: 0, desired: signal, ordering: .relaxed)
      if StopSignals.count.add(1, ordering: .relaxed).newValue >= 2 { _exit(130) }
    }
    sigemptyset(&action.sa_mask)
    // No SA_RESTART: a wait the signal interrupts returns at once.
    action.sa_flags = 0
    for signal in handled { sigaction(signal, &action, nil) }
  }
}

/// The real-time signals glibc leaves to programs.
private var SIGRTMIN: Int32 { __libc_current_sigrtmin() }
private var SIGRTMAX: Int32 { __libc_current_sigrtmax() }

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

  /// The soft limit of `resource`, or nil when there is none.
  static func current(_ resource: __rlimit_resource) -> UInt64? {
    var limit = rlimit()
    guard getrlimit(Int32(resource.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return nil }
    return UInt64(limit.rlim_cur)
  }

  /// Spare descriptors beyond the session's: the output, the ring buffer's epoll, the
  /// `-c` command, the BTF file.
  static let spareDescriptors = 16

  /// Fails when the session's descriptors would not fit under the limit on open files, before
  /// anything is created, rather than midway with a misleading refusal.
  static func checkOpenFiles(for session: TraceSession) throws(RuntimeError) {
    guard let limit = current(RLIMIT_NOFILE) else { return }
    let openNow = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 3
    let needed = session.descriptorsNeeded
    guard UInt64(openNow + needed.total + spareDescriptors) > limit else { return }
    throw .shortage(
      .openFiles(limit: limit), operation: "load the spec",
      reason: "it needs about \(needed.total + spareDescriptors) descriptors (\(needed.maps) maps, "
        + "\(needed.programs) programs, up to \(needed.links) links, \(spareDescriptors) more) and \(openNow) are open")
  }
}
