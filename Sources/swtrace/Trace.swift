import ArgumentParser
import CodeGen
import Output
import PrometheusExport
import Runtime
import Sema
import SwtraceSyntax

/// The default command: compile a spec, attach it, and print what it sees.
struct Trace: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "trace",
    abstract: "Compile a spec, attach it to the kernel and print its events (the default command).")

  @Option(name: .short, help: ArgumentHelp("The spec to run, as text.", valueName: "SPEC"))
  var expression: String?

  @Argument(help: ArgumentHelp("A .spec file to run (instead of -e).", valueName: "FILE"))
  var file: String?

  @Option(name: [.short, .long], help: ArgumentHelp(
    "Run CMD with /bin/sh -c once the probes are attached; stop when it exits.", valueName: "CMD"))
  var command: String?

  @Option(name: [.short, .long], help: ArgumentHelp("Stop after this many seconds.", valueName: "SECONDS"))
  var duration: Double?

  @Option(name: [.short, .long], help: "Output format: text, json, paths (events grouped per packet) or paths-json.")
  var output: OutputFormat = .text

  @Flag(name: .customLong("dump-bpf"), help: "Print the generated instructions and exit without loading.")
  var dumpBPF = false

  @Option(name: .customLong("btf"), help: ArgumentHelp(
    "Check against this BTF file instead of the running kernel's (with --dump-bpf).", valueName: "FILE"))
  var btfPath: String?

  @Option(name: [.short, .customLong("list")], help: ArgumentHelp(
    "List the attach points a probe matches, such as 'skb:*', and exit.", valueName: "PROBE"))
  var list: String?

  @Flag(name: .shortAndLong, help: "Say more: which probes could not be attached, and why.")
  var verbose = false

  @Option(name: .customLong("backend"), help: ArgumentHelp(
    "Attach skb: function probes with this backend: fentry or kprobe (default: the cheapest the kernel has).",
    valueName: "NAME"))
  var backend: FunctionBackendChoice?

  @Flag(name: .customLong("track"), help: "Keep following a packet once a filter matched it, even after its mark is cleared.")
  var track = false

  @Option(name: .customLong("map-entries"), help: ArgumentHelp(
    "Entries each map of the spec can hold; updates beyond are counted and reported.", valueName: "N"))
  var mapEntries: Int = 10240

  @Option(
    name: .customLong("metrics"),
    help: ArgumentHelp(
      "Keep running and serve the spec's maps as Prometheus metrics at http://ADDR:PORT/metrics (such as 127.0.0.1:9464 or 0.0.0.0:9464), read from the kernel on every scrape. Events are not printed unless --print-events is given.",
      valueName: "ADDR:PORT"),
    transform: MetricsMode.parseEndpoint)
  var metrics: MetricsEndpoint?

  @Flag(name: .customLong("print-events"), help: "With --metrics, print events too.")
  var printEvents = false

  // Packets and stacks (issue 21).

  @Option(
    name: .customShort("w"),
    help: ArgumentHelp(
      "Write the packet of every event of an skb clause to FILE as pcapng, for Wireshark and tshark ('-': standard output, such as | tshark -r -; the text output then goes to standard error).",
      valueName: "FILE"))
  var writeFile: String?

  @Option(
    name: .customLong("snaplen"),
    help: ArgumentHelp(
      "With -w, keep at most N bytes of each packet (default \(Snaplen.standard), at most \(Snaplen.maximum)).",
      valueName: "N"))
  var snaplen: Int?

  @Flag(name: .customLong("stack"), help: "Add the kernel stack (kstack) to every event: in text, JSON and -w's packet comments.")
  var stack = false

  /// What `-w`, `--snaplen` and `--stack` ask of the compiler.
  func desugaringOptions() -> DesugaringOptions {
    DesugaringOptions(
      trackFilteredPackets: track, groupsEventsByPacket: output.groupsByPacket, capturesPackets: writeFile != nil,
      recordsStacks: stack)
  }

  func validateCapture() throws {
    if let snaplen {
      if writeFile == nil { throw ValidationError("--snaplen only goes with -w") }
      if snaplen < 1 || snaplen > Snaplen.maximum {
        throw ValidationError("--snaplen must be between 1 and \(Snaplen.maximum)")
      }
    }
  }

  func validate() throws {
    if expression != nil, file != nil {
      throw ValidationError("give the spec either with -e or as a file, not both")
    }
    if let duration, duration <= 0 { throw ValidationError("--duration must be greater than zero") }
    if mapEntries < 1 || mapEntries > 1 << 24 {
      throw ValidationError("--map-entries must be between 1 and \(1 << 24)")
    }
    if btfPath != nil, !dumpBPF, list == nil {
      throw ValidationError("--btf checks against another kernel and cannot run there; add --dump-bpf or use 'swtrace check --btf'")
    }
    if printEvents, metrics == nil { throw ValidationError("--print-events only goes with --metrics") }
    try validateCapture()
  }

  func run() throws {
    if !dumpBPF, list == nil, let missing = Privileges.missingForTracing() {
      Console.error(missing)
      throw ExitStatus.systemRefused
    }
    let environment = try TracingEnvironment.forCommandLine(
      btfPath: btfPath, privilegedDetection: !dumpBPF || btfPath == nil, forcedBackend: backend?.backend)
    if let list {
      try ProbeListing.print(pattern: list, resolver: environment.resolver)
      return
    }
    let source: SourceFile
    switch SpecInput.load(expression: expression, path: file) {
    case .success(let loaded): source = loaded
    case .failure(let error):
      Console.error(error.description)
      throw ExitStatus.specError
    }
    let compiled = try environment.compileForCommandLine(
      source, mapEntries: mapEntries, options: desugaringOptions(), snaplen: snaplen ?? Snaplen.standard)
    if dumpBPF {
      Swift.print(compiled.listing(source: source), terminator: "")
      return
    }
    let status = try TraceCommand(
      compiled: compiled, source: source,
      options: TraceOptions(
        format: output, command: command, duration: duration, printsEvents: metrics == nil || printEvents),
      verbose: verbose, metrics: metrics, capturePath: writeFile
    ).run()
    if status != 0 { throw ExitCode(status) }
  }
}

extension OutputFormat: ExpressibleByArgument {}

/// The values `--backend` accepts.
enum FunctionBackendChoice: String, ExpressibleByArgument, CaseIterable {
  case fentry, kprobe
  var backend: Backend { self == .fentry ? .fentry : .kprobe }
}
