import CodeGen
import Foundation
import Output
import Runtime
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

  /// Counts what it prints; a class because the ring buffer callback shares it.
  final class EventSink {
    var samples: UInt64 = 0
    let output = OutputStream()
    let decoder: EventDecoder
    let formatter: EventFormatter
    init(decoder: EventDecoder, formatter: EventFormatter) {
      self.decoder = decoder
      self.formatter = formatter
    }
  }

  func run() throws -> Int32 {
    let session = TraceSession(compiled: compiled)
    defer { session.detach() }
    do {
      try session.load()
    } catch {
      Console.error(error.description)
      throw ExitStatus.systemRefused
    }
    Console.note("Attaching \(compiled.programs.count) probe\(compiled.programs.count == 1 ? "" : "s")...")
    let report: AttachReport
    do {
      report = try session.attach()
    } catch {
      Console.error(error.description)
      throw ExitStatus.systemRefused
    }
    Console.note("\(report.attached) attached, \(report.failed.count) skipped")
    if verbose {
      for failure in report.failed { Console.note("  skipped \(failure.probe): \(failure.reason)") }
    }

    let sink = EventSink(decoder: EventDecoder(compiled: compiled), formatter: EventFormatter(format: format))
    do {
      try session.startReading { bytes in
        guard let event = sink.decoder.decode(bytes) else { return }
        sink.samples += 1
        sink.output.writeLine(sink.formatter.line(event))
      }
    } catch {
      Console.error(error.description)
      throw ExitStatus.systemRefused
    }

    installSignalHandlers()
    let child = try startCommand()
    let deadline = duration.map { Date().addingTimeInterval($0) }
    while true {
      session.poll(milliseconds: 100)
      sink.output.flush()
      if stopSignals.load(ordering: .relaxed) > 0 { break }
      if let deadline, Date() >= deadline { break }
      if let child, !child.isRunning { break }
      if sink.output.isClosed { break }
    }
    // No new events after this point; everything already written is still read.
    session.detachPrograms()
    session.drain()
    sink.output.flush()
    let lost = session.lostEvents
    session.detach()
    Console.writeError("Samples: \(sink.samples) Lost: \(lost)\n")
    if let child, child.isRunning { child.terminate() }
    return 0
  }

  func startCommand() throws -> Process? {
    guard let command else { return nil }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command]
    do {
      try process.run()
    } catch {
      Console.error("cannot run the -c command: \(error.localizedDescription)")
      throw ExitStatus.systemRefused
    }
    return process
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
