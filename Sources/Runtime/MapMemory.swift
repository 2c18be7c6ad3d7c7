import CodeGen
internal import LibBPF
import FoundationEssentials

/// The kernel memory a spec's maps take, estimated before they are created: hash maps
/// allocate all their entries up front, so `--map-entries 16777216` takes gigabytes at once,
/// charged to swtrace's memory cgroup (or, before Linux 5.11, to 'ulimit -l').
public enum MapMemory {
  /// Above this many bytes (`$SWTRACE_MAP_MEMORY_WARNING`, in MiB; 256 by default) swtrace
  /// warns before creating the maps.
  public static var warningThreshold: UInt64 {
    if let text = ProcessInfo.processInfo.environment["SWTRACE_MAP_MEMORY_WARNING"], let mebibytes = UInt64(text) {
      return mebibytes << 20
    }
    return 256 << 20
  }

  /// About how many bytes of kernel memory the maps of `compiled` take: the entries and the
  /// kernel's own bookkeeping per entry (Linux 6.x `htab_elem`, buckets, per-CPU copies).
  public static func estimate(_ compiled: CompiledSpec, possibleCPUs: Int? = nil) -> UInt64 {
    let possibleCPUs = possibleCPUs ?? SystemInfo.possibleCPUCount()
    return compiled.maps.reduce(UInt64(0)) { total, map in
      let entries = UInt64(max(0, map.maxEntries))
      let key = UInt64((map.keySize + 7) / 8 * 8)
      let value = UInt64((map.valueSize + 7) / 8 * 8)
      let cpus = UInt64(possibleCPUs)
      // A hash element's header (list node, hash, lock padding), and a 16-byte bucket per
      // entry rounded up to a power of two.
      let buckets = UInt64(1) << UInt64(max(0, Int.bitWidth - (max(1, Int(entries)) - 1).leadingZeroBitCount)) * 16
      let bytes: UInt64 =
        switch map.kind {
        case .hash, .lruHash: entries * (48 + key + value) + buckets
        case .perCPUHash: entries * (48 + key + 8 + value * cpus) + buckets
        case .array: entries * value
        case .perCPUArray: entries * value * cpus
        case .ringBuffer: compiled.writesEvents ? entries : 0
        // A descriptor slot per CPU; the perf rings themselves are pages swtrace maps later.
        case .perfEventArray: entries * 8
        // A bucket pointer and a bucket (free-list node, hash, frame count, frames) per entry.
        case .stackTrace: entries * (8 + 24 + value)
        }
      return total + bytes
    }
  }

  /// The warning to give when the maps take more than `warningThreshold`, or nil.
  public static func warning(for compiled: CompiledSpec, mapEntries: Int) -> String? {
    let bytes = estimate(compiled)
    guard bytes > warningThreshold else { return nil }
    let hashMaps = compiled.maps.filter { $0.maxEntries == mapEntries }.count
    return "the spec's maps take about \(Self.text(bytes)) of kernel memory (--map-entries \(mapEntries)"
      + (hashMaps > 0 ? " for \(hashMaps) map\(hashMaps == 1 ? "" : "s")" : "")
      + "), more than the \(Self.text(warningThreshold)) of SWTRACE_MAP_MEMORY_WARNING; a smaller --map-entries takes less"
  }

  static func text(_ bytes: UInt64) -> String {
    if bytes >= 1 << 30 {
      let tenths = (bytes * 10 + (1 << 29)) >> 30
      return "\(tenths / 10).\(tenths % 10) GiB"
    }
    return "\((bytes + (1 << 19)) >> 20) MiB"
  }
}
