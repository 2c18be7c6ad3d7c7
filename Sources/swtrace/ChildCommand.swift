import Glibc

/// The `-c` command: `/bin/sh -c CMD` in a process group of its own, so that stopping it
/// stops everything it started (a shell's background jobs, a traffic generator), not just
/// the shell.
final class ChildCommand {
  let pid: pid_t
  private(set) var status: Int32?

  init(_ command: String) throws(ChildCommandError) {
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
      posix_spawn(&child, "/bin/sh", nil, &attributes, argv.baseAddress!, environ)
    }
    guard result == 0 else { throw ChildCommandError(code: result) }
    pid = child
  }

  /// Whether the command is still running; reaps it once it has ended.
  var isRunning: Bool {
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
  var exitCode: Int32? {
    guard let status, status & 0x7f == 0 else { return nil }
    return (status >> 8) & 0xff
  }

  /// The signal that ended the shell, when one did.
  var terminatingSignal: Int32? {
    guard let status, status & 0x7f != 0, status & 0x7f != 0x7f else { return nil }
    return status & 0x7f
  }

  /// Says how a command that ended on its own went, when not well, and returns swtrace's
  /// exit status for it: 2 when the shell could not run it at all (126, 127), 3 when it
  /// exited with another non-zero status, and 0 when it succeeded or a signal from
  /// elsewhere ended it (stopping the command is a way to end a trace).
  static func report(_ child: ChildCommand) -> Int32 {
    if let code = child.exitCode {
      switch code {
      case 0: return 0
      case 126, 127:
        Console.error(
          "the -c command could not be run (the shell exited with \(code): command not found or not executable)")
        return 2
      default:
        Console.error("the -c command failed: it exited with status \(code) (swtrace exits with 3)")
        return ExitStatus.commandFailed
      }
    }
    if let signal = child.terminatingSignal {
      Console.note("the -c command was ended by signal \(signal) (\(String(cString: strsignal(signal))))")
    }
    return 0
  }

  /// Stops the whole process group: SIGTERM, then SIGKILL after a grace period.
  func stop(grace milliseconds: Int = 500) {
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

struct ChildCommandError: Error, CustomStringConvertible {
  var code: Int32
  var description: String { "cannot start /bin/sh: \(String(cString: strerror(code)))" }
}
