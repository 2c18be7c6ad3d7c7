import BTF
import Foundation
import Runtime
import Sema

/// The running kernel's BTF and what it lets us load, or nil after printing why programs
/// cannot be loaded here (not root, or BPF refused), for tests that load into the kernel.
func runningKernelForLoading() throws -> (types: KernelTypes, support: BackendSupport)? {
  guard geteuid() == 0 else {
    print("skip: loading programs into the kernel needs root")
    return nil
  }
  let types = try KernelTypes.loadRunningKernel()
  let support = KernelCapabilities.detect(types: types)
  guard !support.available.isEmpty else {
    print("skip: the kernel refuses BPF programs here")
    return nil
  }
  return (types, support)
}
