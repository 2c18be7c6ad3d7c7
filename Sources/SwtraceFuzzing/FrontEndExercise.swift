// One input through everything `swtrace check` and `--dump-bpf` do, for the libFuzzer target
// in Fuzz/ and for the regression tests that replay what it found: lexer, parser, Sema against
// the running kernel's BTF, code generation, the verifier pre-check, the diagnostic renderer,
// the listing and the formatter. Nothing is loaded into the kernel and nothing is printed.

public import BTF
import CodeGen
import Runtime
import Sema
import SwtraceSyntax

public struct FrontEndExercise: Sendable {
  /// Tracepoints only, as on a kernel without kprobes and fentry: `skb:*` is 30-odd programs.
  let tracepointCompiler: SpecCompiler
  /// Every backend, as `swtrace check --btf` assumes, so that kprobe and fentry clauses reach
  /// code generation. Only for specs without `skb:` probes: over every function that takes an
  /// skb, `skb:*` is some 2,500 programs and seconds per input, which would starve a fuzzer.
  let everyBackendCompiler: SpecCompiler

  public init(types: KernelTypes) {
    let categories = KernelCapabilities.tracepointCategories()
    tracepointCompiler = SpecCompiler(
      resolver: ProbeResolver(types: types, support: .tracepointsOnly, tracepointCategories: categories))
    everyBackendCompiler = SpecCompiler(
      resolver: ProbeResolver(types: types, support: .all, tracepointCategories: categories))
  }

  /// What became of one input, for tests that want to say more than "did not crash".
  public struct Outcome: Sendable, Equatable {
    /// Programs generated with tracepoints only, or nil when the spec was refused.
    public var programs: Int?
    /// Rendered diagnostics (errors and warnings) of the tracepoint-only compile.
    public var diagnostics: String
  }

  /// Runs `bytes` through the front end; nil when they are not UTF-8, which swtrace refuses
  /// before its front end sees them.
  @discardableResult
  public func run(_ bytes: UnsafeBufferPointer<UInt8>) -> Outcome? {
    guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
    return run(text)
  }

  @discardableResult
  public func run(_ text: String) -> Outcome {
    let source = SourceFile(name: "<fuzz>", text: text)
    let parsed = Parser.parse(source)
    let usesSkbProbes = parsed.spec.clauses.flatMap(\.probes).contains {
      if case .skb = $0.kind { true } else { false }
    }
    let outcome = compile(source, with: tracepointCompiler)
    if !usesSkbProbes { compile(source, with: everyBackendCompiler) }
    if !parsed.hasErrors { _ = SpecFormatter.format(parsed.spec, source: source) }
    return outcome
  }

  /// Compiles and renders what a user would see: the diagnostics, or the --dump-bpf listing.
  @discardableResult
  func compile(_ source: SourceFile, with compiler: SpecCompiler) -> Outcome {
    let renderer = DiagnosticRenderer()
    switch compiler.compile(source) {
    case .failed(let diagnostics):
      return Outcome(programs: nil, diagnostics: diagnostics.map { renderer.render($0, in: source) }.joined())
    case .compiled(let compiled, let warnings):
      _ = compiled.listing(source: source)
      return Outcome(programs: compiled.programs.count, diagnostics: warnings.map { renderer.render($0, in: source) }.joined())
    }
  }
}
