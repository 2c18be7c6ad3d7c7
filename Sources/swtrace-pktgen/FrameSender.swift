// `swtrace-pktgen frame`: link-layer frames written as given, byte for byte, through a packet
// socket on a virtual device: frames the IP stack would never build (shorter than a header).

import Glibc

struct FrameSender {
  var device: String
  var frame: [UInt8]
  var count: Int
  var mark: UInt32?

  init(arguments: [String]) {
    let options = ParsedOptions(arguments, valued: ["dev", "hex", "count", "mark"])
    device = options.required("dev")
    count = Int(options.integer("count", in: 1...10_000) ?? 1)
    mark = options.integer("mark", in: 0...UInt64(UInt32.max)).map { UInt32($0) }
    let hex = options.required("hex").filter { !$0.isWhitespace && $0 != ":" }
    guard hex.count % 2 == 0, !hex.isEmpty else { usageFailure("option --hex needs an even number of hex digits") }
    var bytes: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
      let next = hex.index(index, offsetBy: 2)
      guard let byte = UInt8(hex[index..<next], radix: 16) else { usageFailure("option --hex: '\(hex[index..<next])' is not hex") }
      bytes.append(byte)
      index = next
    }
    guard bytes.count <= 9000 else { usageFailure("option --hex: at most 9000 bytes") }
    frame = bytes
  }

  /// Virtual devices only (veth, loopback, dummy), so that a hand-made frame never leaves
  /// the machine: sysfs files them under /sys/devices/virtual.
  static func isVirtual(_ device: String) -> Bool {
    guard !device.contains("/"), !device.isEmpty else { return false }
    var buffer = [CChar](repeating: 0, count: 4096)
    let length = readlink("/sys/class/net/\(device)", &buffer, buffer.count - 1)
    guard length > 0 else { return false }
    return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self).contains("/devices/virtual/")
  }

  func run() -> Int32 {
    guard Self.isVirtual(device) else {
      die("refusing --dev \(device): frames are only sent on virtual devices (veth, lo, dummy)", status: Status.usage)
    }
    let index = if_nametoindex(device)
    guard index != 0 else { die("no device \(device): \(errnoDescription())", status: Status.usage) }
    // Protocol 0: the socket sends but receives nothing.
    let fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue), 0)
    guard fd >= 0 else { die("socket(AF_PACKET, SOCK_RAW) failed: \(errnoDescription()); this needs root") }
    defer { close(fd) }
    if let mark { setMark(fd, mark) }
    // struct sockaddr_ll (linux/if_packet.h), which Glibc's module does not export: family,
    // protocol (0: taken from the frame), ifindex, hatype, pkttype, halen, addr[8].
    var address = [UInt8](repeating: 0, count: 20)
    address.withUnsafeMutableBytes { raw in
      raw.storeBytes(of: UInt16(AF_PACKET), toByteOffset: 0, as: UInt16.self)
      raw.storeBytes(of: Int32(index), toByteOffset: 4, as: Int32.self)
    }
    address[11] = 6
    var sent = 0
    while sent < count {
      let rc = frame.withUnsafeBytes { bytes in
        address.withUnsafeBytes { raw in
          sendto(
            fd, bytes.baseAddress, bytes.count, 0, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self),
            socklen_t(raw.count))
        }
      }
      if rc < 0 {
        if errno == EINTR { continue }
        printLine("sent \(sent)")
        die("sendto on \(device) failed after \(sent) frames: \(errnoDescription())")
      }
      sent += 1
    }
    printLine("sent \(sent)")
    return Status.ok
  }
}
