import Glibc

/// Times and buffers as bpftrace prints them.
public enum WallTime {
  /// The wall-clock time of a `CLOCK_MONOTONIC` reading, in local time, formatted with
  /// `strftime(3)`'s conversions: the clocks' offset is measured when the value is printed.
  public static func format(nanoseconds: UInt64, _ format: String) -> String {
    let wall = Int64(bitPattern: nanoseconds) &+ EventFormatter.currentWallClockOffset()
    var seconds = time_t(wall / 1_000_000_000)
    var parts = tm()
    guard localtime_r(&seconds, &parts) != nil else { return String(wall) }
    var buffer = [CChar](repeating: 0, count: 512)
    let written = strftime(&buffer, buffer.count, format, &parts)
    guard written > 0 || format.isEmpty else { return "" }
    return String(decoding: buffer.prefix(written).map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }
}

/// `%r` and `buf()`: bytes as text, each byte outside printable ASCII as `\xNN` (so a value
/// from the kernel never drives the terminal).
public enum BufferText {
  public static func escaped(_ bytes: [UInt8]) -> String {
    var out = ""
    for byte in bytes {
      if (0x20...0x7e).contains(byte) {
        out.unicodeScalars.append(UnicodeScalar(byte))
      } else {
        let hex = String(byte, radix: 16)
        out += "\\x" + (hex.count == 1 ? "0" + hex : hex)
      }
    }
    return out
  }
}
