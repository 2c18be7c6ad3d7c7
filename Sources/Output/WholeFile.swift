import Glibc

/// Reads whole files with a bound on their size, before reading: specs, BTF given with
/// `--btf`, and /proc and tracefs files. A regular file too large is refused by its size
/// alone; a pipe, FIFO, socket or character device (`-`, `/dev/stdin`, `<(...)`) is read as
/// a stream up to the bound, never waiting longer than `idleTimeout` for the next bytes (a
/// FIFO no program writes to, a writer that stalls). Opening never waits for a FIFO's writer.
public enum WholeFile {
  /// Why a file could not be read.
  public enum Failure: Error, Sendable, Equatable {
    /// open(2) or read(2) failed with this errno (ENOENT, EACCES, EISDIR, ...).
    case system(Int32)
    /// Larger than the bound: `size` for a regular file, nil for a stream that went on.
    case tooLarge(size: Int?, limit: Int)
    /// Nothing arrived for `seconds` (a FIFO nobody writes to, a stalled writer).
    case stalled(seconds: Int)

    /// The reason in words, to follow "cannot read X: ".
    public var reason: String {
      switch self {
      case .system(ENOENT): "no such file"
      case .system(EISDIR): "it is a directory"
      case .system(EACCES): "permission denied"
      case .system(let code): String(cString: strerror(code))
      case .tooLarge(let size?, let limit): "it is \(size) bytes, more than the limit of \(limit)"
      case .tooLarge(nil, let limit): "it holds more than \(limit) bytes, the limit"
      case .stalled(let seconds): "nothing arrived from it for \(seconds) s"
      }
    }
  }

  /// Whether `path` is a regular file (or a link to one): what libraries that read files
  /// themselves by name can be handed.
  public static func isRegularFile(_ path: String) -> Bool {
    var status = stat()
    return stat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFREG
  }

  /// The bytes of `path`, at most `limit`.
  public static func read(_ path: String, limit: Int, idleTimeout: Int = 30) -> Result<[UInt8], Failure> {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
    guard descriptor >= 0 else { return .failure(.system(errno)) }
    defer { close(descriptor) }
    return read(descriptor: descriptor, limit: limit, idleTimeout: idleTimeout)
  }

  /// The bytes of an open descriptor (standard input for `-`), at most `limit`.
  public static func read(descriptor: Int32, limit: Int, idleTimeout: Int = 30) -> Result<[UInt8], Failure> {
    var status = stat()
    guard fstat(descriptor, &status) == 0 else { return .failure(.system(errno)) }
    let kind = status.st_mode & S_IFMT
    if kind == S_IFDIR { return .failure(.system(EISDIR)) }
    if kind == S_IFREG, status.st_size > limit { return .failure(.tooLarge(size: Int(status.st_size), limit: limit)) }
    // Streams are waited for with poll(2), a bounded time; someone typing at a terminal is
    // not a stalled writer, and is waited for as long as they type.
    let wait: Int32? = kind == S_IFREG ? nil : isatty(descriptor) == 1 ? -1 : Int32(idleTimeout * 1000)
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
      if let wait {
        var ready = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let polled = poll(&ready, 1, wait)
        if polled < 0 {
          if errno == EINTR { continue }
          return .failure(.system(errno))
        }
        if polled == 0 { return .failure(.stalled(seconds: idleTimeout)) }
      }
      let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, min($0.count, limit + 1 - data.count)) }
      if count < 0 {
        let code = errno
        if code == EINTR || code == EAGAIN { continue }
        return .failure(.system(code))
      }
      if count == 0 { return .success(data) }
      data += chunk[0..<count]
      if data.count > limit { return .failure(.tooLarge(size: kind == S_IFREG ? data.count : nil, limit: limit)) }
    }
  }
}
