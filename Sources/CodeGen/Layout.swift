public import BPF
public import Sema
public import SwtraceSyntax

/// Where one printed value sits in an event record.
public struct EventField: Hashable, Sendable {
  public var label: String
  public var type: ValueType
  public var offset: Int
  /// Bytes stored: an integer's natural width, a string's capacity.
  public var size: Int
  /// Where the byte saying whether a value that may be absent is present (non-zero) sits;
  /// nil for values that always exist.
  public var presenceOffset: Int? = nil
}

/// The record layout of one `print(...)` statement. Every record starts with `EventHeader`.
public struct EventLayout: Hashable, Sendable {
  public var id: UInt32
  public var fields: [EventField]
  public var size: Int
  public var range: SourceRange
  /// The format of a `printf` statement; nil for `print`, whose values are labelled.
  public var format: FormatString? = nil
}

/// The fixed start of every event record.
public enum EventHeader {
  public static let timestampOffset = 0  // u64, bpf_ktime_get_ns
  public static let cpuOffset = 8  // u32
  public static let probeOffset = 12  // u32, index into CompiledSpec.probeNames
  public static let layoutOffset = 16  // u32, EventLayout.id; 4 bytes of padding follow
  public static let skbOffset = 24  // u64, the skb's address in skb clauses, else 0
  public static let size = 32
}

/// How programs wake the reader of the ring buffer: not per record (`BPF_RB_NO_WAKEUP`), but
/// when the data waiting passes a fraction of the buffer (`BPF_RB_FORCE_WAKEUP`); the reader
/// polls every `readerPollMilliseconds` besides, so a trickle of events waits no longer.
public enum RingBufferWakeUp {
  /// The reader is woken when more than 1/fillFraction of the buffer waits.
  public static let fillFraction = 8
  /// The longest the reader sleeps while the programs may write events.
  public static let readerPollMilliseconds = 4
  /// `BPF_RB_NO_WAKEUP`, `BPF_RB_FORCE_WAKEUP` and `BPF_RB_AVAIL_DATA` (uapi linux/bpf.h).
  static let noWakeUp: Int32 = 1
  static let forceWakeUp: Int32 = 2
  static let availableData: Int32 = 0
}

/// Bytes of the events ring buffer (`--ring-size`): a power of two of whole pages, which the
/// kernel requires. 8 MiB holds some 170,000 events of 48 bytes, 0.17 s of a million events a
/// second should the reader stall; a spec that prints nothing has none (`writesEvents`).
public enum RingBufferSize {
  public static let standard = 8 << 20
  public static let minimum = 4096
  /// Far beyond any need, and well inside the kernel's own limit on ring buffers.
  public static let maximum = 1 << 30

  /// `SIZE`, `SIZEk` or `SIZEm` (KiB, MiB; case-insensitive) in bytes, or why it cannot be a
  /// ring buffer's size.
  public static func parse(_ text: String) -> Result<Int, RingBufferSizeError> {
    var digits = Substring(text)
    var unit = 1
    switch digits.last.map({ Character($0.lowercased()) }) {
    case "k": unit = 1 << 10
    case "m": unit = 1 << 20
    default: break
    }
    if unit != 1 { digits = digits.dropLast() }
    guard let count = Int(digits), count > 0, count <= maximum / unit else {
      return .failure(RingBufferSizeError(text: text, reason: "not a size between 4k and 1024m"))
    }
    let bytes = count * unit
    guard bytes >= minimum, bytes <= maximum else {
      return .failure(RingBufferSizeError(text: text, reason: "not a size between 4k and 1024m"))
    }
    guard bytes & (bytes - 1) == 0 else {
      return .failure(RingBufferSizeError(text: text, reason: "the kernel needs a power of two (such as 1m, 2m, 4m)"))
    }
    return .success(bytes)
  }
}

public struct RingBufferSizeError: Error, Sendable, CustomStringConvertible {
  public var text: String
  public var reason: String
  public var description: String { "--ring-size \(text): \(reason)" }
}

/// Attach points where the kernel frees an skb: a tracked packet's path ends there.
public let skbFreePoints: Set<String> = [
  "kfree_skb", "consume_skb", "kfree_skbmem", "__kfree_skb", "kfree_skb_reason", "sk_skb_reason_drop",
]

/// Maps every compiled spec has; their indices are the placeholder descriptors in `ld_imm64`.
public enum StandardMap {
  /// The ring buffer events are written to.
  public static let events: Int32 = 0
  /// Per-CPU counter of events the ring buffer had no room for.
  public static let lost: Int32 = 1
  /// Per-CPU counters, one per user map, of updates refused because the map was full.
  public static let full: Int32 = 2
  /// skb addresses of tracked packets (`track()`), removed when the kernel frees them.
  public static let tracked: Int32 = 3
  /// The first of the spec's own maps, in `CompiledSpec.userMaps` order.
  public static let firstUserMap: Int32 = 4
}

/// Frames of a kernel stack the stack map keeps (the kernel's own default for
/// `perf_event_max_stack`); deeper stacks are cut.
public enum KernelStackDepth {
  public static let maximum = 127
}

/// Maps beyond the standard ones that some programs use, and what capturing needs.
struct AuxiliaryMaps {
  var packets: Int32?
  var stacks: Int32?
  var captureLayouts: [CaptureKey: CaptureLayout]
  var snaplen: Int
}

/// Which capture record a program fills: the print it follows, and the attach point when that
/// one's comment has values of its own (`PacketCapture.probeComment`).
struct CaptureKey: Hashable {
  var range: SourceRange
  /// `AttachPoint.qualifiedName`.
  var probe: String?
}

/// The counters of the `lost` map, one u64 each.
public enum LossCounter {
  /// Events the ring buffer had no room for.
  public static let events: Int32 = 0
  /// Packets (`-w`) that could not be written: no room in the ring buffer for their record,
  /// or `bpf_skb_output` refused them.
  public static let packets: Int32 = 1
}

/// A record with this layout id asks swtrace to stop: the spec called `exit()`.
public let exitRequestLayoutID = UInt32.max

/// One program to load: code, the attach point, and what the verifier pre-check needs.
public struct CompiledProgram: Hashable, Sendable {
  public var attachPoint: AttachPoint
  public var probeID: UInt32
  public var program: Program
  public var context: ProgramContext
  /// BTF layouts of the kernel objects behind pointer arguments, for the pre-check.
  public var kernelObjects: [Int: KernelObjectLayout] = [:]
  /// The clause this program implements.
  public var clauseRange: SourceRange
  /// Whether the program takes its probe id from the attach cookie (`probeID` is then the
  /// cookie to attach it with): programs with equal code can share one kprobe.multi link.
  public var probeFromCookie: Bool = false
  /// The pre-check's count of the instructions the kernel's verifier processes to check the
  /// program (its "processed N insns"); nil before the pre-check.
  public var verifierWork: Int? = nil

  /// What the verifier pre-check's verdict depends on.
  public struct CheckedCode: Hashable, Sendable {
    var program: Program
    var context: ProgramContext
    var kernelObjects: [Int: KernelObjectLayout]
  }

  public var checkedCode: CheckedCode {
    CheckedCode(program: program, context: context, kernelObjects: kernelObjects)
  }
}

/// Everything the runtime needs to load, attach and decode.
public struct CompiledSpec: Hashable, Sendable {
  public var programs: [CompiledProgram]
  public var maps: [MapDescription]
  public var layouts: [EventLayout]
  public var probeNames: [String]
  public var ringBufferSize: Int
  /// Whether a program writes to the events ring buffer (`StandardMap.events`): events,
  /// exit requests, captures through it. When none does (a spec that only fills maps), the
  /// runtime neither creates nor maps it.
  public var writesEvents: Bool = true
  /// The spec's maps; user map i is BPF map `StandardMap.firstUserMap + i`.
  public var userMaps: [MapDeclaration]
  public var userClauses: [UserClause]
  /// User maps kept in per-CPU arrays indexed directly (index -> entries), see
  /// `MapLayout.directIndexEntries`; the others are hash maps.
  public var directlyIndexedMaps: [Int: Int] = [:]
  /// The types of probe the spec names as written, so that nobody parses it again to ask.
  public var probeTypes: Set<ProbeType> = []
  /// Records of packet captures (`-w`), in `CaptureLayout.id` order.
  public var captureLayouts: [CaptureLayout] = []
  /// The perf event array tracing programs write packets to, when the spec captures any.
  public var packetMap: Int32?
  /// The stack trace map `kstack` ids refer to, when the spec reads any.
  public var stackMap: Int32?
  /// `--snaplen`: the most bytes of a packet a capture keeps.
  public var snaplen: Int = Snaplen.standard
  /// The index in `maps` of the one-entry array the runtime writes the trace's start time
  /// into (`CLOCK_MONOTONIC` nanoseconds, before attaching), for `elapsed`; nil when unused.
  public var startTimeMap: Int? = nil

  /// The mechanisms the programs attach with.
  public var backends: Set<Backend> { Set(programs.map(\.attachPoint.backend)) }
}

extension CompiledSpec {
  /// Programs as they are loaded: a program that takes its probe id from the attach cookie
  /// joins the group of the first with the same code, clause and hook kind; every other
  /// program is a group of its own. `skb:*` over 1,700 functions becomes about five groups,
  /// each loaded once and attached with one kprobe.multi link.
  public var programGroups: [[CompiledProgram]] {
    struct Key: Hashable {
      var program: Program
      var backend: Backend
      var clause: SourceRange
    }
    var groups: [[CompiledProgram]] = []
    var groupIndex: [Key: Int] = [:]
    for program in programs {
      guard program.probeFromCookie else {
        groups.append([program])
        continue
      }
      let key = Key(program: program.program, backend: program.attachPoint.backend, clause: program.clauseRange)
      if let index = groupIndex[key] {
        groups[index].append(program)
      } else {
        groupIndex[key] = groups.count
        groups.append([program])
      }
    }
    return groups
  }
}
