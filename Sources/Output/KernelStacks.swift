import Glibc
import Synchronization

/// A kernel stack as swtrace prints it: symbolized frames, innermost first.
public struct KernelStack: Hashable, Sendable {
  public var frames: [String]
  /// Why the kernel recorded no stack for the event, or nil when it did.
  public var unavailable: String?

  public init(frames: [String], unavailable: String? = nil) {
    self.frames = frames
    self.unavailable = unavailable
  }

  /// bpftrace's layout: a line break, then one frame per line, indented by 8 spaces.
  public var text: String {
    if let unavailable { return "[no stack: \(unavailable)]" }
    return "\n" + frames.map { "        \($0)\n" }.joined()
  }
}

/// The stacks `kstack` ids stand for, each read from the kernel's stack map and symbolized
/// once: the kernel keeps an id's stack for the whole run (a different stack whose hash
/// collides gets an error, never the same id).
public final class KernelStackTable: @unchecked Sendable {
  private let symbols: KernelSymbols
  /// The addresses of stack `id`, innermost first, as the stack map holds them.
  private let lookup: (UInt32) -> [UInt64]?
  /// Stacks by id, and how many events had none, by reason.
  private let state = Mutex<(stacks: [Int64: KernelStack], unavailable: [String: UInt64])>(([:], [:]))

  /// `symbols` is read on first use, by default from /proc/kallsyms: after the programs are
  /// loaded, so that their own symbols (which lead every stack) are in it.
  public init(
    symbols: KernelSymbols = KernelSymbols(path: "/proc/kallsyms"), lookup: @escaping (UInt32) -> [UInt64]?
  ) {
    self.symbols = symbols
    self.lookup = lookup
  }

  /// The stack behind `id`, a value of `kstack`: a stack map id, or a negative error number.
  public func stack(_ id: Int64) -> KernelStack {
    state.withLock { state in
      if let known = state.stacks[id] { return known }
      let stack: KernelStack
      if id < 0 || id > Int64(UInt32.max) {
        stack = KernelStack(frames: [], unavailable: Self.reason(errorNumber: -id))
      } else if let addresses = lookup(UInt32(id)) {
        stack = KernelStack(frames: Self.frames(addresses, symbols: symbols))
      } else {
        stack = KernelStack(frames: [], unavailable: "stack \(id) is not in the stack map")
      }
      if let reason = stack.unavailable {
        state.unavailable[reason, default: 0] += 1
      } else {
        // Errors are counted per event, so they are not kept.
        state.stacks[id] = stack
      }
      return stack
    }
  }

  /// How many events had no stack, by reason, for the note at exit.
  public var unavailable: [(reason: String, count: UInt64)] {
    state.withLock { state in state.unavailable.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }
  }

  /// The frames of a recorded stack, symbolized, without the machinery that recorded it:
  /// swtrace's own program, a BPF trampoline, and the tracepoint's glue (`bpf_trace_run`, and
  /// `__traceiter_` when several programs share the tracepoint) come first in every stack
  /// taken from a tracing program, and say nothing about the packet.
  static func frames(_ addresses: [UInt64], symbols: KernelSymbols) -> [String] {
    let located = addresses.prefix { $0 != 0 }.map { address in (address, symbols.locate(address)) }
    let kept = located.drop { _, location in location.map(isTracingMachinery) ?? false }
    return kept.map { address, location in location?.text ?? "0x" + String(address, radix: 16) }
  }

  static func isTracingMachinery(_ location: KernelSymbols.Location) -> Bool {
    location.module == "bpf"
      || ["bpf_prog_", "bpf_trampoline_", "bpf_trace_run", "__bpf_trace_", "__traceiter_"].contains {
        location.name.hasPrefix($0)
      }
  }

  /// bpf_get_stackid's errors in words.
  static func reason(errorNumber: Int64) -> String {
    switch errorNumber {
    case Int64(EEXIST): "another stack with the same hash holds its place in the stack map (raise --map-entries)"
    case Int64(ENOMEM): "the stack map is full (raise --map-entries)"
    case Int64(EFAULT): "the kernel could not walk the stack"
    default: "bpf_get_stackid failed with error \(errorNumber)"
    }
  }
}
