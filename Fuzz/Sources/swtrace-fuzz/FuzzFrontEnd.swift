// libFuzzer's entry point over swtrace's front end (SwtraceFuzzing.FrontEndExercise): lexer,
// parser, Sema against the running kernel's BTF, code generation and the verifier pre-check.

import BTF
import SwtraceFuzzing

/// Built once per process: loading the kernel's BTF takes far longer than one input.
let exercise: FrontEndExercise = {
  do {
    return FrontEndExercise(types: try KernelTypes.loadRunningKernel())
  } catch {
    fatalError("swtrace-fuzz needs the running kernel's BTF (/sys/kernel/btf/vmlinux): \(error)")
  }
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  // -1 keeps input that is not UTF-8 out of the corpus: swtrace refuses it before parsing.
  exercise.run(UnsafeBufferPointer(start: data, count: size)) == nil ? -1 : 0
}
