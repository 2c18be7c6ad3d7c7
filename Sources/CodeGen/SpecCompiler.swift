public import BPF
public import BTF
public import Sema
public import SwtraceSyntax

/// A step of `SpecCompiler`, in the order they run.
public enum CompilerPhase: String, Hashable, Sendable, CaseIterable {
  case parse, resolve, check, desugar, codegen, precheck
}

/// The front end and middle of swtrace in one call: parse, resolve the probes, check against
/// BTF, desugar, generate, and pre-check every program the way the kernel's verifier would.
/// Nothing is loaded. The one pipeline every caller goes through: the CLI, `check --timings`
/// (which watches the phases), the fuzzer and the tests.
public struct SpecCompiler: Sendable {
  public let resolver: ProbeResolver
  public var ringBufferSize: Int
  public var mapEntries: Int
  public var options: DesugaringOptions
  /// See `CodeGenerator.kprobeProgramsShareCode`: on where kprobes attach with kprobe.multi.
  public var kprobeProgramsShareCode: Bool
  /// `--snaplen` for captures (`-w`).
  public var snaplen: Int
  /// The command line's positional parameters, `$1`, `$2`, ... (`$#` counts them).
  public var positionalParameters: [String] = []

  public init(
    resolver: ProbeResolver, ringBufferSize: Int = RingBufferSize.standard, mapEntries: Int = 10240,
    options: DesugaringOptions = DesugaringOptions(), kprobeProgramsShareCode: Bool = false,
    snaplen: Int = Snaplen.standard
  ) {
    self.snaplen = snaplen
    self.kprobeProgramsShareCode = kprobeProgramsShareCode
    self.resolver = resolver
    self.ringBufferSize = ringBufferSize
    self.mapEntries = mapEntries
    self.options = options
  }

  public enum Outcome: Sendable {
    case compiled(CompiledSpec, warnings: [Diagnostic])
    case failed([Diagnostic])
  }

  /// Compiles `file`; `phaseFinished` is called as each phase that ran ends (for timing them).
  public func compile(_ file: SourceFile, phaseFinished: (CompilerPhase) -> Void = { _ in }) -> Outcome {
    let parsed = Parser.parse(file)
    phaseFinished(.parse)
    if parsed.hasErrors { return .failed(parsed.diagnostics) }
    let resolved = ResolvedProbes(parsed.spec, resolver: resolver)
    phaseFinished(.resolve)
    let checked = Checker(resolver: resolver, positionalParameters: positionalParameters)
      .check(parsed.spec, source: file, resolved: resolved)
    phaseFinished(.check)
    guard let checkedSpec = checked.spec else { return .failed(parsed.diagnostics + checked.diagnostics) }
    let warnings = parsed.diagnostics + checked.diagnostics
    let spec = Desugaring(resolver: resolver, options: options).desugar(checkedSpec, source: file)
    phaseFinished(.desugar)
    let compiled: CompiledSpec
    do {
      compiled = try CodeGenerator(
        types: resolver.types, ringBufferSize: ringBufferSize, mapEntries: mapEntries,
        recordsSkbAddress: options.groupsEventsByPacket, kprobeProgramsShareCode: kprobeProgramsShareCode,
        snaplen: snaplen
      ).generate(spec)
    } catch {
      return .failed(warnings + [error.diagnostic])
    }
    phaseFinished(.codegen)
    var prechecked = compiled
    let rejections = Self.precheck(&prechecked)
    phaseFinished(.precheck)
    if !rejections.isEmpty { return .failed(warnings + rejections) }
    return .compiled(prechecked, warnings: warnings)
  }

  /// Runs the verifier pre-check over every program; one diagnostic per distinct problem.
  public static func precheck(_ compiled: CompiledSpec) -> [Diagnostic] {
    var copy = compiled
    return precheck(&copy)
  }

  /// Runs the verifier pre-check over every program, recording each program's
  /// `verifierWork`; one diagnostic per distinct problem. Once a program of a clause is
  /// refused as too complex, the clause's other programs (the same code at other attach
  /// points) are not checked again.
  public static func precheck(_ compiled: inout CompiledSpec) -> [Diagnostic] {
    var seen = Set<String>()
    var diagnostics: [Diagnostic] = []
    // Programs shared through attach cookies have equal code: checking one checks them all.
    var work: [CompiledProgram.CheckedCode: Int] = [:]
    var tooComplexClauses = Set<SourceRange>()
    for index in compiled.programs.indices {
      let program = compiled.programs[index]
      if let known = work[program.checkedCode] {
        compiled.programs[index].verifierWork = known
        continue
      }
      if tooComplexClauses.contains(program.clauseRange) { continue }
      let report = Verifier.analyze(
        program.program, context: program.context, maps: compiled.maps, kernelObjects: program.kernelObjects)
      work[program.checkedCode] = report.processedInstructions
      compiled.programs[index].verifierWork = report.processedInstructions
      if report.exceededComplexity { tooComplexClauses.insert(program.clauseRange) }
      for rejection in report.rejections {
        guard seen.insert(rejection.message).inserted else { continue }
        var diagnostic = Diagnostic(
          "verifier-precheck",
          "the kernel would reject the program for \(program.attachPoint.name): \(rejection.message)",
          at: rejection.sourceTag.map(SourceRange.init) ?? program.clauseRange)
        if let hint = rejection.hint { diagnostic.notes.append(.init(.help, hint)) }
        diagnostics.append(diagnostic)
      }
    }
    return diagnostics
  }
}
