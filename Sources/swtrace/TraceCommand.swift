import CodeGen
import Glibc
import Output
import PrometheusExport
import Runtime
import SwtraceSyntax

/// The command line around a `TraceRun`: says how attaching goes, serves metrics when asked,
/// and turns what the run reports into lines on stderr and an exit status.
struct TraceCommand {
  let compiled: CompiledSpec
  /// The spec, for locating a kernel rejection in it.
  let source: SourceFile
  let options: TraceOptions
  let verbose: Bool
  /// `--metrics`: serve the maps over HTTP while running.
  var metrics: MetricsEndpoint? = nil
  /// Standard output, or the file of `-o FILE`.
  var output = DescriptorOutput()
  /// `-w`: the pcapng file to write ("-" for standard output, which moves the text output to
  /// standard error unless `-o` names a file).
  var capturePath: String? = nil

  func run() throws -> Int32 {
    var capture: DescriptorOutput?
    var captureOptions: PacketCaptureOptions?
    if let capturePath {
      let contents = "the packet capture"
      let opening =
        capturePath == "-"
        ? .success(DescriptorOutput(contents: contents))
        : DescriptorOutput.create(path: capturePath, contents: contents, option: "-w")
      switch opening {
      case .success(let opened):
        capture = opened
        captureOptions = PacketCaptureOptions(output: opened, application: "swtrace \(Swtrace.configuration.version)")
      case .failure(let error):
        Console.error(error.description)
        throw ExitStatus.systemRefused
      }
      // Standard output closed at start fails before tracing, as for the text output.
      if let failure = capture?.failure {
        Console.error(failure)
        throw ExitStatus.systemRefused
      }
      if compiled.captureLayouts.isEmpty {
        Console.note("-w captures the packet of each event an skb clause prints; this spec prints none, so the file will hold no packets")
      }
    }
    let trace = TraceRun(compiled: compiled, options: options, output: output, capture: captureOptions)
    defer { trace.detach() }
    do throws(RuntimeError) {
      try trace.load()
    } catch {
      report(error)
      throw ExitStatus.systemRefused
    }
    let attaching = "Attaching \(compiled.programs.count) probe\(compiled.programs.count == 1 ? "" : "s")..."
    // On a terminal one line counts up while attaching (thousands of functions take a while);
    // elsewhere two plain lines, which scripts can read.
    let quiet = Console.quiet.load(ordering: .relaxed)
    let live = Console.stderrIsTerminal && !quiet
    if live { Console.writeError("swtrace: \(attaching)") } else { Console.progress(attaching) }
    let report: AttachReport
    do throws(RuntimeError) {
      var shown = 0
      report = try trace.attach { done, total in
        guard live, done == total || done - shown >= max(1, total / 100) else { return }
        shown = done
        Console.writeError("\r\u{1B}[Kswtrace: \(attaching) \(done)/\(total)")
      }
    } catch {
      if live { Console.writeError("\n") }
      self.report(error)
      throw ExitStatus.systemRefused
    }
    let outcome = "\(report.attached) attached, \(report.failed.count) skipped"
    if live { Console.writeError("\r\u{1B}[Kswtrace: \(attaching) \(outcome)\n") } else { Console.progress(outcome) }
    if verbose {
      for failure in report.failed { Console.note("  skipped \(failure.probe): \(failure.reason)") }
    }
    do throws(RuntimeError) {
      try trace.startReading()
    } catch {
      self.report(error)
      throw ExitStatus.systemRefused
    }
    StopSignals.install()
    // Stopped before the session frees its maps: this defer runs ahead of the one above.
    let metricsMode = try metrics.map { try MetricsMode(endpoint: $0, session: trace.session) }
    defer { metricsMode?.stop() }
    let summary: TraceSummary
    do throws(TraceRunError) {
      summary = try trace.run(beforeDetaching: { metricsMode?.stop() }, stopWhen: { metricsMode?.failure != nil })
    } catch {
      Console.error(error.description)
      throw ExitStatus.systemRefused
    }
    for (map, dropped) in summary.fullMaps {
      Console.note("\(map.displayName) was full: \(dropped) update\(dropped == 1 ? "" : "s") dropped (raise --map-entries)")
    }
    output.finish()
    capture?.finish()
    // The reader of a pipe that closed it (`| head -1`) wanted nothing more: what it did not
    // read is neither written nor lost.
    let readerLeft = output.isClosed && output.failure == nil
    let notWritten = readerLeft ? 0 : summary.notWritten
    let lost = summary.lostInKernel + notWritten
    // With -q the summary is left out unless something was lost.
    if !quiet || lost > 0 { Console.writeError("Samples: \(summary.samples) Lost: \(lost)\n") }
    let lostPackets = capture.map { reportPackets(summary, capture: $0, quiet: quiet) } ?? 0
    for (reason, count) in summary.stacksUnavailable {
      Console.note("\(count) event\(count == 1 ? "" : "s") without a kernel stack: \(reason)")
    }
    if notWritten > 0, output.failure == nil {
      let grace = Self.seconds(options.stopGrace)
      let why =
        if summary.outputStalled {
          "were not written: \(output.name) took no more within \(grace) of the stop"
        } else if summary.captureStalled, let capture {
          "were still in the ring buffer \(grace) after the stop: the packet capture (\(capture.name)) took no more, and held back the reading"
        } else {
          "were still in the ring buffer \(grace) after the stop: swtrace did not get to them"
        }
      Console.note("\(notWritten) of the lost events \(why)")
    }
    if output.endsCut {
      Console.note("the last line of \(output.name) is cut short: it took part of that line and nothing more before swtrace exited")
    }
    if summary.finalOutputLost {
      Console.error("the final maps and END output could not all be written: \(output.name) stopped taking them")
    }
    let evictions = summary.pathEvictions
    if evictions.total > 0 {
      var reasons: [String] = []
      if evictions.full > 0 { reasons.append("\(evictions.full) to stay within --paths-max \(options.pathLimits.maxOpenPaths) open paths") }
      if evictions.aged > 0 {
        reasons.append("\(evictions.aged) open longer than --paths-max-age \(Self.seconds(.nanoseconds(Int64(options.pathLimits.maxAgeNanoseconds ?? 0))))")
      }
      if evictions.cut > 0 { reasons.append("\(evictions.cut) cut at \(options.pathLimits.maxHopsPerPath) hops") }
      if evictions.reused > 0 {
        reasons.append("\(evictions.reused) freed where no probe looks (the address came back for a new packet)")
      }
      Console.note("\(evictions.total) path\(evictions.total == 1 ? " was" : "s were") printed without the free of their packet: " + reasons.joined(separator: ", "))
    }
    // A server that stopped on its own ends the run with a failure, so that a service manager
    // restarts swtrace rather than leave it tracing with nobody able to read the numbers.
    if let failure = metricsMode?.failure {
      Console.error("the metrics server stopped: \(failure); tracing ended with it")
      return ExitStatus.systemRefused.rawValue
    }
    if let failure = output.failure ?? capture?.failure {
      Console.error(failure)
      return ExitStatus.systemRefused.rawValue
    }
    let commandStatus = summary.commandEnding.map(Self.report) ?? 0
    if commandStatus != 0 { return commandStatus }
    // Events that were to be printed and were not: the trace is incomplete. (Counted-only
    // events, with --metrics alone, lose nothing the maps hold.)
    var missing: [String] = []
    if options.printsEvents, !readerLeft, lost > 0 || summary.finalOutputLost {
      missing.append("\(lost) event\(lost == 1 ? " was" : "s were") lost")
    }
    // A capture missing packets is incomplete the same way.
    if lostPackets > 0 { missing.append("\(lostPackets) packet\(lostPackets == 1 ? " was" : "s were") not captured") }
    if !missing.isEmpty {
      Console.error("\(missing.joined(separator: " and ")) (swtrace exits with \(ExitStatus.eventsLost))")
      return ExitStatus.eventsLost
    }
    return 0
  }

  /// Prints `Packets: N Lost: M` for `-w` (with -q, only when M is not 0) and what kept the
  /// lost ones from the file; returns M. A reader of `-w -` that left (`| tshark -c 1`)
  /// wanted no more: what it did not read is not lost.
  private func reportPackets(_ summary: TraceSummary, capture: DescriptorOutput, quiet: Bool) -> UInt64 {
    let readerLeft = capture.isClosed && capture.failure == nil
    let notWritten = readerLeft ? 0 : summary.packetsNotWritten
    let lost = summary.packetsLostInKernel + notWritten
    if !quiet || lost > 0 { Console.writeError("Packets: \(summary.packets) Lost: \(lost)\n") }
    if notWritten > 0, capture.failure == nil {
      Console.note(
        "\(notWritten) of the lost packets were not written to \(capture.name) within \(Self.seconds(options.stopGrace)) of the stop")
    }
    if capture.endsCut {
      Console.note("the last block of \(capture.name) is cut short: it took part of that block and nothing more before swtrace exited")
    }
    return lost
  }

  static func seconds(_ duration: Duration) -> String {
    let milliseconds = DescriptorOutput.milliseconds(duration)
    return milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(Double(milliseconds) / 1000) s"
  }

  /// Says how a `-c` command that ended on its own went, when not well, and returns swtrace's
  /// exit status for it: 2 when the shell could not run it at all (126, 127), 3 when it
  /// exited with another non-zero status, and 0 when it succeeded or a signal from elsewhere
  /// ended it (stopping the command is a way to end a trace).
  static func report(_ ending: CommandEnding) -> Int32 {
    switch ending {
    case .exited(0): return 0
    case .exited(let code) where code == 126 || code == 127:
      Console.error("the -c command could not be run (the shell exited with \(code): command not found or not executable)")
      return 2
    case .exited(let code):
      Console.error("the -c command failed: it exited with status \(code) (swtrace exits with \(ExitStatus.commandFailed))")
      return ExitStatus.commandFailed
    case .signaled(let signal):
      Console.note("the -c command was ended by signal \(signal) (\(String(cString: strsignal(signal))))")
      return 0
    }
  }

  /// A refusal in one sentence; a program the kernel rejected also shows where in the spec
  /// its clause is.
  func report(_ error: RuntimeError) {
    if let diagnostic = error.diagnostic {
      Console.diagnostics([diagnostic], in: source)
    } else {
      Console.error(error.description)
    }
  }
}
