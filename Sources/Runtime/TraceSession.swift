import BPF
public import CodeGen
import Glibc
internal import LibBPF
import Output
import Sema
public import SwtraceSyntax

/// Why the kernel or the system refused to run a spec; each case words what to do about it.
///
/// The system's own words (`reason`, such as "load program: Permission denied (errno 1)")
/// are kept as text: callers word the refusal, they never act on libbpf's error types.
public enum RuntimeError: Error, Sendable, CustomStringConvertible {
  case notPermitted(reason: String)
  case mapCreationFailed(name: String, reason: String)
  /// A program the pre-check accepted but the kernel did not: a bug in swtrace.
  case programRejected(probe: String, clauseRange: SourceRange, reason: String, logTail: String)
  case nothingAttached(failures: [String])
  /// A resource of the process or the system ran out while doing `operation`.
  case shortage(ResourceShortage, operation: String, reason: String)
  /// Another failure of the system while doing `operation`.
  case failed(operation: String, reason: String)

  public var description: String {
    switch self {
    case .notPermitted(let reason):
      "the kernel refused to load BPF programs (\(reason)); run swtrace as root, or give it CAP_BPF and CAP_PERFMON"
    case .mapCreationFailed(let name, let reason):
      "could not create the BPF map '\(name)' (\(reason)); check that the kernel has BPF maps enabled"
    case .programRejected(let probe, _, let reason, let tail):
      "the kernel's verifier rejected the program for \(probe) (\(reason)). This is a bug in swtrace's pre-check; please report it with the spec. The verifier's last words:\n\(tail)"
    case .nothingAttached(let failures):
      "no probe could be attached:\n" + failures.prefix(5).map { "  \($0)" }.joined(separator: "\n")
    case .shortage(let shortage, let operation, let reason):
      "could not \(operation): \(shortage.cause) (\(reason)); \(shortage.advice)"
    case .failed(let operation, let reason):
      "could not \(operation) (\(reason))"
    }
  }

  /// The error for a failed system call made to do `operation`, worded by its real cause: a
  /// limit on open files or memory, missing privileges, or the system's own words.
  static func systemFailure(_ error: SystemError, doing operation: String) -> RuntimeError {
    if let shortage = ResourceShortage(code: error.code) {
      return .shortage(shortage, operation: operation, reason: error.description)
    }
    if error.isPermissionDenied { return .notPermitted(reason: error.description) }
    return .failed(operation: operation, reason: error.description)
  }
}

/// A resource that ran out, found from the errno of the call that failed, with the limit in
/// force when the process has one.
public enum ResourceShortage: Sendable, Equatable {
  /// EMFILE: the process's limit on open files (RLIMIT_NOFILE).
  case openFiles(limit: UInt64?)
  /// ENFILE: the system-wide limit on open files.
  case systemOpenFiles
  /// ENOMEM: memory, with the process's address-space limit (RLIMIT_AS) when one is set.
  case memory(addressSpaceLimit: UInt64?)

  init?(code: Int32) {
    switch code {
    case EMFILE: self = .openFiles(limit: ProcessLimits.current(RLIMIT_NOFILE))
    case ENFILE: self = .systemOpenFiles
    case ENOMEM: self = .memory(addressSpaceLimit: ProcessLimits.current(RLIMIT_AS))
    default: return nil
    }
  }

  var cause: String {
    switch self {
    case .openFiles(let limit): "too many open files\(limit.map { " (the limit is \($0))" } ?? "")"
    case .systemOpenFiles: "the system has too many open files"
    case .memory: "out of memory"
    }
  }

  var advice: String {
    switch self {
    case .openFiles:
      "every BPF program, map and link is a file descriptor: raise the limit with 'ulimit -n' "
        + "(LimitNOFILE= in a systemd unit)"
    case .systemOpenFiles:
      "raise the system's limit (sysctl fs.file-max) or close other programs' files"
    case .memory(let limit?):
      "swtrace's address space is limited to \(limit / (1 << 20)) MiB ('ulimit -v'): raise or remove that limit"
    case .memory(nil):
      "the kernel could not allocate it: lower --map-entries, free memory, or raise the memory limit of "
        + "swtrace's cgroup, which BPF maps and programs are charged to"
        + (KernelCapabilities.chargesBPFToMemlock ? " (this kernel charges them to 'ulimit -l' instead)" : "")
    }
  }
}

/// How attaching went, ipftrace style: how many of the attach points are live.
public struct AttachReport: Sendable {
  public var attached: Int
  public var failed: [(probe: String, reason: String)]
}

/// The loaded, attached form of a compiled spec. Owns every map, program and link; all of
/// them are released by `detach()` or when the session goes away, whichever is first.
public final class TraceSession: @unchecked Sendable {
  public let compiled: CompiledSpec
  /// By index in `compiled.maps`; nil for a map not created (the events ring buffer of a
  /// spec whose programs write no events).
  private var maps: [MapHandle?] = []
  private var programs: [LoadedProgram] = []
  private var links: [LinkHandle] = []
  private var reader: RingBufferReader?
  /// The perf rings packet captures arrive in, when the spec captures (`-w`).
  private var packetReader: PerfBufferReader?

  public init(compiled: CompiledSpec) {
    self.compiled = compiled
  }

  deinit { detach() }

  /// File descriptors the session holds once attached, at most: one per map and loaded
  /// program, one link per attach point (programs shared through kprobe.multi need fewer).
  public var descriptorsNeeded: (maps: Int, programs: Int, links: Int, total: Int) {
    let maps = compiled.maps.count - (compiled.writesEvents ? 0 : 1)
    let programs = compiled.programGroups.count
    let links = compiled.programs.count
    return (maps, programs, links, maps + programs + links)
  }

  /// Creates the maps and loads every program. Function programs the kernel refuses, among
  /// many, are skipped and reported by `attach()`; with `skippingRefusedFunctions` false every
  /// refusal throws, for callers that must know the verifier accepted every program.
  public func load(skippingRefusedFunctions: Bool = true) throws(RuntimeError) {
    SystemInfo.silenceLibBPF()
    for (index, description) in compiled.maps.enumerated() {
      if index == Int(StandardMap.events), !compiled.writesEvents {
        maps.append(nil)
        continue
      }
      // A perf event array has a ring per CPU: as many entries as CPUs that can exist.
      let entries =
        description.kind == .perfEventArray && description.maxEntries == 0
        ? SystemInfo.possibleCPUCount() : description.maxEntries
      do {
        maps.append(
          try MapHandle(
            type: Self.mapType(description.kind), name: description.name, keySize: description.keySize,
            valueSize: description.valueSize, maxEntries: entries))
      } catch {
        if ResourceShortage(code: error.code) != nil || error.isPermissionDenied {
          throw RuntimeError.systemFailure(error, doing: "create the BPF map '\(description.name)'")
        }
        throw .mapCreationFailed(name: description.name, reason: error.description)
      }
    }
    for group in compiled.programGroups {
      let compiledProgram = group[0]
      let bytes = patchedBytes(compiledProgram.program)
      let point = compiledProgram.attachPoint
      do {
        let handle = try ProgramHandle(
          type: Self.programType(point), name: "swt_" + point.name, instructions: bytes)
        programs.append(LoadedProgram(members: group, handle: handle))
      } catch {
        if error.error.isPermissionDenied, error.verifierLog.isEmpty { throw .notPermitted(reason: error.error.description) }
        // Out of descriptors or memory: the system's limit, not the program; ENOMEM with a
        // log is the verifier's own limit, which the pre-check should have caught.
        if let shortage = ResourceShortage(code: error.error.code), error.error.code != ENOMEM || error.verifierLog.isEmpty {
          throw .shortage(shortage, operation: "load the program for \(point.name)", reason: error.error.description)
        }
        let tail = error.verifierLog.split(separator: "\n").suffix(8).joined(separator: "\n")
        // Some kernel functions cannot be traced at all (variadic ones, more than 12
        // arguments, struct returns): among many function attach points, skip them like
        // functions that fail to attach. A refused tracepoint program is a pre-check bug.
        if skippingRefusedFunctions, point.backend != .tracepoint, compiled.programs.count > 1 {
          for member in group {
            loadFailures.append((member.attachPoint.name, "the kernel refused to load it: \(error.error.description)"))
          }
          continue
        }
        throw .programRejected(
          probe: point.name, clauseRange: compiledProgram.clauseRange, reason: error.error.description, logTail: tail)
      }
    }
    if programs.isEmpty, let first = loadFailures.first {
      throw .nothingAttached(failures: ["\(first.0): \(first.1)"])
    }
  }

  /// One loaded program and the attach points it serves: one, or with probe ids from attach
  /// cookies, every attach point whose program has the same code.
  private struct LoadedProgram {
    var members: [CompiledProgram]
    var handle: ProgramHandle
  }

  /// Function attach points whose programs the kernel refused to load, with the reason.
  private var loadFailures: [(String, String)] = []

  /// Attaches every loaded program. Attach points that fail are reported, not fatal, as long
  /// as at least one attaches. `progress` sees attach points done and their total.
  public func attach(progress: ((Int, Int) -> Void)? = nil) throws(RuntimeError) -> AttachReport {
    var failed: [(String, String)] = loadFailures
    var attachedPoints = 0
    var done = 0
    let total = programs.reduce(0) { $0 + $1.members.count }
    for loaded in programs {
      if loaded.members.count == 1, !loaded.members[0].probeFromCookie {
        let point = loaded.members[0].attachPoint
        do {
          links.append(try attachOne(loaded.handle, point))
          attachedPoints += 1
        } catch {
          // Out of descriptors or memory, every further attach point would fail too, for a
          // reason that is not theirs: stop and say so rather than count them as skipped.
          if let shortage = ResourceShortage(code: error.code) {
            throw .shortage(shortage, operation: "attach \(point.name)", reason: error.description)
          }
          failed.append((point.name, error.description))
        }
      } else {
        let outcome = try attachShared(loaded)
        links += outcome.links
        attachedPoints += outcome.attached
        failed += outcome.failed
      }
      done += loaded.members.count
      progress?(done, total)
    }
    if links.isEmpty, !programs.isEmpty {
      throw .nothingAttached(failures: failed.map { "\($0.0): \($0.1)" })
    }
    return AttachReport(attached: attachedPoints, failed: failed)
  }

  /// Attaches one shared kprobe program to all its functions with kprobe.multi links, each
  /// function's probe id as its cookie. The kernel refuses a whole link when one function
  /// cannot be traced, so functions ftrace does not list are left out first, and a refused
  /// link is split in halves to find the rest, within a bounded number of tries.
  private func attachShared(_ loaded: LoadedProgram) throws(RuntimeError)
    -> (links: [LinkHandle], attached: Int, failed: [(String, String)])
  {
    let traceable = FtraceFunctions.available
    var failed: [(String, String)] = []
    var candidates: [CompiledProgram] = []
    for member in loaded.members {
      if let traceable, !traceable.contains(member.attachPoint.name) {
        failed.append((member.attachPoint.name, "not in ftrace's available_filter_functions (notrace, inlined, or renamed by the compiler)"))
      } else {
        candidates.append(member)
      }
    }
    var links: [LinkHandle] = []
    var attached = 0
    var triesLeft = 64
    var pending: [ArraySlice<CompiledProgram>] = candidates.isEmpty ? [] : [candidates[...]]
    let isReturn = loaded.members[0].attachPoint.backend == .kretprobe
    while let batch = pending.popLast() {
      triesLeft -= 1
      do {
        links.append(
          try LinkHandle.attachKprobeMulti(
            loaded.handle, functions: batch.map(\.attachPoint.name), cookies: batch.map { UInt64($0.probeID) },
            isReturn: isReturn))
        attached += batch.count
      } catch {
        if let shortage = ResourceShortage(code: error.code) {
          throw .shortage(shortage, operation: "attach \(batch.count) functions", reason: error.description)
        }
        if batch.count == 1 || triesLeft <= 0 {
          failed += batch.map { ($0.attachPoint.name, error.description) }
        } else {
          let middle = batch.startIndex + batch.count / 2
          pending.append(batch[middle...])
          pending.append(batch[..<middle])
        }
      }
    }
    return (links, attached, failed)
  }

  private func attachOne(_ handle: ProgramHandle, _ point: AttachPoint) throws(SystemError) -> LinkHandle {
    switch point.backend {
    case .tracepoint, .fentry, .fexit:
      return try LinkHandle.attachTracing(handle)
    case .kprobe, .kretprobe:
      // kprobe.multi where the kernel has it, a perf kprobe otherwise; the programs were
      // loaded for the same method (`programType`). Functions the kernel cannot probe fail
      // here alone and are reported as skipped by `attach()`.
      return try LinkHandle.attachKprobe(handle, function: point.name, isReturn: point.backend == .kretprobe)
    case .tracepointRecord:
      guard let category = point.category, let id = Tracefs.tracepointID(category: category, name: point.name) else {
        throw SystemError("find the id of tracepoint \(point.name) in tracefs", code: ENOENT)
      }
      return try LinkHandle.attachTracepoint(handle, id: id, name: point.name)
    }
  }

  /// Starts reading events; `handler` sees each record's bytes during the call only, and
  /// returns false to stop the current `consume` early. With packet captures, `packets` sees
  /// each perf sample's bytes the same way (captures from kprobes come through `handler`, in
  /// the ring buffer).
  public func startReading(
    _ handler: @escaping (UnsafeRawBufferPointer) -> Bool,
    packets: ((UnsafeRawBufferPointer) -> Void)? = nil
  ) throws(RuntimeError) {
    do {
      if let events = map(Int(StandardMap.events)) {
        reader = try RingBufferReader(map: events, handler: handler)
      }
      if let packetMap = compiled.packetMap, let packets, let packetRings = map(Int(packetMap)) {
        packetReader = try PerfBufferReader(
          map: packetRings, pagesPerCPU: Self.perfPages(snaplen: compiled.snaplen), handler: packets)
      }
    } catch {
      throw RuntimeError.systemFailure(error, doing: "read the event ring buffer")
    }
  }

  /// Pages of each CPU's perf ring: room for some 32 packets of the snap length, at least
  /// 256 KiB and at most 2 MiB (a power of two, as perf requires).
  static func perfPages(snaplen: Int) -> Int {
    let wanted = max(1, (snaplen + CaptureLayout.prefixCapacity + 512) * 32 / 4096)
    var pages = 64
    while pages < wanted && pages < 512 { pages *= 2 }
    return pages
  }

  /// Handles the events waiting now, at most `maxRecords` of the ring buffer, and the packets
  /// waiting in the perf rings (`-w`), without waiting; returns how many records.
  @discardableResult
  public func consume(maxRecords: Int = 16384) -> Int {
    let events = reader?.consume(maxRecords: maxRecords) ?? 0
    return events + (packetReader?.consume() ?? 0)
  }

  /// Readable (poll(2)) while events wait in the ring buffer; nil before `startReading`.
  public var eventsDescriptor: Int32? { reader?.readyDescriptor }

  /// Readable while packets wait in the perf rings; nil without captures through them.
  public var packetsDescriptor: Int32? { packetReader?.readyDescriptor }

  /// Packets (`-w`) that could not be written: no room in the ring buffer or a perf ring, or
  /// refused by `bpf_skb_output`.
  public var lostPackets: UInt64 {
    var lost = packetReader?.lostSamples ?? 0
    if let value = map(Int(StandardMap.lost))?.lookup([0, 0, 0, 0]),
      value.count >= 16
    {
      lost &+= StoredNumber(value, at: 8 * Int(LossCounter.packets), width: 8).bits
    }
    return lost
  }

  /// The addresses of kernel stack `id` (a `kstack` value), innermost first; nil when the
  /// stack map does not have it.
  public func kernelStack(_ id: UInt32) -> [UInt64]? {
    guard let stackMap = compiled.stackMap,
      let value = map(Int(stackMap))?.lookup(withUnsafeBytes(of: id.littleEndian, Array.init))
    else { return nil }
    return stride(from: 0, to: value.count - 7, by: 8).map { StoredNumber(value, at: $0, width: 8).bits }
  }

  /// Events the kernel could not write because the ring buffer was full.
  public var lostEvents: UInt64 {
    guard let value = map(Int(StandardMap.lost))?.lookup([0, 0, 0, 0])
    else { return 0 }
    return StoredNumber(value, at: 8 * Int(LossCounter.events), width: 8).bits
  }

  /// Every entry of the spec's map `index` (in `CompiledSpec.userMaps` order): raw key bytes,
  /// and value bytes (one 8-byte-aligned slot per possible CPU for per-CPU maps).
  /// Maps held in per-CPU arrays read as if they were hash maps: each used entry with its
  /// index as the key a hash map would have (8 bytes), unused (zero) entries left out.
  public func userMapEntries(_ index: Int) -> [(key: [UInt8], value: [UInt8])] {
    let position = Int(StandardMap.firstUserMap) + index
    guard let userMap = map(position) else { return [] }
    guard let entries = compiled.directlyIndexedMaps[index] else { return userMap.entries() }
    return Self.usedEntries(count: entries) { userMap.lookup(Self.arrayKey($0)) }
  }

  /// The entries of an array map as a hash map's would read: those with a non-zero byte on
  /// some CPU, each keyed by its index in 8 little-endian bytes.
  static func usedEntries(count: Int, lookup: (Int) -> [UInt8]?) -> [(key: [UInt8], value: [UInt8])] {
    (0..<count).compactMap { entry in
      guard let value = lookup(entry), value.contains(where: { $0 != 0 }) else { return nil }
      return (withUnsafeBytes(of: UInt64(entry).littleEndian, Array.init), value)
    }
  }

  /// Empties the spec's map `index` (array entries are zeroed, on every CPU).
  public func clearUserMap(_ index: Int) {
    let position = Int(StandardMap.firstUserMap) + index
    guard let userMap = map(position) else { return }
    guard let entries = compiled.directlyIndexedMaps[index] else {
      for key in userMap.keys() { userMap.delete(key) }
      return
    }
    for entry in 0..<entries {
      let key = Self.arrayKey(entry)
      guard let value = userMap.lookup(key), value.contains(where: { $0 != 0 }) else { continue }
      try? userMap.update(key, [UInt8](repeating: 0, count: value.count))
    }
  }

  /// Stores `value` under `key` in the spec's map `index` (a plain value map, so a hash map):
  /// BEGIN's lookup tables, written before the probes are attached.
  public func writeUserMapEntry(_ index: Int, key: [UInt8], value: [UInt8]) throws(RuntimeError) {
    let position = Int(StandardMap.firstUserMap) + index
    let name = compiled.userMaps[index].displayName
    guard let userMap = map(position) else {
      throw .failed(operation: "write into the BPF map '\(name)'", reason: "it was not created")
    }
    do {
      try userMap.update(key, value)
    } catch {
      throw .systemFailure(error, doing: "write into the BPF map '\(name)'")
    }
  }

  /// Writes the trace's start time (`CLOCK_MONOTONIC` nanoseconds, the clock of
  /// `bpf_ktime_get_ns`) into the start-time map, for `elapsed`; nothing when no clause reads it.
  public func writeStartTime() throws(RuntimeError) {
    guard let index = compiled.startTimeMap, let startTime = map(index) else { return }
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    let nanoseconds = UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
    do {
      try startTime.update([0, 0, 0, 0], withUnsafeBytes(of: nanoseconds.littleEndian, Array.init))
    } catch {
      throw .systemFailure(error, doing: "write the start time into the BPF map 'start_time'")
    }
  }

  /// Sets every value of the spec's map `index` to zero, keeping its keys (`zero(@m)`).
  public func zeroUserMap(_ index: Int) {
    let position = Int(StandardMap.firstUserMap) + index
    guard let userMap = map(position) else { return }
    guard compiled.directlyIndexedMaps[index] == nil else { return clearUserMap(index) }
    for key in userMap.keys() {
      guard let value = userMap.lookup(key) else { continue }
      try? userMap.update(key, [UInt8](repeating: 0, count: value.count))
    }
  }

  static func arrayKey(_ entry: Int) -> [UInt8] {
    withUnsafeBytes(of: UInt32(entry).littleEndian, Array.init)
  }

  /// Updates refused because a map was full, per user map.
  public func fullMapCounts() -> [UInt64] {
    guard let value = map(Int(StandardMap.full))?.lookup([0, 0, 0, 0]) else {
      return []
    }
    return compiled.userMaps.indices.map { index in
      guard value.count >= 8 * (index + 1) else { return 0 }
      return Self.sumPerCPU(Array(value[8 * index..<8 * (index + 1)]))
    }
  }

  /// The sum of the little-endian u64s in `value`: one per CPU of a per-CPU map, or just one.
  static func sumPerCPU(_ value: [UInt8]) -> UInt64 {
    stride(from: 0, to: value.count - 7, by: 8).reduce(UInt64(0)) { sum, offset in
      sum &+ StoredNumber(value, at: offset, width: 8).bits
    }
  }

  /// The instructions the kernel's verifier processed for each loaded program (its
  /// `verified_insns`), in the order of `CompiledSpec.programGroups`; nil where the kernel
  /// does not report it.
  public func verifiedInstructionCounts() -> [Int?] {
    programs.map { $0.handle.info()?.verifiedInstructionCount }
  }

  /// The created map at `index` of `compiled.maps`, if it was created.
  private func map(_ index: Int) -> MapHandle? {
    index >= 0 && index < maps.count ? maps[index] : nil
  }

  /// Detaches every program but keeps maps, so events and counters can still be read.
  public func detachPrograms() {
    for link in links { link.detach() }
    links.removeAll()
  }

  /// Detaches every program, then frees programs and maps. Safe to call more than once.
  public func detach() {
    for link in links { link.detach() }
    links.removeAll()
    reader = nil
    packetReader = nil
    for loaded in programs { loaded.handle.close() }
    programs.removeAll()
    for map in maps { map?.close() }
    maps.removeAll()
  }

  /// The encoded program with map indices replaced by the descriptors of the created maps.
  private func patchedBytes(_ program: Program) -> [UInt8] {
    var raw = program.encoded()
    for index in raw.indices
    where raw[index].opcode == 0x18
      && (raw[index].src == OpcodeBits.pseudoMapFD || raw[index].src == OpcodeBits.pseudoMapValue)
    {
      // A program never refers to a map that was not created (`CompiledSpec.writesEvents`).
      guard let map = map(Int(raw[index].immediate)) else { continue }
      raw[index].immediate = map.rawDescriptor
    }
    return raw.flatMap(\.bytes)
  }

  static func mapType(_ kind: MapKind) -> MapType {
    switch kind {
    case .hash: .hash
    case .array: .array
    case .perCPUHash: .perCPUHash
    case .perCPUArray: .perCPUArray
    case .ringBuffer: .ringBuffer
    case .lruHash: .lruHash
    case .perfEventArray: .perfEventArray
    case .stackTrace: .stackTrace
    }
  }

  static func programType(_ point: AttachPoint) -> ProgramType {
    switch point.backend {
    case .tracepoint: .tracepointBTF(attachBTFID: point.btfID)
    case .tracepointRecord: .tracepoint
    case .fentry: .fentry(attachBTFID: point.btfID)
    case .fexit: .fexit(attachBTFID: point.btfID)
    case .kprobe, .kretprobe: KprobeAttachMethod.current == .multiLink ? .kprobeMulti : .kprobe
    }
  }
}

extension RuntimeError {
  /// The refusal located in the spec, for refusals that belong to a clause: a program the
  /// kernel's verifier rejected, shown at the clause it was generated from. nil for refusals
  /// of the system as a whole.
  public var diagnostic: Diagnostic? {
    guard case .programRejected(let probe, let clauseRange, let reason, let tail) = self else { return nil }
    return Diagnostic(
      "kernel-rejected",
      "the kernel's verifier rejected the program for \(probe) (\(reason)); this is a bug in swtrace's pre-check, please report it with the spec",
      at: clauseRange, notes: [.init(.note, "the verifier's last words:\n\(tail)")])
  }
}
