import ArgumentParser
import BTF
import CodeGen
import Foundation
import Output
import PrometheusExport
import Runtime
import Sema
import SwtraceSyntax
import Synchronization

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
  }

  func run() throws {
    if !dumpBPF, list == nil, let missing = Privileges.missingForTracing() {
      Console.error(missing)
      throw ExitStatus.systemRefused
    }
    let environment = try CompilationEnvironment.make(
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
    let options = DesugaringOptions(trackFilteredPackets: track, groupsEventsByPacket: output.groupsByPacket)
    let compiled = try environment.compile(source, mapEntries: mapEntries, options: options)
    if dumpBPF {
      Swift.print(compiled.listing(source: source), terminator: "")
      return
    }
    let status = try TraceRunner(
      compiled: compiled, format: output, command: command, duration: duration, verbose: verbose,
      metrics: metrics, printEvents: metrics == nil || printEvents
    ).run()
    if status != 0 { throw ExitCode(status) }
  }
}

/// BTF, backend support and tracepoint categories: what compiling a spec needs to know.
struct CompilationEnvironment {
  let resolver: ProbeResolver

  static func make(btfPath: String?, privilegedDetection: Bool, forcedBackend: Backend? = nil) throws
    -> CompilationEnvironment
  {
    try make(
      types: loadTypes(btfPath: btfPath), privilegedDetection: privilegedDetection, forcedBackend: forcedBackend)
  }

  /// The BTF of `--btf FILE`, or of the running kernel; prints why when there is none.
  static func loadTypes(btfPath: String?) throws -> KernelTypes {
    do throws(BTFLoadError) {
      if let btfPath { return try KernelTypes.load(path: btfPath) }
      return try KernelTypes.loadRunningKernel()
    } catch {
      Console.error(error.description)
      if case .kernelHasNoBTF = error { throw ExitStatus.systemRefused }
      throw ExitStatus.specError
    }
  }

  static func make(types: KernelTypes, privilegedDetection: Bool, forcedBackend: Backend? = nil) throws
    -> CompilationEnvironment
  {
    if !types.isRunningKernel {
      return CompilationEnvironment(
        resolver: ProbeResolver(types: types, support: .all, forcedFunctionBackend: forcedBackend))
    }
    var support = CapabilityCache.support(types: types)
    if support.available.isEmpty {
      if privilegedDetection {
        Console.error(
          "the kernel refused to load a BPF program; run swtrace as root (or with CAP_BPF and CAP_PERFMON). "
            + "'swtrace check' works without privileges")
        throw ExitStatus.systemRefused
      }
      support = .tracepointsOnly
    }
    if support.available.contains(.kprobe), KernelCapabilities.kprobesAttachInBulk {
      support.kprobesAttachInBulk = true
    }
    if let forcedBackend, !support.available.contains(forcedBackend) {
      Console.error("--backend \(forcedBackend.rawValue): this kernel does not allow \(forcedBackend.rawValue) programs")
      throw ExitStatus.systemRefused
    }
    return CompilationEnvironment(
      resolver: ProbeResolver(
        types: types, support: support, readingTracepointCategories: KernelCapabilities.tracepointCategories,
        forcedFunctionBackend: forcedBackend))
  }

  /// Compiles and pre-checks, printing diagnostics; throws the spec-error status on failure.
  func compile(_ source: SourceFile, mapEntries: Int = 10240, options: DesugaringOptions = DesugaringOptions()) throws
    -> CompiledSpec
  {
    let compiler = SpecCompiler(
      resolver: resolver, mapEntries: mapEntries, options: options,
      kprobeProgramsShareCode: resolver.support.kprobesAttachInBulk)
    switch compiler.compile(source) {
    case .failed(let diagnostics):
      Console.diagnostics(diagnostics, in: source)
      throw ExitStatus.specError
    case .compiled(let compiled, let warnings):
      if !warnings.isEmpty { Console.diagnostics(warnings, in: source) }
      noteMissingBackends(compiled, source: source)
      return compiled
    }
  }

  /// Says once, in one sentence, when skb probes fall back to tracepoints only.
  func noteMissingBackends(_ compiled: CompiledSpec, source: SourceFile) {
    guard resolver.functionBackend == nil, resolver.types.isRunningKernel, !Self.noted.load(ordering: .relaxed) else { return }
    guard compiled.probeTypes.contains(.skb) else { return }
    let tracepoints = compiled.programs.filter { $0.attachPoint.backend == .tracepoint }.count
    Self.noted.store(true, ordering: .relaxed)
    Console.note(
      "kprobes and fentry are not available on this kernel; skb probes use its \(tracepoints) tracepoint\(tracepoints == 1 ? "" : "s")")
  }

  static let noted = Atomic<Bool>(false)
}

extension OutputFormat: ExpressibleByArgument {}

/// The values `--backend` accepts.
enum FunctionBackendChoice: String, ExpressibleByArgument, CaseIterable {
  case fentry, kprobe
  var backend: Backend { self == .fentry ? .fentry : .kprobe }
}

/// What the running kernel allows, remembered per boot in /run: refusing an fentry program
/// takes this kernel over a second, and the answer cannot change until the next boot.
enum CapabilityCache {
  static let path = "/run/swtrace-backends"

  static func support(types: KernelTypes) -> BackendSupport {
    let key = bootKey()
    if let key, let text = try? String(contentsOfFile: path, encoding: .utf8) {
      let lines = text.split(separator: "\n").map(String.init)
      if lines.first == key {
        return BackendSupport(available: Set(lines.dropFirst().compactMap(Backend.init(rawValue:))))
      }
    }
    let detected = KernelCapabilities.detect(types: types)
    // An empty answer usually means missing privileges, not the kernel: don't remember it.
    if let key, !detected.available.isEmpty {
      let text = ([key] + detected.available.map(\.rawValue).sorted()).joined(separator: "\n") + "\n"
      try? text.write(toFile: path, atomically: true, encoding: .utf8)
    }
    return detected
  }

  /// The boot id and kernel release: a new boot or kernel asks the kernel again.
  static func bootKey() -> String? {
    guard let boot = try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8),
      let release = try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)
    else { return nil }
    return boot.trimmingCharacters(in: .whitespacesAndNewlines) + " " + release.trimmingCharacters(in: .whitespacesAndNewlines)
  }
}
