import CodeGen
import Glibc
import Output

/// `-w FILE`: where captured packets go, and what the file's section header says.
public struct PacketCaptureOptions {
  /// The pcapng destination, already open: a file, or standard output for `-w -`.
  public var output: DescriptorOutput
  /// Names swtrace in the file (`shb_userappl`), such as "swtrace 0.1.0".
  public var application: String

  public init(output: DescriptorOutput, application: String) {
    self.output = output
    self.application = application
  }
}

/// Turns capture records into pcapng blocks and writes them; a class because the ring buffer
/// and perf buffer callbacks share it.
final class CaptureSink {
  let decoder: CaptureDecoder
  let output: DescriptorOutput
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
    output.flush()
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
