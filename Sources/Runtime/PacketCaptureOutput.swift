import CodeGen
import Glibc
import Output

/// `-w FILE`: where captured packets go, and what the file's section header says.
public struct PacketCaptureOptions: Sendable {
  /// The pcapng destination, already open: a file, or standard output for `-w -`.
  public var output: ByteOutput
  /// Names swtrace in the file (`shb_userappl`), such as "swtrace 0.1.0".
  public var application: String

  public init(output: ByteOutput, application: String) {
    self.output = output
    self.application = application
  }
}

/// Unbuffered binary output to a file descriptor: every write is checked. A reader that went
/// away (`| tshark -r -` ended) closes it, as it does text output; any other failure (a full
/// disk) is kept to be reported.
public final class ByteOutput: @unchecked Sendable {
  private let descriptor: Int32
  private let ownsDescriptor: Bool
  public private(set) var isClosed = false
  /// Why writing failed, other than the reader going away.
  public private(set) var failure: String?
  /// Bytes written so far.
  public private(set) var written: UInt64 = 0

  /// Whether this is standard output, which then carries nothing else.
  public var isStandardOutput: Bool { descriptor == 1 }

  public init(descriptor: Int32, ownsDescriptor: Bool = false) {
    self.descriptor = descriptor
    self.ownsDescriptor = ownsDescriptor
    signal(SIGPIPE, SIG_IGN)
  }

  /// Creates (or truncates) `path` for writing; "-" is standard output.
  public static func open(_ path: String) -> Result<ByteOutput, CaptureFileError> {
    if path == "-" { return .success(ByteOutput(descriptor: 1)) }
    let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else {
      return .failure(CaptureFileError(path: path, reason: String(cString: strerror(errno))))
    }
    return .success(ByteOutput(descriptor: descriptor, ownsDescriptor: true))
  }

  deinit {
    if ownsDescriptor { _ = Glibc.close(descriptor) }
  }

  public func write(_ bytes: [UInt8]) {
    guard !isClosed, !bytes.isEmpty else { return }
    var offset = 0
    while offset < bytes.count {
      let result = bytes[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
      if result < 0 {
        let code = errno
        if code == EINTR { continue }
        isClosed = true
        if code != EPIPE { failure = String(cString: strerror(code)) }
        return
      }
      offset += result
      written += UInt64(result)
    }
  }
}

/// A capture file that could not be created.
public struct CaptureFileError: Error, Sendable, CustomStringConvertible {
  public var path: String
  public var reason: String
  public var description: String { "cannot write the capture file \(path): \(reason)" }
}

/// Turns capture records into pcapng blocks and writes them; a class because the ring buffer
/// and perf buffer callbacks share it.
final class CaptureSink {
  let decoder: CaptureDecoder
  let output: ByteOutput
  private var writer: PcapngWriter
  private(set) var packets: UInt64 = 0

  init(compiled: CompiledSpec, stacks: KernelStackTable?, options: PacketCaptureOptions, wallClockOffset: Int64) {
    decoder = CaptureDecoder(compiled: compiled, stacks: stacks)
    output = options.output
    writer = PcapngWriter(
      application: options.application, system: Self.systemName(), snaplen: compiled.snaplen,
      wallClockOffset: wallClockOffset)
    flush()
  }

  func handle(_ bytes: UnsafeRawBufferPointer) {
    guard let packet = decoder.decode(bytes) else { return }
    writer.write(packet)
    packets += 1
    if writer.pending.count >= 1 << 16 { flush() }
  }

  func flush() {
    output.write(writer.take())
  }

  /// `uname -sr`, for the section header's `shb_os`.
  static func systemName() -> String {
    var name = utsname()
    guard uname(&name) == 0 else { return "Linux" }
    func text<T>(_ field: T) -> String {
      withUnsafeBytes(of: field) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
    return "\(text(name.sysname)) \(text(name.release))"
  }
}
