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

/// Turns capture records into pcapng blocks and appends them to the capture's output, one
/// packet per event, so that the run loop drives, drains and accounts it like the event
/// output; a class because the ring buffer and perf buffer callbacks share it.
final class CaptureSink {
  let decoder: CaptureDecoder
  let output: DescriptorOutput
  private var writer: PcapngWriter
  /// While set, records are counted in `discarded` rather than written: the output's time
  /// after the stop ran out.
  var discarding = false
  /// Packets left in the rings when the output's time was up: counted, not decoded.
  private(set) var discarded: UInt64 = 0

  init(compiled: CompiledSpec, stacks: KernelStackTable?, options: PacketCaptureOptions, wallClockOffset: Int64) {
    decoder = CaptureDecoder(compiled: compiled, stacks: stacks)
    output = options.output
    writer = PcapngWriter(
      application: options.application, system: Self.systemName(), snaplen: compiled.snaplen,
      wallClockOffset: wallClockOffset)
    // The section header, even when no packet follows: tshark reads an empty capture.
    output.append(writer.take(), events: 0)
  }

  func handle(_ bytes: UnsafeRawBufferPointer) {
    if discarding {
      discarded += 1
      return
    }
    guard let packet = decoder.decode(bytes) else { return }
    writer.write(packet)
    // The packet block, after the interface block of a probe seen for the first time.
    output.append(writer.take(), events: 1)
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
