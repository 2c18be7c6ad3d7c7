internal import CLibBPF
import Glibc

/// Map types swtrace creates.
public enum MapType: Sendable, Hashable {
  case hash, array, perCPUHash, perCPUArray, ringBuffer, lruHash
  /// One perf ring per CPU (`PerfBufferReader` opens them).
  case perfEventArray
  /// Kernel stacks by id, each `valueSize / 8` addresses.
  case stackTrace

  var cValue: bpf_map_type {
    switch self {
    case .hash: BPF_MAP_TYPE_HASH
    case .array: BPF_MAP_TYPE_ARRAY
    case .perCPUHash: BPF_MAP_TYPE_PERCPU_HASH
    case .perCPUArray: BPF_MAP_TYPE_PERCPU_ARRAY
    case .ringBuffer: BPF_MAP_TYPE_RINGBUF
    case .lruHash: BPF_MAP_TYPE_LRU_HASH
    case .perfEventArray: BPF_MAP_TYPE_PERF_EVENT_ARRAY
    case .stackTrace: BPF_MAP_TYPE_STACK_TRACE
    }
  }
}

/// A kernel BPF map, owned: the descriptor is closed (and the map freed) with this object.
public final class MapHandle: @unchecked Sendable {
  public let type: MapType
  public let keySize: Int
  public let valueSize: Int
  public let maxEntries: Int
  private let fd: FileDescriptor

  public var rawDescriptor: Int32 { fd.rawValue }

  public init(
    type: MapType, name: String, keySize: Int, valueSize: Int, maxEntries: Int
  ) throws(SystemError) {
    self.type = type
    self.keySize = keySize
    self.valueSize = valueSize
    self.maxEntries = maxEntries
    // Kernel map names are at most 15 characters of [A-Za-z0-9_.].
    let safeName = String(
      name.map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" }.prefix(15))
    let raw = try checked("create map \(name)") {
      swt_map_create(
        type.cValue, safeName, UInt32(keySize), UInt32(valueSize), UInt32(maxEntries), 0)
    }
    self.fd = FileDescriptor(raw)
  }

  /// Bytes of one value as user space sees it: per-CPU maps return one 8-byte-aligned slot per CPU.
  public var userValueSize: Int {
    switch type {
    case .perCPUHash, .perCPUArray: ((valueSize + 7) / 8 * 8) * SystemInfo.possibleCPUCount()
    default: valueSize
    }
  }

  public func lookup(_ key: [UInt8]) -> [UInt8]? {
    var value = [UInt8](repeating: 0, count: userValueSize)
    let rc = key.withUnsafeBytes { k in
      value.withUnsafeMutableBytes { v in bpf_map_lookup_elem(fd.rawValue, k.baseAddress, v.baseAddress) }
    }
    return rc == 0 ? value : nil
  }

  public func update(_ key: [UInt8], _ value: [UInt8]) throws(SystemError) {
    _ = try checked("update map") {
      key.withUnsafeBytes { k in
        value.withUnsafeBytes { v in bpf_map_update_elem(fd.rawValue, k.baseAddress, v.baseAddress, 0) }
      }
    }
  }

  /// Deletes one key; a missing key is not an error.
  public func delete(_ key: [UInt8]) {
    _ = key.withUnsafeBytes { k in bpf_map_delete_elem(fd.rawValue, k.baseAddress) }
  }

  /// All keys currently in the map (hash maps), in kernel order.
  public func keys() -> [[UInt8]] {
    var result: [[UInt8]] = []
    var current: [UInt8]? = nil
    var next = [UInt8](repeating: 0, count: keySize)
    while true {
      let rc: Int32
      if let key = current {
        rc = key.withUnsafeBytes { k in
          next.withUnsafeMutableBytes { n in bpf_map_get_next_key(fd.rawValue, k.baseAddress, n.baseAddress) }
        }
      } else {
        rc = next.withUnsafeMutableBytes { n in bpf_map_get_next_key(fd.rawValue, nil, n.baseAddress) }
      }
      if rc != 0 { break }
      result.append(next)
      current = next
      // A map far larger than its limit means keys changed under us; stop rather than loop.
      if result.count > maxEntries * 2 + 16 { break }
    }
    return result
  }

  /// Every key with its value; entries deleted concurrently are skipped.
  public func entries() -> [(key: [UInt8], value: [UInt8])] {
    keys().compactMap { key in lookup(key).map { (key, $0) } }
  }

  public func close() { fd.close() }
}

/// Kinds of programs swtrace loads.
public enum ProgramType: Sendable, Hashable {
  /// A BTF-typed tracepoint (`tp_btf`): attach target is a `btf_trace_<name>` typedef.
  case tracepointBTF(attachBTFID: UInt32)
  /// fentry/fexit on a kernel function, by its BTF FUNC id.
  case fentry(attachBTFID: UInt32)
  case fexit(attachBTFID: UInt32)
  case kprobe
  /// A kprobe program for kprobe.multi links (`LinkHandle.attachKprobe` with `.multiLink`).
  case kprobeMulti
  case rawTracepoint
  case socketFilter
  /// A classic tracepoint program (attached through a perf event): its context is the record.
  case tracepoint

  var cValues: (bpf_prog_type, bpf_attach_type, UInt32) {
    switch self {
    case .tracepointBTF(let id): (BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP, id)
    case .fentry(let id): (BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY, id)
    case .fexit(let id): (BPF_PROG_TYPE_TRACING, BPF_TRACE_FEXIT, id)
    case .kprobe: (BPF_PROG_TYPE_KPROBE, bpf_attach_type(0), 0)
    case .kprobeMulti: (BPF_PROG_TYPE_KPROBE, BPF_TRACE_KPROBE_MULTI, 0)
    case .rawTracepoint: (BPF_PROG_TYPE_RAW_TRACEPOINT, bpf_attach_type(0), 0)
    case .socketFilter: (BPF_PROG_TYPE_SOCKET_FILTER, bpf_attach_type(0), 0)
    case .tracepoint: (BPF_PROG_TYPE_TRACEPOINT, bpf_attach_type(0), 0)
    }
  }
}

/// Why the kernel refused a program, with the verifier's log.
public struct ProgramLoadError: Error, Sendable {
  public var error: SystemError
  public var verifierLog: String
}

/// Run-time numbers the kernel keeps for a loaded program.
public struct ProgramInfo: Sendable, Hashable {
  public var id: UInt32
  public var translatedInstructionCount: Int
  public var verifiedInstructionCount: Int
  public var runTimeNanoseconds: UInt64
  public var runCount: UInt64
}

/// A loaded BPF program, owned.
public final class ProgramHandle: @unchecked Sendable {
  private let fd: FileDescriptor
  public let name: String

  public var rawDescriptor: Int32 { fd.rawValue }

  /// Loads little-endian encoded instructions (8 bytes each). On refusal the verifier log is
  /// fetched with a second load at log level 1, so the common path pays nothing for it.
  public init(type: ProgramType, name: String, instructions: [UInt8], license: String = "GPL")
    throws(ProgramLoadError)
  {
    let (progType, attachType, btfID) = type.cValues
    let safeName = String(name.map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" }.prefix(15))
    func load(log: UnsafeMutablePointer<CChar>?, size: UInt32, level: UInt32) -> Int32 {
      instructions.withUnsafeBytes { raw in
        swt_prog_load(
          progType, safeName, license, raw.baseAddress!.assumingMemoryBound(to: bpf_insn.self),
          instructions.count / 8, attachType, btfID, log, size, level)
      }
    }
    let first = load(log: nil, size: 0, level: 0)
    if first >= 0 {
      self.fd = FileDescriptor(first)
      self.name = name
      return
    }
    let code = swt_errno()
    let logSize = 1 << 20
    let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: logSize)
    defer { buffer.deallocate() }
    buffer[0] = 0
    let second = load(log: buffer, size: UInt32(logSize), level: 1)
    if second >= 0 { _ = Glibc.close(second) }
    throw ProgramLoadError(
      error: SystemError("load program \(name)", code: code), verifierLog: String(cString: buffer))
  }

  public func info() -> ProgramInfo? {
    var xlated: UInt32 = 0
    var verified: UInt32 = 0
    var runTime: UInt64 = 0
    var runCount: UInt64 = 0
    var id: UInt32 = 0
    guard swt_prog_info(fd.rawValue, &xlated, &verified, &runTime, &runCount, &id) == 0 else {
      return nil
    }
    return ProgramInfo(
      id: id, translatedInstructionCount: Int(xlated) / 8, verifiedInstructionCount: Int(verified),
      runTimeNanoseconds: runTime, runCount: runCount)
  }

  public func close() { fd.close() }
}

/// An attachment of a program to a kernel hook; detached when closed or released.
public final class LinkHandle: @unchecked Sendable {
  private let fd: FileDescriptor
  /// Keeps the program alive as long as it is attached.
  public let program: ProgramHandle

  /// Takes ownership of `fd`, the one descriptor that keeps the attachment alive.
  init(fd: Int32, program: ProgramHandle) {
    self.fd = FileDescriptor(fd)
    self.program = program
  }

  /// Attaches a tracing program (`tp_btf`, fentry, fexit) to the target given at load time.
  public static func attachTracing(_ program: ProgramHandle) throws(SystemError) -> LinkHandle {
    let fd = try checked("attach \(program.name)") {
      bpf_raw_tracepoint_open(nil, program.rawDescriptor)
    }
    return LinkHandle(fd: fd, program: program)
  }

  /// Attaches a raw tracepoint program by tracepoint name.
  public static func attachRawTracepoint(_ program: ProgramHandle, tracepoint: String)
    throws(SystemError) -> LinkHandle
  {
    let fd = try checked("attach \(program.name) to raw tracepoint \(tracepoint)") {
      bpf_raw_tracepoint_open(tracepoint, program.rawDescriptor)
    }
    return LinkHandle(fd: fd, program: program)
  }

  /// Attaches a kprobe program to many functions with one kprobe.multi link. `cookies`, when
  /// given, has one value per function, which the program reads with `bpf_get_attach_cookie`:
  /// that is how one shared program tells the functions apart.
  public static func attachKprobeMulti(
    _ program: ProgramHandle, functions: [String], cookies: [UInt64]? = nil, isReturn: Bool
  ) throws(SystemError) -> LinkHandle {
    precondition(cookies == nil || cookies!.count == functions.count, "one cookie per function")
    var cStrings = functions.map { strdup($0) }
    defer { cStrings.forEach { free($0) } }
    let fd = try checked("attach \(program.name) to \(functions.count) functions") {
      cStrings.withUnsafeMutableBufferPointer { buffer in
        buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) { names in
          if let cookies {
            return cookies.withUnsafeBufferPointer {
              swt_kprobe_multi_link_create(
                program.rawDescriptor, names, $0.baseAddress, UInt32(functions.count), isReturn ? 1 : 0)
            }
          }
          return swt_kprobe_multi_link_create(
            program.rawDescriptor, names, nil, UInt32(functions.count), isReturn ? 1 : 0)
        }
      }
    }
    return LinkHandle(fd: fd, program: program)
  }

  public func detach() { fd.close() }
}
