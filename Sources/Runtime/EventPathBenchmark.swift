public import CodeGen
import Glibc
public import Output
import Sema

/// The user-space event path alone, for bench/: ring buffer records of a compiled spec's
/// layouts, built here with plausible values (addresses in 10.200.0.0/16, an interface
/// name, lengths and ports), handed to the same sink the run loop uses, formatted and
/// written to /dev/null. No kernel is involved, so the figure is decoding, formatting and
/// writing only: nanoseconds of this thread's CPU time per event.
public enum EventPathBenchmark {
  public struct Measurement: Sendable {
    public var format: OutputFormat
    public var events: Int
    public var cpuNanosecondsPerEvent: Double
  }

  /// Formats `events` records (cycling over a few hundred distinct ones) in `format`.
  public static func measure(compiled: CompiledSpec, format: OutputFormat, events: Int) -> Measurement? {
    let records = syntheticRecords(compiled, distinct: 512)
    guard !records.isEmpty else { return nil }
    let descriptor = open("/dev/null", O_WRONLY | O_CLOEXEC)
    guard descriptor >= 0 else { return nil }
    let output = DescriptorOutput(descriptor: descriptor, capacity: 4 << 20)
    let sink = EventSink(
      decoder: EventDecoder(compiled: compiled),
      formatter: EventFormatter(format: format, host: "bench", wallClockOffset: 1_700_000_000_000_000_000),
      output: output, printsEvents: true, pathLimits: PathLimits(), passedOnce: [], writers: [])
    // A first pass outside the measurement: buffers reach their size.
    for record in records { record.withUnsafeBytes { _ = sink.handle($0) } }
    output.flush()
    let before = threadCPUNanoseconds()
    var index = 0
    for _ in 0..<events {
      records[index].withUnsafeBytes { _ = sink.handle($0) }
      index = index + 1 == records.count ? 0 : index + 1
    }
    output.flush()
    let spent = threadCPUNanoseconds() - before
    output.finish()
    close(descriptor)
    return Measurement(format: format, events: events, cpuNanosecondsPerEvent: Double(spent) / Double(events))
  }

  /// This thread's CPU time.
  static func threadCPUNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
  }

  /// `distinct` records per print layout of the spec, their values varied by a simple generator.
  static func syntheticRecords(_ compiled: CompiledSpec, distinct: Int) -> [[UInt8]] {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    func next() -> UInt64 {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return state >> 11
    }
    var records: [[UInt8]] = []
    let interfaces = ["veth-bench0", "eth0", "lo", "veth-bench1"]
    for layout in compiled.layouts where layout.format == nil && !layout.fields.contains(where: { $0.type == .kernelStack }) {
      for n in 0..<distinct {
        var record = [UInt8](repeating: 0, count: layout.size)
        func put(_ value: UInt64, at offset: Int, width: Int) {
          for byte in 0..<min(width, 8) where offset + byte < record.count {
            record[offset + byte] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(byte)))
          }
        }
        put(1_000_000_000_000 + UInt64(n) * 1733, at: EventHeader.timestampOffset, width: 8)
        put(UInt64(n % 2), at: EventHeader.cpuOffset, width: 4)
        put(UInt64(n % max(compiled.probeNames.count, 1)), at: EventHeader.probeOffset, width: 4)
        put(UInt64(layout.id), at: EventHeader.layoutOffset, width: 4)
        put(0xffff_8880_0000_0000 + next() % 0x1000_0000 * 256, at: EventHeader.skbOffset, width: 8)
        for field in layout.fields {
          if let presence = field.presenceOffset { record[presence] = 1 }
          switch field.type {
          case .integer(let bytes, _):
            put(bytes >= 2 ? 28 + next() % 1472 : next() % 256, at: field.offset, width: bytes)
          case .bool: put(next() % 2, at: field.offset, width: 1)
          case .string(let capacity):
            let name = Array(interfaces[n % interfaces.count].utf8.prefix(capacity - 1))
            for (i, byte) in name.enumerated() { record[field.offset + i] = byte }
          case .ipv4: put(0x0AC8_0000 | next() % 0x10000, at: field.offset, width: 4)
          case .ipv6:
            let bytes: [UInt8] = [0xfd, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, UInt8(n % 256), 1]
            for (i, byte) in bytes.enumerated() where i < field.size { record[field.offset + i] = byte }
          case .ipAddress:
            put(0x0AC8_0000 | next() % 0x10000, at: field.offset, width: 4)
            record[field.offset + 16] = 4
          case .pointer, .kernelSymbol: put(0xffff_8880_0000_0000 + next() % 0x1000_0000, at: field.offset, width: 8)
          default: put(next() % 4, at: field.offset, width: min(field.size, 8))
          }
        }
        records.append(record)
      }
    }
    return records
  }
}
