internal import CProcessShims
import Glibc

/// The `-c` command: `/bin/sh -c CMD` in a process group of its own, so that stopping it
/// stops everything it started (a shell's background jobs, a traffic generator), not just
/// the shell. A small guardian process (CProcessShims) leads the group: it ends the group when
/// swtrace asks, and when swtrace dies, however it dies (the kernel's parent-death signal
/// reaches it even after SIGKILL), so the command never outlives swtrace.
public final class ChildCommand {
  /// The guardian's pid, which is also the process group's id. Its exit status is the
  /// shell's.
  public let pid: Int32
  public private(set) var status: Int32?
  /// Readable (poll(2)) once the guardian has ended, which it does as soon as the command
  /// does: the run loop waits on it with the ring buffer, so the end of the command ends the
  /// wait at once. nil where the kernel has no pidfd_open (before 5.3): the loop then looks
  /// every few milliseconds.
  public private(set) var endedDescriptor: Int32?

  /// Starts `command`; its standard output goes to `standardOutput` when given (swtrace's
  /// stderr, when swtrace's own stdout carries JSON). Call it on the thread that stays for
  /// the whole run (the main thread): the parent-death signal follows the thread that
  /// started the guardian, not the process.
  public init(_ command: String, standardOutput: Int32? = nil, grace milliseconds: Int32 = 500) throws(ChildCommandError) {
    var arguments: [UnsafeMutablePointer<CChar>?] = (["/bin/sh", "-c", command] as [String]).map { strdup($0) }
    arguments.append(nil)
    defer { arguments.forEach { free($0) } }
    let child = swt_spawn_guarded(arguments, environ, standardOutput ?? -1, milliseconds)
    guard child > 0 else { throw ChildCommandError(code: errno) }
    pid = child
    // The guardian is swtrace's child and is not reaped before `stop`, so its pid cannot be
    // reused by another process in between.
    let descriptor = swt_pidfd_open(child)
    endedDescriptor = descriptor >= 0 ? descriptor : nil
  }

  deinit { closeEndedDescriptor() }

  private func closeEndedDescriptor() {
    if let endedDescriptor { close(endedDescriptor) }
    endedDescriptor = nil
  }

  /// Whether the command is still running; reaps it once it has ended.
  public var isRunning: Bool {
    guard status == nil else { return false }
    var raw: Int32 = 0
    let result = waitpid(pid, &raw, WNOHANG)
    if result == pid {
      status = raw
      return false
    }
    return result == 0
  }

  /// The shell's exit code, when it exited rather than being killed.
  public var exitCode: Int32? {
    guard let status, status & 0x7f == 0 else { return nil }
    return (status >> 8) & 0xff
  }

  /// The signal that ended the shell, when one did.
  public var terminatingSignal: Int32? {
    guard let status, status & 0x7f != 0, status & 0x7f != 0x7f else { return nil }
    return status & 0x7f
  }

  /// Stops the whole process group: SIGTERM, then SIGKILL after a grace period.
  public func stop(grace milliseconds: Int = 500) {
    guard isRunning else {
      // The shell is gone, but what it started in the background may not be.
      kill(-pid, SIGTERM)
      closeEndedDescriptor()
      return
    }
    kill(-pid, SIGTERM)
    for _ in 0..<(milliseconds / 10) {
      if !isRunning { break }
      usleep(10_000)
    }
    if isRunning { kill(-pid, SIGKILL) }
    kill(-pid, SIGKILL)
    var raw: Int32 = 0
    if status == nil, waitpid(pid, &raw, 0) == pid { status = raw }
    closeEndedDescriptor()
  }
}

public struct ChildCommandError: Error, Sendable, CustomStringConvertible {
  public var code: Int32
  public var description: String { "cannot start /bin/sh: \(String(cString: strerror(code)))" }
}
