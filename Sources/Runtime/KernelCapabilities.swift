public import BTF
import FoundationEssentials
import Glibc
import Output
internal import LibBPF
public import Sema

/// What this kernel lets swtrace attach, found by trying rather than by version numbers.
public enum KernelCapabilities {
  /// Tries a minimal program per backend. `types` must be the running kernel's BTF.
  public static func detect(types: KernelTypes) -> BackendSupport {
    detectWithShortage(types: types).support
  }

  /// `detect`, and why a try failed when it failed for want of descriptors or memory, which
  /// says nothing about the kernel (such an answer is not remembered).
  /// Without `functions`, only tracepoints are tried.
  static func detectWithShortage(types: KernelTypes, functions: Bool = true) -> (support: BackendSupport, shortage: RuntimeError?) {
    SystemInfo.silenceLibBPF()
    var available: Set<Backend> = []
    var shortage: SystemError?
    func tried<T>(_ body: () throws -> T) -> T? {
      do {
        return try body()
      } catch let error as SystemError {
        if ResourceShortage(code: error.code) != nil { shortage = error }
      } catch let error as ProgramLoadError {
        if ResourceShortage(code: error.error.code) != nil { shortage = error.error }
      } catch {}
      return nil
    }
    // r0 = 0; exit
    let trivial: [UInt8] = [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]
    if let tracepoint = types.tracepoints().first(where: { $0.name == "sys_enter" }) ?? types.tracepoints().first,
      tried({ try ProgramHandle(type: .tracepointBTF(attachBTFID: tracepoint.typedefID), name: "swt_probe", instructions: trivial) }) != nil
    {
      available.insert(.tracepoint)
    }
    if functions, let function = types.function(named: "ip_rcv") ?? types.functions().first,
      let program = tried({ try ProgramHandle(type: .fentry(attachBTFID: function.functionID), name: "swt_probe", instructions: trivial) }),
      let link = tried({ try LinkHandle.attachTracing(program) })
    {
      link.detach()
      available.insert(.fentry)
      available.insert(.fexit)
    }
    if functions, KprobeSupport.hasKprobePMU,
      tried({ try ProgramHandle(type: .kprobe, name: "swt_probe", instructions: trivial) }) != nil
    {
      available.insert(.kprobe)
      available.insert(.kretprobe)
    }
    return (BackendSupport(available: available), shortage.map { RuntimeError.systemFailure($0, doing: "load a BPF program") })
  }

  /// Whether this kernel charges BPF maps and programs to RLIMIT_MEMLOCK ('ulimit -l'), as
  /// kernels before 5.11 do; later ones charge them to the memory cgroup.
  static var chargesBPFToMemlock: Bool {
    var names = utsname()
    guard uname(&names) == 0 else { return false }
    let release = withUnsafeBytes(of: names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
    guard numbers.count == 2 else { return false }
    return (numbers[0], numbers[1]) < (5, 11)
  }

  /// Whether kprobe programs attach with kprobe.multi links on this kernel (asked only when
  /// kprobes are there), so that code generation lets one program serve many functions.
  public static var kprobesAttachInBulk: Bool { KprobeAttachMethod.current == .multiLink }

  /// Tracepoint name -> category, from tracefs (mounted on demand when running as root).
  public static func tracepointCategories() -> [String: String] {
    Tracefs.withRoot(containing: "events/net") { tracefs in
      let root = tracefs + "/events"
      guard let categories = try? FileManager.default.contentsOfDirectory(atPath: root) else { return [:] }
      var result: [String: String] = [:]
      for category in categories {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: root + "/" + category) else { continue }
        for name in names where name != "enable" && name != "filter" {
          result[name] = category
        }
      }
      return result
    } ?? [:]
  }
}

/// The kernel functions ftrace can hook (`available_filter_functions`), which are the ones a
/// kprobe.multi link accepts: read once, nil when tracefs cannot be read.
enum FtraceFunctions {
  static let available: Set<String>? = Tracefs.withRoot(containing: "available_filter_functions") { root in
    guard let data = ProcFile.read(root + "/available_filter_functions") else { return nil }
    // Lines are `name` or `name [module]`; only the name matters here.
    var names = Set<String>()
    for line in data.split(separator: UInt8(ascii: "\n")) {
      let name = line.prefix { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }
      if !name.isEmpty { names.insert(String(decoding: name, as: UTF8.self)) }
    }
    return names.isEmpty ? nil : names
  } ?? nil
}

/// Where tracefs is, mounted for the duration of a read when it is nowhere (as root).
enum Tracefs {
  /// The perf event id of a tracepoint (`events/CATEGORY/NAME/id`).
  static func tracepointID(category: String, name: String) -> UInt64? {
    let entry = "events/\(category)/\(name)/id"
    return withRoot(containing: entry) { root in
      ProcFile.read(root + "/" + entry).flatMap { UInt64(String(decoding: $0, as: UTF8.self).filter(\.isNumber)) }
    } ?? nil
  }

  /// Whether tracefs lists tracepoint `name` under `category` (`events/CATEGORY/NAME`); nil
  /// when tracefs cannot be reached.
  static func isTracepoint(category: String, name: String) -> Bool? {
    guard !category.contains("/"), !name.contains("/"), !category.hasPrefix("."), !name.hasPrefix(".") else {
      return false
    }
    let entry = "events/\(category)/\(name)"
    return withRoot(containing: entry) { root in access(root + "/" + entry, F_OK) == 0 }
  }

  /// The fields a tracepoint records, by name and offset, from `events/CATEGORY/NAME/format`
  /// (lines `field:TYPE NAME;\toffset:N;\tsize:M;\tsigned:S;`), without the common ones.
  /// A `__data_loc` field keeps its name; BTF calls it `__data_loc_NAME`.
  static func tracepointFormat(category: String, name: String) -> [(name: String, offset: Int)]? {
    let entry = "events/\(category)/\(name)/format"
    return withRoot(containing: entry) { root -> [(name: String, offset: Int)]? in
      guard let data = ProcFile.read(root + "/" + entry) else { return nil }
      var fields: [(name: String, offset: Int)] = []
      for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
        let parts = line.split(separator: ";").map { String($0.drop(while: \.isWhitespace)) }
        guard parts.count >= 2, parts[0].hasPrefix("field:"), parts[1].hasPrefix("offset:"),
          let offset = Int(parts[1].dropFirst("offset:".count))
        else { continue }
        // The name is the declaration's last word, without an array's brackets.
        guard var field = parts[0].split(separator: " ").last.map(String.init) else { continue }
        if let bracket = field.firstIndex(of: "[") { field = String(field[..<bracket]) }
        if field.hasPrefix("common_") { continue }
        fields.append((field, offset))
      }
      return fields
    } ?? nil
  }

  static let mountPoint = "/sys/kernel/tracing"
  static let candidates = [mountPoint, "/sys/kernel/debug/tracing"]

  /// Runs `body` with the tracefs root that holds `entry`, mounting tracefs at
  /// /sys/kernel/tracing first when no candidate has it, and unmounting it afterwards, so the
  /// system is left as it was found. nil when tracefs cannot be reached.
  static func withRoot<T>(containing entry: String, _ body: (String) -> T) -> T? {
    if let root = candidates.first(where: { FileManager.default.fileExists(atPath: $0 + "/" + entry) }) {
      return body(root)
    }
    guard mount("tracefs", mountPoint, "tracefs", 0, nil) == 0 else { return nil }
    defer { umount(mountPoint) }
    return body(mountPoint)
  }
}

/// What the running kernel allows, remembered per boot in /run: refusing an fentry program
/// takes this kernel over a second, and the answer cannot change until the next boot.
public enum CapabilityCache {
  public static let path = "/run/swtrace-backends"

  /// The backends of the running kernel (whose BTF `types` is): remembered, or detected now;
  /// with the shortage that cut detection short, if one did. Without `functions` (a spec of
  /// tracepoints only), what is not remembered is detected for tracepoints alone, and that
  /// partial answer is not remembered.
  public static func support(types: KernelTypes, functions: Bool = true) -> (support: BackendSupport, shortage: RuntimeError?) {
    let key = bootKey()
    if let key, let text = try? String(contentsOfFile: path, encoding: .utf8) {
      let lines = text.split(separator: "\n").map(String.init)
      if lines.first == key {
        return (BackendSupport(available: Set(lines.dropFirst().compactMap(Backend.init(rawValue:)))), nil)
      }
    }
    if !functions { return KernelCapabilities.detectWithShortage(types: types, functions: false) }
    let detected = KernelCapabilities.detectWithShortage(types: types)
    // An empty answer usually means missing privileges, not the kernel, and one cut short by
    // a limit on descriptors or memory is not the kernel's either: don't remember them.
    if let key, !detected.support.available.isEmpty, detected.shortage == nil {
      let text = ([key] + detected.support.available.map(\.rawValue).sorted()).joined(separator: "\n") + "\n"
      try? text.write(toFile: path, atomically: true, encoding: .utf8)
    }
    return detected
  }

  /// The boot id and kernel release: a new boot or kernel asks the kernel again.
  static func bootKey() -> String? {
    guard let boot = try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8),
      let release = try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)
    else { return nil }
    return boot.filter { !$0.isWhitespace } + " " + release.filter { !$0.isWhitespace }
  }
}
