import CodeGen
import Runtime
import Sema
import SwtraceSyntax
import Synchronization

extension TracingEnvironment {
  /// The environment, or the reason there is none printed and the exit status thrown.
  static func forCommandLine(
    btfPath: String?, privilegedDetection: Bool, forcedBackend: Backend? = nil, functionBackends: Bool = true
  ) throws -> TracingEnvironment {
    do throws(EnvironmentError) {
      return try make(
        btfPath: btfPath, privilegedDetection: privilegedDetection, forcedBackend: forcedBackend,
        functionBackends: functionBackends)
    } catch {
      throw report(error)
    }
  }

  /// Prints why there is no environment; the exit status to end with.
  static func report(_ error: EnvironmentError) -> Error {
    Console.error(error.description)
    return error.isSystemRefusal ? ExitStatus.systemRefused : ExitStatus.specError
  }

  /// Compiles and pre-checks, printing diagnostics; throws the spec-error status on failure.
  func compileForCommandLine(
    _ source: SourceFile, mapEntries: Int = 10240, options: DesugaringOptions = DesugaringOptions(),
    snaplen: Int = Snaplen.standard, ringBufferSize: Int = RingBufferSize.standard,
    positionalParameters: [String] = []
  ) throws -> CompiledSpec {
    var compiler = compiler(mapEntries: mapEntries, options: options, snaplen: snaplen, ringBufferSize: ringBufferSize)
    compiler.positionalParameters = positionalParameters
    switch compiler.compile(source) {
    case .failed(let diagnostics):
      Console.diagnostics(diagnostics, in: source)
      throw ExitStatus.specError
    case .compiled(let compiled, let warnings):
      if !warnings.isEmpty { Console.diagnostics(warnings, in: source) }
      // Said once per process, though `check` may compile many specs.
      if let note = backendNote(for: compiled), !backendNoted.exchange(true, ordering: .relaxed) {
        Console.progress(note)
      }
      return compiled
    }
  }
}

private let backendNoted = Atomic<Bool>(false)
