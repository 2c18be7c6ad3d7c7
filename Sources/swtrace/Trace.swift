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
    abstract: "Trace packets through the Linux kernel: compile a spec to eBPF, attach it, print what it sees.",
    usage: """
      swtrace [<options>] -e SPEC
      swtrace [<options>] FILE.spec
      swtrace -l [PATTERN | FILE.spec | -e SPEC]
      swtrace check [--btf FILE] FILE.spec ...
      """,
    discussion: examples)

  /// The examples of `swtrace --help` and of the manual, each line at most 80 columns so that
  /// none wraps inside its quotes; Tests/EndToEndTests/DocumentationTests.swift runs them.
  static let examples = """
    Examples (as root, from the source directory; the traffic stays on loopback):
      Each hop of 2 UDP datagrams marked 0xdead, with its length and device:
        swtrace -e 'skb:* /mark == 0xdead/ { print(len, ifname) }' \\
          -c 'swtrace-pktgen udp --dst 127.0.0.1 --port 9 --count 2 --mark 0xdead'
      The same with a shipped spec, as JSON lines written to a file:
        swtrace -f json -o /tmp/hops.json specs/mark-path.spec \\
          -c 'swtrace-pktgen udp --dst 127.0.0.1 --port 9 --count 2 --mark 0xdead'
      Drops by reason for 5 seconds:
        swtrace -d 5 specs/drops.spec
      The probes skb:* matches here, as a spec names them, with their arguments:
        swtrace -l 'skb:*'
      Check a spec against a kernel's BTF without loading it (no root needed):
        swtrace check --btf /sys/kernel/btf/vmlinux specs/drops.spec

    The language, its probes and packet fields: man swtrace (THE LANGUAGE), or
    grammar/README.md in the source. Other commands: swtrace help check, swtrace
    help fmt. Exit status: 0 done, 1 error in the spec, 2 refused by the kernel
    or system (or the output failed), 3 the -c command failed, 4 events were lost,
    64 a command line swtrace cannot use.
    """

  @Option(name: .short, help: ArgumentHelp("The spec to run, as text.", valueName: "SPEC"))
  var expression: String?

  @Argument(help: ArgumentHelp(
    "A .spec file to run (instead of -e), or - for standard input; with -l, a pattern such as 'skb:net_*' or a spec file.", valueName: "FILE"))
  var file: String?

  @Argument(help: ArgumentHelp(
    "Positional parameters, $1, $2, ... in the spec ($# counts them), as in bpftrace; with -e, every argument is one.",
    valueName: "PARAMETER"))
  var parameters: [String] = []

  /// `$1`, `$2`, ...: with -e the file argument is the first of them, as bpftrace reads
  /// `bpftrace -e PROGRAM ARG...`.
  var positionalParameters: [String] { expression != nil ? (file.map { [$0] } ?? []) + parameters : parameters }

  @Option(name: [.short, .long], help: ArgumentHelp(
    "Run CMD with /bin/sh -c once the probes are attached; stop when it exits. With -f json or paths-json on standard output, or with -w -, its output goes to stderr.",
    valueName: "CMD"))
  var command: String?

  @Option(name: [.short, .long], help: ArgumentHelp("Stop after this many seconds.", valueName: "SECONDS"))
  var duration: Double?

  @Option(name: [.short, .long], help: ArgumentHelp(
    "Output format: text, json, paths (events grouped per packet) or paths-json.", valueName: "FORMAT"))
  var format: OutputFormat = .text

  @Option(name: [.short, .long], help: ArgumentHelp(
    "Write the events and maps to FILE instead of standard output (messages stay on stderr).", valueName: "FILE"))
  var output: String?

  @Option(name: .customLong("paths-max"), help: ArgumentHelp(
    "With -f paths: open paths kept at most; beyond, the oldest is printed as it is (not freed while tracing).",
    valueName: "N"))
  var pathsMax: Int = PathLimits().maxOpenPaths

  @Option(name: .customLong("paths-max-age"), help: ArgumentHelp(
    "With -f paths: seconds a path stays open at most before it is printed as it is; 0 for no limit.",
    valueName: "SECONDS"))
  var pathsMaxAge: Double = 10

  @Option(name: [.short, .customLong("pid")], help: ArgumentHelp(
    "Keep only events of process PID (as if every filter began with pid == PID); stop when it exits.",
    valueName: "PID"))
  var processID: Int32?

  @Flag(name: [.short, .customLong("list")], help: ArgumentHelp(
    "List the probes that match FILE as a pattern (default 'skb:*' and 'tracepoint:*:*'), or those of the spec given with -e or as a .spec FILE, and exit."))
  var list = false

  @Flag(name: .shortAndLong, help: "Leave out progress messages, and the Samples line unless events were lost.")
  var quiet = false

  @Flag(name: .shortAndLong, help: "Say more: which probes could not be attached, and why; with -l, what each probe attaches to and the fields of each tracepoint's record.")
  var verbose = false

  @Flag(name: .customLong("dump-bpf"), help: "Print the generated instructions and exit without loading.")
  var dumpBPF = false

  @Option(name: .customLong("btf"), help: ArgumentHelp(
    "Check against this BTF file instead of the running kernel's (with --dump-bpf).", valueName: "FILE"))
  var btfPath: String?

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
      "Keep running and serve the spec's maps as Prometheus metrics at http://ADDR:PORT/metrics (such as 127.0.0.1:9464 or 0.0.0.0:9464), read from the kernel at scrape time (one reading serves the scrapes of the next second). Events are not printed unless --print-events is given.",
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
      trackFilteredPackets: track, groupsEventsByPacket: format.groupsByPacket, processID: processID.map(UInt32.init),
      capturesPackets: writeFile != nil, recordsStacks: stack)
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
    if let output, let format = OutputFormat(rawValue: output) {
      throw ValidationError(
        "-o names the output file, as in bpftrace; the format is chosen with -f: write -f \(format.rawValue) "
          + "(for a file named '\(output)', write -o ./\(output))")
    }
    // With -e, a file argument is the first positional parameter ($1), as in bpftrace.
    if expression != nil, file != nil, list {
      throw ValidationError("-l lists either the probes of the spec given with -e or those matching a pattern, not both")
    }
    if let processID {
      if processID <= 0 { throw ValidationError("-p needs a process id greater than zero") }
      if !TracedProcess.isRunning(processID) { throw ValidationError("-p \(processID): no such process is running") }
    }
    if let duration, duration <= 0 { throw ValidationError("--duration must be greater than zero") }
    if mapEntries < 1 || mapEntries > 1 << 24 {
      throw ValidationError("--map-entries must be between 1 and \(1 << 24)")
    }
    if btfPath != nil, !dumpBPF, !list {
      throw ValidationError("--btf checks against another kernel and cannot run there; add --dump-bpf or use 'swtrace check --btf'")
    }
    if printEvents, metrics == nil { throw ValidationError("--print-events only goes with --metrics") }
    if pathsMax < 1 || pathsMax > 1_000_000 { throw ValidationError("--paths-max must be between 1 and 1000000") }
    if !(pathsMaxAge >= 0) || pathsMaxAge > 86_400 { throw ValidationError("--paths-max-age must be between 0 and 86400 seconds") }
    try validateCapture()
  }

  func run() throws {
    Console.quiet.store(quiet, ordering: .relaxed)
    if !dumpBPF, !list, let missing = Privileges.missingForTracing() {
      Console.error(missing)
      throw ExitStatus.systemRefused
    }
    let environment = try TracingEnvironment.forCommandLine(
      btfPath: btfPath, privilegedDetection: !dumpBPF || btfPath == nil, forcedBackend: backend?.backend)
    if list {
      try ProbeListing.print(
        ProbeListing.Request(expression: expression, argument: file), resolver: environment.resolver,
        verbose: verbose)
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
      source, mapEntries: mapEntries, options: desugaringOptions(), snaplen: snaplen ?? Snaplen.standard,
      positionalParameters: positionalParameters)
    if dumpBPF {
      try Console.printOnce(compiled.listing(source: source), contents: "the instructions")
      return
    }
    let destination: DescriptorOutput
    // With -w -, standard output carries the capture: the text goes to standard error.
    let standard = DescriptorOutput(descriptor: writeFile == "-" ? 2 : 1)
    switch output.map({ DescriptorOutput.create(path: $0) }) ?? .success(standard) {
    case .success(let opened): destination = opened
    case .failure(let error):
      Console.error(error.description)
      throw ExitStatus.systemRefused
    }
    // A destination known not to work (standard output closed at start) fails before tracing.
    if let failure = destination.failure {
      Console.error(failure)
      throw ExitStatus.systemRefused
    }
    if let warning = MapMemory.warning(for: compiled, mapEntries: mapEntries) { Console.note("warning: \(warning)") }
    var limits = PathLimits()
    limits.maxOpenPaths = pathsMax
    limits.maxAgeNanoseconds = pathsMaxAge > 0 ? UInt64(pathsMaxAge * 1e9) : nil
    let status = try TraceCommand(
      compiled: compiled, source: source,
      options: TraceOptions(
        format: format, command: command, duration: duration, printsEvents: metrics == nil || printEvents,
        host: MetricsMode.hostLabel, processID: processID,
        // JSON on standard output stays JSON, and -w -'s pcapng stays pcapng: the command's
        // own output goes to stderr.
        commandOutput: writeFile == "-" || (format.isJSON && output == nil) ? 2 : nil, pathLimits: limits),
      verbose: verbose, metrics: metrics, output: destination, capturePath: writeFile
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
