import Glibc

/// Where a trace writes its lines: events, maps, BEGIN/END text. The run stops when the
/// reader has gone away (`isClosed`).
public protocol LineOutput: AnyObject {
  func writeLine(_ line: String)
  func flush()
  var isClosed: Bool { get }
}

/// Buffered output to a file descriptor (standard output by default) that reports a closed
/// pipe instead of dying of SIGPIPE.
public final class DescriptorOutput: LineOutput {
  private let descriptor: Int32
  private var buffer: [UInt8] = []
  public private(set) var isClosed = false

  public init(descriptor: Int32 = 1) {
    self.descriptor = descriptor
    signal(SIGPIPE, SIG_IGN)
    buffer.reserveCapacity(1 << 16)
  }

  public func writeLine(_ line: String) {
    guard !isClosed else { return }
    buffer.append(contentsOf: line.utf8)
    buffer.append(UInt8(ascii: "\n"))
    if buffer.count >= 1 << 15 { flush() }
  }

  public func flush() {
    guard !isClosed, !buffer.isEmpty else { return }
    var offset = 0
    while offset < buffer.count {
      let written = buffer[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
      if written < 0 {
        if errno == EINTR { continue }
        // The reader went away (`| head -1`): stop writing; tracing ends cleanly.
        isClosed = true
        break
      }
      offset += written
    }
    buffer.removeAll(keepingCapacity: true)
  }
}
