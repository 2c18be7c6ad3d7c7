public import BTF
public import CodeGen
public import Sema
import Glibc
import Output

/// Why swtrace cannot compile for, or trace on, this system; each case words what to do.
public enum EnvironmentError: Error, Sendable, CustomStringConvertible {
  case btf(BTFLoadError)
  /// The kernel refused every kind of BPF program while detecting backends: no privileges.
  case bpfRefused
  /// `--backend NAME` names a backend this kernel does not allow.
  case backendUnavailable(Backend)
  /// Detecting what the kernel allows ran out of descriptors or memory.
  case shortage(RuntimeError)

  public var description: String {
    switch self {
    case .btf(let error):
      error.description
    case .bpfRefused:
      "the kernel refused to load a BPF program; run swtrace as root (or with CAP_BPF and CAP_PERFMON). "
        + "'swtrace check' works without privileges"
    case .backendUnavailable(let backend):
      "--backend \(backend.rawValue): this kernel does not allow \(backend.rawValue) programs"
    case .shortage(let error):
      error.description
    }
  }

  /// Whether the system refuses (exit status 2) rather than the input being wrong (status 1).
  public var isSystemRefusal: Bool {
    switch self {
    case .btf(.kernelHasNoBTF), .btf(.outOfMemory), .bpfRefused, .backendUnavailable, .shortage: true
    case .btf(.unreadableFile), .btf(.unreadableStream): false
    }
  }
}

/// What compiling a spec for one kernel needs to know: its BTF, what it lets swtrace attach
/// (probed on the running kernel and remembered per boot, everything for a BTF file), and its
/// tracepoint categories (read from tracefs when a probe first asks).
public struct TracingEnvironment: Sendable {
  public let resolver: ProbeResolver

  public init(resolver: ProbeResolver) { self.resolver = resolver }

  /// BTF larger than this is not read from a stream (vmlinux BTF is some 5 to 10 MiB).
  static let maximumStreamedBTF = 512 << 20

  /// The BTF of `btfPath`, or of the running kernel. A path that names a pipe, FIFO or
  /// device (`<(xz -dc vmlinux.btf.xz)`, `/dev/stdin`) is read as a stream first, bounded in
  /// size and never waiting forever for a writer.
  public static func loadTypes(btfPath: String?) throws(EnvironmentError) -> KernelTypes {
    do throws(BTFLoadError) {
      if let btfPath {
        var status = stat()
        guard stat(btfPath, &status) == 0, status.st_mode & S_IFMT != S_IFREG, status.st_mode & S_IFMT != S_IFDIR else {
          return try KernelTypes.load(path: btfPath)
        }
        switch WholeFile.read(btfPath, limit: maximumStreamedBTF) {
        case .success(let bytes): return try KernelTypes.load(bytes: bytes, path: btfPath)
        case .failure(let failure): throw .unreadableStream(path: btfPath, reason: failure.reason)
        }
      }
      return try KernelTypes.loadRunningKernel()
    } catch {
      throw .btf(error)
    }
  }

  public static func make(
    btfPath: String?, privilegedDetection: Bool, forcedBackend: Backend? = nil, functionBackends: Bool = true
  ) throws(EnvironmentError) -> TracingEnvironment {
    try make(
      types: loadTypes(btfPath: btfPath), privilegedDetection: privilegedDetection, forcedBackend: forcedBackend,
      functionBackends: functionBackends)
  }

  /// With `privilegedDetection`, a kernel that refuses every program is an error (tracing
  /// needs them); without it (`check`, `--dump-bpf`), tracepoints are assumed. Without
  /// `functionBackends` (a spec whose probes cannot attach to functions, see
  /// `BackendSupport.functionBackendsMatter`), the kernel is not asked about them.
  public static func make(
    types: KernelTypes, privilegedDetection: Bool, forcedBackend: Backend? = nil, functionBackends: Bool = true
  ) throws(EnvironmentError) -> TracingEnvironment {
    if !types.isRunningKernel {
      return TracingEnvironment(
        resolver: ProbeResolver(types: types, support: .all, forcedFunctionBackend: forcedBackend))
    }
    var (support, shortage) = CapabilityCache.support(types: types, functions: functionBackends || forcedBackend != nil)
    if support.available.isEmpty {
      if privilegedDetection, let shortage { throw .shortage(shortage) }
      if privilegedDetection { throw .bpfRefused }
      support = .tracepointsOnly
    }
    if support.available.contains(.kprobe), KernelCapabilities.kprobesAttachInBulk {
      support.kprobesAttachInBulk = true
    }
    if let forcedBackend, !support.available.contains(forcedBackend) {
      if privilegedDetection, let shortage { throw .shortage(shortage) }
      throw .backendUnavailable(forcedBackend)
    }
    return TracingEnvironment(
      resolver: ProbeResolver(
        types: types, support: support, readingTracepointCategories: KernelCapabilities.tracepointCategories,
        forcedFunctionBackend: forcedBackend, readingTracepointFormat: Tracefs.tracepointFormat,
        checkingTracepointCategory: Tracefs.isTracepoint))
  }

  /// The compiler for this kernel: programs share code through attach cookies where kprobes
  /// attach in bulk.
  public func compiler(
    mapEntries: Int = 10240, options: DesugaringOptions = DesugaringOptions(), snaplen: Int = Snaplen.standard,
    ringBufferSize: Int = RingBufferSize.standard
  ) -> SpecCompiler {
    SpecCompiler(
      resolver: resolver, ringBufferSize: ringBufferSize, mapEntries: mapEntries, options: options,
      kprobeProgramsShareCode: resolver.support.kprobesAttachInBulk, snaplen: snaplen)
  }

  /// The sentence saying that `skb:` probes use tracepoints only, when the running kernel has
  /// no function backend and the spec has `skb:` probes; nil otherwise.
  public func backendNote(for compiled: CompiledSpec) -> String? {
    guard resolver.functionBackend == nil, resolver.types.isRunningKernel, compiled.probeTypes.contains(.skb) else {
      return nil
    }
    // No count: `check` says this once for all its files, and the attach line counts anyway.
    return "kprobes and fentry are not available on this kernel: skb: probes attach to its tracepoints only"
  }
}
