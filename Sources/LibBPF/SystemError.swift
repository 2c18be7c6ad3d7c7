internal import CLibBPF
import Glibc

/// A failed system or libbpf call, with the errno read right after it.
public struct SystemError: Error, Sendable, Hashable, CustomStringConvertible {
  public var operation: String
  public var code: Int32

  public init(_ operation: String, code: Int32) {
    self.operation = operation
    self.code = code
  }

  /// Kernel or libbpf refusal because of missing privilege.
  public var isPermissionDenied: Bool { code == EPERM || code == EACCES }

  public var description: String {
    "\(operation): \(String(cString: strerror(code))) (errno \(code))"
  }
}

/// Turns libbpf's "negative value or -1 with errno" convention into a typed error. errno is
/// read here, right after the call, and nowhere else.
@inline(__always)
func checked(_ operation: String, _ body: () -> Int32) throws(SystemError) -> Int32 {
  while true {
    let result = body()
    if result >= 0 { return result }
    let code = result < -1 ? -result : swt_errno()
    if code == EINTR { continue }
    throw SystemError(operation, code: code == 0 ? EINVAL : code)
  }
}

/// An owned file descriptor, closed exactly once.
public final class FileDescriptor: @unchecked Sendable {
  public let rawValue: Int32
  private var isClosed = false

  init(_ rawValue: Int32) { self.rawValue = rawValue }

  public func close() {
    guard !isClosed else { return }
    isClosed = true
    _ = Glibc.close(rawValue)
  }

  deinit { close() }
}

/// Facts about the process and kernel that several stages ask for.
public enum SystemInfo {
  /// The number of possible CPUs: per-CPU map values have one slot for each.
  public static func possibleCPUCount() -> Int {
    let count = libbpf_num_possible_cpus()
    return count > 0 ? Int(count) : 1
  }

  /// Stops libbpf from printing on its own; swtrace words every failure itself.
  public static func silenceLibBPF() { swt_silence_libbpf() }

  /// Turns on the kernel's per-program run time statistics while the returned descriptor is open.
  public static func enableRunTimeStatistics() throws(SystemError) -> FileDescriptor {
    let fd = try checked("enable BPF statistics") { bpf_enable_stats(BPF_STATS_RUN_TIME) }
    return FileDescriptor(fd)
  }
}
