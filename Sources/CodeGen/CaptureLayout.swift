import Sema
public import SwtraceSyntax

/// The record of one packet capture (`-w`): the event header, the comment's values, the skb
/// fields that locate the packet, what the program worked out from them, and the bytes
/// between the capture's start and `skb->data` (the MAC and network headers a receive path
/// has already pulled). The rest of the packet follows the record: written by
/// `bpf_skb_output` into a perf ring (tracing programs, linear and paged data alike), or
/// copied from the linear data into the same ring buffer record (kprobes).
public struct CaptureLayout: Hashable, Sendable {
  /// Index into `CompiledSpec.captureLayouts`; records carry `id | captureLayoutFlag`.
  public var id: UInt32
  /// The comment's values, labelled.
  public var comment: [EventField]
  /// Where each skb field sits (`PacketGeometry`'s parts).
  public var length: EventField
  public var pagedLength: EventField
  public var macHeader: EventField
  public var networkHeader: EventField
  public var head: EventField
  public var data: EventField
  public var deviceType: EventField?
  /// u32s the program fills: the capture's start as an offset from `head`, how many bytes of
  /// the prefix it copied, and how many bytes follow the record.
  public var startOffset: Int
  public var prefixLengthOffset: Int
  public var capturedOffset: Int
  /// Where the prefix bytes are, and how many fit.
  public var prefixOffset: Int
  public var prefixCapacity: Int
  /// Bytes of the record before the packet's data.
  public var metaSize: Int
  public var range: SourceRange
}

/// Records of packet captures carry this bit in their layout id; event records do not.
public let captureLayoutFlag: UInt32 = 0x4000_0000

/// `--snaplen`'s bounds and default. A perf record (the tracing backends' channel) holds at
/// most 64 KiB with its header and the record before the packet.
public enum Snaplen {
  public static let standard = 2048
  public static let maximum = 65_000
}

extension CaptureLayout {
  /// The most header bytes before `skb->data` a capture includes: Ethernet with two VLAN
  /// tags (22), IPv4 with options (60) or IPv6 (40) and a TCP header with options (60) fit.
  public static let prefixCapacity = 144

  static func make(id: UInt32, comment: [PrintedValue], geometry: PacketGeometry, range: SourceRange) -> CaptureLayout {
    var values = comment
    let parts: [(String, TypedExpr)] =
      [
        ("len", geometry.length), ("data_len", geometry.pagedLength), ("mac_header", geometry.macHeader),
        ("network_header", geometry.networkHeader), ("head", geometry.head), ("data", geometry.data),
      ] + (geometry.deviceType.map { [("dev->type", $0)] } ?? [])
    values += parts.map { PrintedValue(label: $0.0, value: $0.1) }
    let fields = CodeGenerator.layout(id: id, values: values, range: range)
    let commentFields = Array(fields.fields.prefix(comment.count))
    let located = Array(fields.fields.dropFirst(comment.count))
    let computed = fields.size
    let prefix = computed + 16
    return CaptureLayout(
      id: id, comment: commentFields, length: located[0], pagedLength: located[1], macHeader: located[2],
      networkHeader: located[3], head: located[4], data: located[5], deviceType: located.count > 6 ? located[6] : nil,
      startOffset: computed, prefixLengthOffset: computed + 4, capturedOffset: computed + 8, prefixOffset: prefix,
      prefixCapacity: prefixCapacity, metaSize: prefix + prefixCapacity, range: range)
  }
}
