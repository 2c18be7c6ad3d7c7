import CodeGen
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
  /// `-w`: the pcapng file to write ("-" for standard output, which moves the text output to
  /// standard error).
  var capturePath: String? = nil

  func run() throws -> Int32 {
    var options = self.options
    if let capturePath {
      switch ByteOutput.open(capturePath) {
      case .success(let output):
        options.capture = PacketCaptureOptions(output: output, application: "swtrace \(Swtrace.configuration.version)")
      case .failure(let error):
        Console.error(error.description)
        throw ExitStatus.systemRefused
      }
      if compiled.captureLayouts.isEmpty {
        Console.note("-w captures the packet of each event an skb clause prints; this spec prints none, so the file will hold no packets")
      }
    }
    let trace = TraceRun(
      compiled: compiled, options: options, output: DescriptorOutput(descriptor: capturePath == "-" ? 2 : 1))
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
    let live = Console.stderrIsTerminal
    if live { Console.writeError("swtrace: \(attaching)") } else { Console.note(attaching) }
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
    if live { Console.writeError("\r\u{1B}[Kswtrace: \(attaching) \(outcome)\n") } else { Console.note(outcome) }
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
      summary = try trace.run(beforeDetaching: { metricsMode?.stop() })
    } catch {
      Console.error(error.description)
      throw ExitStatus.systemRefused
    }
    for (map, dropped) in summary.fullMaps {
      Console.note("\(map.displayName) was full: \(dropped) update\(dropped == 1 ? "" : "s") dropped (raise --map-entries)")
    }
    Console.writeError("Samples: \(summary.samples) Lost: \(summary.lost)\n")
    for (reason, count) in summary.stacksUnavailable {
      Console.note("\(count) event\(count == 1 ? "" : "s") without a kernel stack: \(reason)")
    }
    if let capturePath {
      Console.writeError("Packets: \(summary.packets) Lost: \(summary.lostPackets)\n")
      if let failure = summary.captureFailure {
        Console.error("writing the capture file \(capturePath == "-" ? "to standard output" : capturePath) failed: \(failure)")
        return 2
      }
    }
    if let code = summary.commandNotRunnable {
      Console.error("the -c command could not be run (the shell exited with \(code): command not found or not executable)")
      return 2
    }
    return 0
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
