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
      switch capturePath == "-" ? .success(DescriptorOutput()) : DescriptorOutput.create(path: capturePath, contents: .capture) {
      case .success(let opened):
        capture = opened
        captureOptions = PacketCaptureOptions(output: opened, application: "swtrace \(Swtrace.configuration.version)")
      case .failure(let error):
        Console.error(error.description)
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
    // With -q the summary is left out unless something was lost.
    if !quiet || summary.lost > 0 { Console.writeError("Samples: \(summary.samples) Lost: \(summary.lost)\n") }
    for (reason, count) in summary.stacksUnavailable {
      Console.note("\(count) event\(count == 1 ? "" : "s") without a kernel stack: \(reason)")
    }
    if capture != nil, !quiet || summary.lostPackets > 0 {
      Console.writeError("Packets: \(summary.packets) Lost: \(summary.lostPackets)\n")
    }
    // A server that stopped on its own ends the run with a failure, so that a service manager
    // restarts swtrace rather than leave it tracing with nobody able to read the numbers.
    if let failure = metricsMode?.failure {
      Console.error("the metrics server stopped: \(failure); tracing ended with it")
      return ExitStatus.systemRefused.rawValue
    }
    if let failure = output.failure ?? capture?.failure {
      Console.error(failure)
      return 2
    }
    return summary.commandEnding.map(Self.report) ?? 0
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
