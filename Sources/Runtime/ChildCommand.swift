import Glibc

/// The `-c` command: `/bin/sh -c CMD` in a process group of its own, so that stopping it
/// stops everything it started (a shell's background jobs, a traffic generator), not just
/// the shell.
public final class ChildCommand {
  public let pid: pid_t
  public private(set) var status: Int32?

  /// With `standardOutputToError`, the command's standard output is swtrace's standard
  /// error: standard output carries something else (`-w -`'s pcapng), which no line of the
  /// command may corrupt.
  public init(_ command: String, standardOutputToError: Bool = false) throws(ChildCommandError) {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if standardOutputToError { posix_spawn_file_actions_adddup2(&actions, 2, 1) }
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    // Its own group, default signal handling, nothing blocked: a clean start for the command.
    var flags = Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
    posix_spawnattr_setflags(&attributes, flags)
    posix_spawnattr_setpgroup(&attributes, 0)
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attributes, &empty)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGINT, SIGTERM, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    flags = 0
    var child: pid_t = 0
    var arguments: [UnsafeMutablePointer<CChar>?] = []
    for word in ["/bin/sh", "-c", command] { arguments.append(strdup(word)) }
    arguments.append(nil)
    defer { arguments.forEach { free($0) } }
    let result = arguments.withUnsafeBufferPointer { argv in
      posix_spawn(&child, "/bin/sh", &actions, &attributes, argv.baseAddress!, environ)
    }
    guard result == 0 else { throw ChildCommandError(code: result) }
    pid = child
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
  }
}

public struct ChildCommandError: Error, Sendable, CustomStringConvertible {
  public var code: Int32
  public var description: String { "cannot start /bin/sh: \(String(cString: strerror(code)))" }
}
