internal import CLibBPF
import Glibc

/// How kprobe programs are attached to kernel functions.
///
/// A kprobe program is loaded for one of the two on purpose: the kernel refuses a kprobe.multi
/// link for a program loaded as a plain kprobe, and a perf event link for one loaded for
/// kprobe.multi. So the method is decided once per process, before the first kprobe program
/// is loaded, and both loading (`ProgramType.kprobeMulti` or `.kprobe`) and attaching follow it.
public enum KprobeAttachMethod: String, Sendable, CaseIterable {
  /// One kprobe.multi (fprobe) link per function: Linux 5.18 and later with CONFIG_FPROBE.
  /// Reaches the functions ftrace can patch (`available_filter_functions`).
  case multiLink = "multi"
  /// A perf event on the kprobe PMU with the program linked to it. Works on every kernel
  /// with kprobes, including functions ftrace cannot patch (not on the kprobe blocklist).
  case perfEvent = "perf"

  /// The method this process uses: `SWTRACE_KPROBE_ATTACH=multi|perf` when set (benchmarks,
  /// tests), otherwise kprobe.multi where the kernel has it, a perf kprobe elsewhere.
  ///
  /// kprobe.multi pays off because one program serves many functions through one link (the
  /// code generator takes the probe id from the attach cookie): `skb:*` over 1,700 functions
  /// becomes a handful of links. A link per function would be the slowest way to attach many
  /// (Debian's 6.12 under qemu: 186 s for 1,700 links against 66 s for perf kprobes).
  public static let current: KprobeAttachMethod = {
    if let forced = getenv("SWTRACE_KPROBE_ATTACH").map({ String(cString: $0) }),
      let method = KprobeAttachMethod(rawValue: forced)
    {
      return method
    }
    return KprobeSupport.hasKprobePMU && KprobeSupport.hasMultiLinks ? .multiLink : .perfEvent
  }()
}

/// What the running kernel offers for kprobes.
public enum KprobeSupport {
  /// The kprobe PMU (`/sys/bus/event_source/devices/kprobe`): kernels with CONFIG_KPROBES and
  /// perf kprobes have it.
  public static var hasKprobePMU: Bool { KprobePMU.type != nil }

  /// Whether the kernel accepts kprobe.multi links, found once by trying.
  public static let hasMultiLinks: Bool = kernelAcceptsMultiLinks()

  /// Tries a minimal kprobe.multi program on a function every kernel has. False when the
  /// kernel does not know the attach type (before 5.18) or has no fprobe (EOPNOTSUPP).
  static func kernelAcceptsMultiLinks() -> Bool {
    SystemInfo.silenceLibBPF()
    // r0 = 0; exit
    let trivial: [UInt8] = [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]
    guard
      let program = try? checked("load kprobe.multi probe", {
        trivial.withUnsafeBytes { raw in
          swt_prog_load(
            BPF_PROG_TYPE_KPROBE, "swt_probe", "GPL", raw.baseAddress!.assumingMemoryBound(to: bpf_insn.self),
            2, BPF_TRACE_KPROBE_MULTI, 0, nil, 0, 0)
        }
      })
    else { return false }
    let programFD = FileDescriptor(program)
    defer { programFD.close() }
    // Any ftrace-able function will do; a missing one (ESRCH, ENOENT) says nothing about support.
    for function in ["ip_rcv", "vfs_read", "do_sys_openat2", "schedule"] {
      do {
        let link = try multiLink(programFD: programFD.rawValue, functions: [function], isReturn: false, label: "probe")
        _ = Glibc.close(link)
        return true
      } catch {
        if error.code == ESRCH || error.code == ENOENT { continue }
        return false
      }
    }
    return false
  }

  /// Creates one kprobe.multi link over `functions`; returns the link descriptor.
  static func multiLink(programFD: Int32, functions: [String], isReturn: Bool, label: String)
    throws(SystemError) -> Int32
  {
    var cStrings = functions.map { strdup($0) }
    defer { cStrings.forEach { free($0) } }
    return try checked(label) {
      cStrings.withUnsafeMutableBufferPointer { buffer in
        buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) {
          swt_kprobe_multi_link_create(programFD, $0, nil, UInt32(functions.count), isReturn ? 1 : 0)
        }
      }
    }
  }
}

/// The kprobe PMU's sysfs description, read once.
enum KprobePMU {
  static let directory = "/sys/bus/event_source/devices/kprobe"

  /// The perf event type of kprobes (dynamic, so read from sysfs).
  static let type: UInt32? = readFile(directory + "/type").flatMap { UInt32($0.filter(\.isNumber)) }

  /// The `config` bit that makes the event a return probe: the file says e.g. `config:0`.
  static let retprobeBit: UInt64? = readFile(directory + "/format/retprobe").flatMap { text in
    text.split(separator: ":").last.flatMap { UInt64($0.filter(\.isNumber)) }
  }

  static func readFile(_ path: String) -> String? {
    guard let file = fopen(path, "r") else { return nil }
    defer { fclose(file) }
    var buffer = [CChar](repeating: 0, count: 128)
    guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }
}

/// `perf_event_open(2)` for a kprobe, and the program attached to it.
enum PerfKprobe {
  // perf_event_attr, as far as a kprobe needs it (PERF_ATTR_SIZE_VER5; the rest is zero).
  static let attrSize = 112
  static let typeOffset = 0
  static let sizeOffset = 4
  static let configOffset = 8
  static let config1Offset = 56  // kprobe_func: the function's name
  static let config2Offset = 64  // probe_offset: 0, the function's entry

  static let flagCloseOnExec = 8  // PERF_FLAG_FD_CLOEXEC
  static let ioctlSetBPF: UInt = 0x4004_2408  // PERF_EVENT_IOC_SET_BPF = _IOW('$', 8, __u32)
  static let ioctlEnable: UInt = 0x2400  // PERF_EVENT_IOC_ENABLE = _IO('$', 0)

  #if arch(x86_64)
    static let perfEventOpenNumber = 298
  #elseif arch(arm64)
    static let perfEventOpenNumber = 241
  #else
    static let perfEventOpenNumber = -1
  #endif

  /// glibc's `syscall(2)`. Swift does not import C variadic functions, so it is called through
  /// a fixed six-argument signature: on x86-64 and arm64 Linux, integer arguments of a variadic
  /// call travel in the same registers, and glibc's `syscall` only moves registers.
  private typealias SyscallFunction = @convention(c) (Int, Int, Int, Int, Int, Int) -> Int
  private static let syscallFunction: SyscallFunction? = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "syscall") else { return nil }
    return unsafeBitCast(symbol, to: SyscallFunction.self)
  }()

  /// Opens a kprobe (or kretprobe) perf event on `function`'s entry, for all CPUs.
  static func open(function: String, isReturn: Bool, label: String) throws(SystemError) -> FileDescriptor {
    guard let type = KprobePMU.type else {
      throw SystemError(label + " (this kernel has no kprobe PMU)", code: ENOENT)
    }
    var config: UInt64 = 0
    if isReturn {
      guard let bit = KprobePMU.retprobeBit else {
        throw SystemError(label + " (the kprobe PMU has no retprobe format)", code: EOPNOTSUPP)
      }
      config = 1 << bit
    }
    guard let syscallFunction, perfEventOpenNumber >= 0 else {
      throw SystemError(label + " (no perf_event_open on this architecture)", code: ENOSYS)
    }
    var attr = [UInt8](repeating: 0, count: attrSize)
    let fd = try checked(label) {
      function.withCString { name in
        attr.withUnsafeMutableBytes { raw in
          raw.storeBytes(of: type.littleEndian, toByteOffset: typeOffset, as: UInt32.self)
          raw.storeBytes(of: UInt32(attrSize).littleEndian, toByteOffset: sizeOffset, as: UInt32.self)
          raw.storeBytes(of: config.littleEndian, toByteOffset: configOffset, as: UInt64.self)
          raw.storeBytes(
            of: UInt64(UInt(bitPattern: name)).littleEndian, toByteOffset: config1Offset, as: UInt64.self)
          raw.storeBytes(of: UInt64(0), toByteOffset: config2Offset, as: UInt64.self)
          // pid -1, cpu 0: a kernel probe fires on every CPU; the CPU only scopes perf samples.
          let result = syscallFunction(
            perfEventOpenNumber, Int(bitPattern: raw.baseAddress), -1, 0, -1, flagCloseOnExec)
          return Int32(clamping: result)
        }
      }
    }
    return FileDescriptor(fd)
  }

  /// Attaches `programFD` to a new kprobe on `function`. Returns the one descriptor that owns
  /// the attachment: a BPF link (which holds the perf event itself), or on kernels before 5.15
  /// without perf links, the perf event with the program set on it.
  static func attach(programFD: Int32, function: String, isReturn: Bool, label: String)
    throws(SystemError) -> Int32
  {
    try attach(programFD: programFD, event: try open(function: function, isReturn: isReturn, label: label), label: label)
  }

  /// Opens the perf event of a tracepoint (`id`, from tracefs's `events/CATEGORY/NAME/id`).
  static func openTracepoint(id: UInt64, label: String) throws(SystemError) -> FileDescriptor {
    guard let syscallFunction, perfEventOpenNumber >= 0 else {
      throw SystemError(label + " (no perf_event_open on this architecture)", code: ENOSYS)
    }
    var attr = [UInt8](repeating: 0, count: attrSize)
    let fd = try checked(label) {
      attr.withUnsafeMutableBytes { raw in
        raw.storeBytes(of: UInt32(2).littleEndian, toByteOffset: typeOffset, as: UInt32.self)  // PERF_TYPE_TRACEPOINT
        raw.storeBytes(of: UInt32(attrSize).littleEndian, toByteOffset: sizeOffset, as: UInt32.self)
        raw.storeBytes(of: id.littleEndian, toByteOffset: configOffset, as: UInt64.self)
        // pid -1, cpu 0: the program runs for the tracepoint on every CPU.
        let result = syscallFunction(perfEventOpenNumber, Int(bitPattern: raw.baseAddress), -1, 0, -1, flagCloseOnExec)
        return Int32(clamping: result)
      }
    }
    return FileDescriptor(fd)
  }

  /// Attaches `programFD` to the perf event `event` (which it takes over).
  static func attach(programFD: Int32, event: FileDescriptor, label: String) throws(SystemError) -> Int32 {
    do {
      let link = try checked(label) { swt_link_create(programFD, event.rawValue, BPF_PERF_EVENT) }
      // The link holds its own reference to the perf event; this descriptor is no longer needed.
      event.close()
      return link
    } catch {
      // Older kernels: the program is set on the event, which lives as long as its descriptor.
      _ = try checked(label) { Glibc.ioctl(event.rawValue, ioctlSetBPF, programFD) }
      _ = try checked(label) { Glibc.ioctl(event.rawValue, ioctlEnable, 0) }
      // Hand a descriptor of its own to the caller; `event` closes the original.
      return try checked(label) { fcntl(event.rawValue, F_DUPFD_CLOEXEC, 0) }
    }
  }
}

extension LinkHandle {
  /// Attaches a kprobe program to the entry (or, with `isReturn`, the return) of one kernel
  /// function. `method` must be the one the program was loaded for.
  public static func attachKprobe(
    _ program: ProgramHandle, function: String, isReturn: Bool,
    method: KprobeAttachMethod = .current
  ) throws(SystemError) -> LinkHandle {
    let label = "attach \(program.name) to \(isReturn ? "kretprobe" : "kprobe") \(function)"
    let fd: Int32
    switch method {
    case .multiLink:
      fd = try KprobeSupport.multiLink(
        programFD: program.rawDescriptor, functions: [function], isReturn: isReturn, label: label)
    case .perfEvent:
      fd = try PerfKprobe.attach(
        programFD: program.rawDescriptor, function: function, isReturn: isReturn, label: label)
    }
    return LinkHandle(fd: fd, program: program)
  }

  /// Attaches a classic tracepoint program (whose context is the tracepoint's record) to the
  /// tracepoint with perf event id `id`.
  public static func attachTracepoint(_ program: ProgramHandle, id: UInt64, name: String) throws(SystemError) -> LinkHandle {
    let label = "attach \(program.name) to tracepoint \(name)"
    let event = try PerfKprobe.openTracepoint(id: id, label: label)
    return LinkHandle(fd: try PerfKprobe.attach(programFD: program.rawDescriptor, event: event, label: label), program: program)
  }
}
