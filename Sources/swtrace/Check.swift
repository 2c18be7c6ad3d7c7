import ArgumentParser
import FoundationEssentials
import Glibc
import Output
import Runtime
import SwtraceSyntax

/// `swtrace check`: compile and pre-check without loading anything, and without privileges.
struct Check: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Compile and pre-check specs without loading them; exit 0 when all are fine, 1 otherwise.",
    discussion: """
      Examples (from the source directory; no root needed):
        Against Debian 12's 6.1 kernel, whose BTF is in the source tree:
          xz -dkc Tests/Fixtures/btf/6.1.0-56-amd64.btf.xz > /tmp/6.1.btf
          swtrace check --btf /tmp/6.1.btf specs/drops.spec
      """)

  @Option(name: .customLong("btf"), help: ArgumentHelp("Check against this BTF file instead of the running kernel's.", valueName: "FILE"))
  var btfPath: String?

  @Option(name: .short, help: ArgumentHelp("A spec to check, as text.", valueName: "SPEC"))
  var expression: String?

  @Argument(help: ArgumentHelp("Spec files to check.", valueName: "FILE"))
  var files: [String] = []

  /// Hidden: check the one spec this many times in this process and print phase times.
  @Option(name: .customLong("timings"), help: .hidden)
  var timingRuns: Int?

  /// Hidden: decode, format and write this many synthetic events of the one spec, in text and
  /// JSON, and print the CPU time per event (bench/run.sh's event path section).
  @Option(name: .customLong("event-path-bench"), help: .hidden)
  var eventPathEvents: Int?

  func validate() throws {
    if let eventPathEvents, eventPathEvents < 1 { throw ValidationError("--event-path-bench needs at least one event") }
    if let timingRuns {
      if timingRuns < 1 { throw ValidationError("--timings needs at least one run") }
      if files.count + (expression == nil ? 0 : 1) != 1 { throw ValidationError("--timings times exactly one spec") }
    }
  }

  func run() throws {
    if let timingRuns {
      let source = try SpecInput.loadOrExit(expression: expression, path: files.first)
      try CheckTimings.run(source: source, btfPath: btfPath, runs: timingRuns)
      return
    }
    let environment = try TracingEnvironment.forCommandLine(btfPath: btfPath, privilegedDetection: false)
    if let eventPathEvents {
      let source = try SpecInput.loadOrExit(expression: expression, path: files.first)
      let compiled = try environment.compileForCommandLine(source)
      var report = ""
      for format in [OutputFormat.text, .json] {
        guard let measured = EventPathBenchmark.measure(compiled: compiled, format: format, events: eventPathEvents) else {
          Console.error("the spec prints no event the benchmark can build")
          throw ExitStatus.specError
        }
        report += "\(format.rawValue) \(CheckTimings.fixed(measured.cpuNanosecondsPerEvent)) ns/event\n"
      }
      try Console.printOnce(report, contents: "the event path figures")
      return
    }
    var inputs: [Result<SourceFile, SpecInputError>] = files.map { SpecInput.load(expression: nil, path: $0) }
    if let expression { inputs.append(.success(SourceFile(name: "<spec>", text: expression))) }
    if inputs.isEmpty { inputs.append(.failure(.missing)) }
    var failed = false
    for input in inputs {
      switch input {
      case .failure(let error):
        Console.error(error.description)
        failed = true
      case .success(let source):
        do {
          let compiled = try environment.compileForCommandLine(source)
          let count = compiled.programs.count
          Console.note("\(source.name): ok (\(count) program\(count == 1 ? "" : "s"))")
        } catch {
          failed = true
        }
      }
    }
    if failed { throw ExitStatus.specError }
  }
}

/// `swtrace fmt`: print a spec in the canonical layout.
struct Format: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "fmt", abstract: "Print a spec in swtrace's canonical layout.",
    discussion: """
      Examples:
        A one-liner, laid out:
          swtrace fmt -e 'skb:*/len>100/{print(len)}'
      """)

  @Option(name: .short, help: ArgumentHelp("The spec to format, as text.", valueName: "SPEC"))
  var expression: String?

  @Argument(help: ArgumentHelp("The spec file to format, or - for standard input.", valueName: "FILE"))
  var file: String?

  @Flag(name: .shortAndLong, help: "Rewrite the file in place instead of printing it.")
  var inPlace = false

  func validate() throws {
    if expression != nil, file != nil { throw ValidationError("give the spec either with -e or as a file, not both") }
    if inPlace, file == nil || file == "-" { throw ValidationError("-i rewrites a file: name one") }
  }

  func run() throws {
    let source = try SpecInput.loadOrExit(expression: expression, path: file)
    let parsed = Parser.parse(source)
    if parsed.hasErrors {
      Console.diagnostics(parsed.diagnostics, in: source)
      throw ExitStatus.specError
    }
    let formatted = SpecFormatter.format(parsed.spec, source: source)
    if inPlace, let file {
      try formatted.write(toFile: file, atomically: true, encoding: .utf8)
    } else {
      try Console.printOnce(formatted, contents: "the formatted spec")
    }
  }
}
