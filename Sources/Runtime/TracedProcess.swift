internal import CProcessShims
import Glibc

/// The process of `-p PID`: whether it runs, asked at start and while tracing.
public enum TracedProcess {
  /// True while the process exists and has not exited: a zombie, exited but not yet
  /// reaped by its parent, counts as gone.
  public static func isRunning(_ pid: Int32) -> Bool {
    guard pid > 0 else { return false }
    if kill(pid, 0) != 0, errno == ESRCH { return false }
    return state(pid).map { $0 != "Z" && $0 != "X" } ?? true
  }

  /// A descriptor that polls readable once the process has ended (a pidfd), for the run
  /// loop's wait; nil where the kernel has none or the process is gone. The caller closes it.
  static func endedDescriptor(_ pid: Int32) -> Int32? {
    let descriptor = swt_pidfd_open(pid)
    return descriptor >= 0 ? descriptor : nil
  }

  /// The state letter of /proc/PID/stat (R, S, D, Z, ...), or nil when it cannot be read.
  static func state(_ pid: Int32) -> Character? {
    let descriptor = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    var bytes = [UInt8](repeating: 0, count: 1024)
    let count = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
    guard count > 0 else { return nil }
    // "PID (COMM) STATE ...": COMM may hold spaces and parentheses, so the state follows
    // the last ')'.
    let text = bytes[..<count]
    guard let close = text.lastIndex(of: UInt8(ascii: ")")), close + 2 < count else { return nil }
    return Character(Unicode.Scalar(text[close + 2]))
  }
}
