import FoundationEssentials
import Glibc

/// Whether this process may load and attach tracing programs, asked before anything is
/// compiled: without the capabilities, the kernel's refusal would come from deep inside
/// libbpf (a map creation failing with EPERM), after notes that do not matter any more.
public enum Privileges {
  // Capability numbers from linux/capability.h.
  static let sysAdmin = 21
  static let perfmon = 38
  static let bpf = 39

  /// The sentence to print when tracing cannot work, or nil when it may (or when the
  /// capabilities cannot be read, in which case the kernel decides).
  public static func missingForTracing() -> String? {
    guard let effective = effectiveCapabilities() else { return nil }
    func has(_ capability: Int) -> Bool { effective & (1 << UInt64(capability)) != 0 }
    // The kernel's own rule: bpf_capable() and perfmon_capable() each accept CAP_SYS_ADMIN.
    let allowed = (has(bpf) || has(sysAdmin)) && (has(perfmon) || has(sysAdmin))
    if allowed { return nil }
    return "tracing needs root, or the capabilities CAP_BPF and CAP_PERFMON, to load BPF programs into the kernel; "
      + "'swtrace check' works without them"
  }

  /// The CapEff mask of /proc/self/status.
  static func effectiveCapabilities() -> UInt64? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
      let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") })
    else { return nil }
    return UInt64(String(line.dropFirst("CapEff:".count).filter { !$0.isWhitespace }), radix: 16)
  }
}
