// The fuzzer's findings, replayed: every file in Fuzz/Regressions is an input that once
// crashed the front end (named after what it broke), or a hard one kept on purpose (deep
// nesting, literals too large, control bytes), and must compile or be refused with an error. The specs and the grammar reference's examples, the fuzzer's seeds, go
// through the same path, so that a seed that crashes fails here before any fuzzing.

import BTF
import Foundation
import SwtraceFuzzing
import Testing
import TestSupport

/// The running kernel's BTF once for the whole suite, or why there is none.
let runningKernel: Result<FrontEndExercise, BTFLoadError> = Result { () throws(BTFLoadError) in
  FrontEndExercise(types: try KernelTypes.loadRunningKernel())
}

let regressionsDirectory = Fixtures.repositoryRoot.appendingPathComponent("Fuzz/Regressions")

/// Names of the files under `directory`, sorted, hidden files left out.
func inputFiles(in directory: URL) -> [String] {
  ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
    .filter { !$0.hasPrefix(".") }.sorted()
}

@Suite("fuzzer regressions (issue 10)")
struct FuzzRegressionTests {
  @Test("inputs the fuzzer crashed on are compiled or refused, never a crash", arguments: inputFiles(in: regressionsDirectory))
  func regression(name: String) throws {
    let exercise: FrontEndExercise
    switch runningKernel {
    case .success(let loaded): exercise = loaded
    case .failure(let error): return print("skip: \(#function): \(error)")
    }
    let data = try Data(contentsOf: regressionsDirectory.appendingPathComponent(name))
    let outcome = data.withUnsafeBytes { exercise.run($0.bindMemory(to: UInt8.self)) }
    if let outcome, outcome.programs == nil {
      #expect(outcome.diagnostics.contains("error:"), "\(name) was refused without an error:\n\(outcome.diagnostics)")
    }
  }

  @Test("the fuzzer's seeds: specs/ and the reference's examples")
  func seeds() throws {
    let exercise: FrontEndExercise
    switch runningKernel {
    case .success(let loaded): exercise = loaded
    case .failure(let error): return print("skip: \(#function): \(error)")
    }
    let specs = Fixtures.repositoryRoot.appendingPathComponent("specs")
    var inputs = try inputFiles(in: specs).map { try String(contentsOf: specs.appendingPathComponent($0), encoding: .utf8) }
    inputs += try referenceExamples().map(\.text)
    #expect(inputs.count > 20)
    // Many compile only on some kernels (kprobe needs a function backend); here each must
    // come through, compiled or refused with an error.
    for input in inputs {
      let outcome = exercise.run(input)
      if outcome.programs == nil {
        #expect(outcome.diagnostics.contains("error:"), "refused without an error:\n\(input)\n\(outcome.diagnostics)")
      }
    }
  }
}
