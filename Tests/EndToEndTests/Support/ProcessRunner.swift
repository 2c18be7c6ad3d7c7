// Runs external programs for the end-to-end tests: captures stdout and stderr, enforces
// a timeout, and kills the whole process group of a program that overstays it.

import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// What a finished (or killed) program left behind.
struct ProcessResult: Sendable, CustomStringConvertible {
  let command: [String]
  /// The exit status, or 128 + signal number when a signal ended the program.
  let status: Int32
  let stdout: String
  let stderr: String
  /// True when the program was killed because it ran past its timeout.
  let timedOut: Bool
  let seconds: Double

  var succeeded: Bool { status == 0 && !timedOut }

  var stdoutLines: [String] { stdout.split(separator: "\n").map(String.init) }
  var stderrLines: [String] { stderr.split(separator: "\n").map(String.init) }

  var description: String {
    var text = "`\(command.map(shellQuote).joined(separator: " "))` exited with status \(status)"
    if timedOut { text += " after being killed at its timeout" }
    text += String(format: " in %.2f s", seconds)
    text += "\n--- stdout (last 40 lines) ---\n" + lastLines(stdout, 40)
    text += "\n--- stderr (last 40 lines) ---\n" + lastLines(stderr, 40)
    return text
  }
}

struct ProcessRunnerError: Error, CustomStringConvertible {
  let description: String
}

/// A started program. Its output is read on background threads while it runs, so a
/// chatty program never blocks on a full pipe.
final class RunningProcess: @unchecked Sendable {
  let command: [String]
  private let process = Process()
  private let exited = DispatchSemaphore(value: 0)
  private let outputRead = DispatchGroup()
  private let lock = NSLock()
  private var stdoutData = Data()
  private var stderrData = Data()
  private var finished: ProcessResult?
  private let started = Date()

  /// Starts `executable` (a path, or a name looked up in PATH) with `arguments`.
  init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws {
    guard let path = findExecutable(executable) else {
      throw ProcessRunnerError(description: "cannot find executable '\(executable)'")
    }
    command = [path] + arguments
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let stdoutPipe = Pipe()
    let stderrPipe = Pipe()
    process.standardOutput = stdoutPipe
    process.standardError = stderrPipe
    process.standardInput = FileHandle.nullDevice
    let exited = self.exited
    process.terminationHandler = { _ in exited.signal() }
    do {
      // Test functions run on dispatch worker threads, which block nearly every signal,
      // and posix_spawn hands the calling thread's mask to the child. A child started
      // with SIGTERM and SIGINT blocked can be neither stopped nor interrupted (and
      // passes that on to its own children), so spawn with an empty mask.
      try withEmptySignalMask { try process.run() }
    } catch {
      throw ProcessRunnerError(description: "cannot start \(path): \(error)")
    }
    read(stdoutPipe.fileHandleForReading) { data, me in me.stdoutData = data }
    read(stderrPipe.fileHandleForReading) { data, me in me.stderrData = data }
  }

  var pid: Int32 { process.processIdentifier }

  private func read(_ handle: FileHandle, store: @escaping @Sendable (Data, RunningProcess) -> Void) {
    outputRead.enter()
    Thread.detachNewThread { [self] in
      let data = handle.readDataToEndOfFile()
      lock.withLock { store(data, self) }
      outputRead.leave()
    }
  }

  /// Sends `signal` to the program's process group when it leads one (Foundation starts
  /// children in their own session on Linux), else to the program alone.
  func signal(_ signal: Int32) {
    let pid = process.processIdentifier
    guard pid > 0 else { return }
    if getpgid(pid) == pid {
      kill(-pid, signal)
    } else {
      kill(pid, signal)
    }
  }

  /// Waits until the program exits, at most `timeout` seconds; then sends SIGTERM, and
  /// SIGKILL 3 s later. Returns the captured result. Calling it again returns the same.
  func wait(timeout: Double) -> ProcessResult {
    if let done = lock.withLock({ finished }) { return done }
    var timedOut = false
    if exited.wait(timeout: .now() + timeout) == .timedOut {
      timedOut = true
      signal(SIGTERM)
      if exited.wait(timeout: .now() + 3) == .timedOut {
        signal(SIGKILL)
        _ = exited.wait(timeout: .now() + 5)
      }
    }
    // A grandchild that inherited the pipes can keep them open; don't wait for it long.
    _ = outputRead.wait(timeout: .now() + (timedOut ? 2 : 10))
    let status: Int32
    if process.isRunning {
      status = -1
    } else if process.terminationReason == .uncaughtSignal {
      status = 128 + process.terminationStatus
    } else {
      status = process.terminationStatus
    }
    let seconds = Date().timeIntervalSince(started)
    return lock.withLock {
      let result = ProcessResult(
        command: command, status: status,
        stdout: String(decoding: stdoutData, as: UTF8.self),
        stderr: String(decoding: stderrData, as: UTF8.self),
        timedOut: timedOut, seconds: seconds)
      finished = result
      return result
    }
  }

  /// Stops the program if it is still running (SIGTERM, then SIGKILL) and collects it.
  @discardableResult
  func stop() -> ProcessResult {
    if process.isRunning { signal(SIGTERM) }
    return wait(timeout: 3)
  }

  deinit {
    if process.isRunning { signal(SIGKILL) }
  }
}

enum ProcessRunner {
  /// Runs a program to completion (or until `timeout` seconds pass) and returns what it did.
  static func run(
    _ executable: String, _ arguments: [String], timeout: Double = 60,
    environment: [String: String]? = nil
  ) throws -> ProcessResult {
    try RunningProcess(executable, arguments, environment: environment).wait(timeout: timeout)
  }

  /// Runs `command` with `/bin/sh -c`.
  static func shell(_ command: String, timeout: Double = 60) throws -> ProcessResult {
    try run("/bin/sh", ["-c", command], timeout: timeout)
  }
}

/// Runs `body` with every signal unblocked on the calling thread, then restores the mask.
func withEmptySignalMask<R>(_ body: () throws -> R) rethrows -> R {
  var empty = sigset_t()
  var saved = sigset_t()
  sigemptyset(&empty)
  pthread_sigmask(SIG_SETMASK, &empty, &saved)
  defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
  return try body()
}

/// Resolves a program name through PATH plus the sbin directories (where `ip` lives,
/// and which a test runner's PATH may lack). Paths containing a slash are used as given.
func findExecutable(_ name: String) -> String? {
  if name.contains("/") {
    return FileManager.default.isExecutableFile(atPath: name) ? name : nil
  }
  let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
  let directories = path.split(separator: ":").map(String.init)
    + ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
  for directory in directories where !directory.isEmpty {
    let candidate = directory + "/" + name
    if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
  }
  return nil
}

/// Quotes a word for /bin/sh, for commands handed to `swtrace -c` and for messages.
func shellQuote(_ word: String) -> String {
  let safe = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%")
  if !word.isEmpty && word.unicodeScalars.allSatisfy({ safe.contains($0) }) { return word }
  return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

func lastLines(_ text: String, _ count: Int) -> String {
  text.split(separator: "\n", omittingEmptySubsequences: false).suffix(count).joined(separator: "\n")
}
