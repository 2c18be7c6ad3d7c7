// The running kernel for tests that load programs into it (the differential tests, the
// runtime's): its BTF and what it lets us load, and the trait that skips them, saying why,
// where programs cannot be loaded.

public import BTF
import Glibc
public import Runtime
public import Sema
public import Testing
import TestSupport

public enum RunningKernel {
  /// Why programs cannot be loaded here, or nil: asked once per test process.
  public static let loadingSkipReason: String? = {
    guard geteuid() == 0 else { return "not root (euid \(geteuid())): loading programs into the kernel needs root" }
    guard let types = try? KernelTypes.loadRunningKernel() else { return "the running kernel has no BTF" }
    guard !KernelCapabilities.detect(types: types).available.isEmpty else { return "the kernel refuses BPF programs here" }
    return nil
  }()

  /// The running kernel's BTF and its backends, detected now. Tests that call this carry
  /// `.needsKernelLoading`.
  public static func forLoading() throws -> (types: KernelTypes, support: BackendSupport) {
    let types = try KernelTypes.loadRunningKernel()
    return (types, KernelCapabilities.detect(types: types))
  }
}

extension Trait where Self == ConditionTrait {
  /// Root, and a kernel that loads BPF programs.
  public static var needsKernelLoading: Self {
    .requires("needs root and a kernel that loads BPF programs") { RunningKernel.loadingSkipReason }
  }
}
