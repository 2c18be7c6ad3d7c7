import BPF
public import BTF
public import Sema
public import SwtraceSyntax

/// A spec construct code generation cannot lower, with the range it came from.
public struct CodeGenError: Error, Sendable, Hashable {
  public var message: String
  public var range: SourceRange
  public var diagnostic: Diagnostic { Diagnostic("codegen", message, at: range) }
}

/// Lowers a checked (and desugared) spec to one eBPF program per attach point: every program
/// comes from a clause of the spec, written or added by `Desugaring`.
public struct CodeGenerator: Sendable {
  public let types: KernelTypes
  /// Bytes of the events ring buffer (a power of two, a multiple of the page size).
  public var ringBufferSize: Int

  /// Entries of each map the spec declares (`--map-entries`).
  public var mapEntries: Int

  /// Whether events carry the skb address (for `-f paths`); off otherwise, which saves an
  /// instruction per event and keeps kernel addresses out of the output.
  public var recordsSkbAddress: Bool

  /// Whether kprobe and kretprobe programs read their probe id from the attach cookie, so that
  /// the many functions of `skb:*` share a handful of programs and kprobe.multi links (one
  /// per skb argument position) instead of one program and link each.
  public var kprobeProgramsShareCode: Bool

  /// Bytes of each packet a capture (`-w`) keeps at most, `--snaplen`.
  public var snaplen: Int

  public init(
    types: KernelTypes, ringBufferSize: Int = RingBufferSize.standard, mapEntries: Int = 10240, recordsSkbAddress: Bool = false,
    kprobeProgramsShareCode: Bool = false, snaplen: Int = Snaplen.standard
  ) {
    self.snaplen = snaplen
    self.kprobeProgramsShareCode = kprobeProgramsShareCode
    self.types = types
    self.ringBufferSize = ringBufferSize
    self.mapEntries = mapEntries
    self.recordsSkbAddress = recordsSkbAddress
  }

  public func generate(_ spec: CheckedSpec) throws(CodeGenError) -> CompiledSpec {
    var layouts: [EventLayout] = []
    var layoutByRange: [SourceRange: EventLayout] = [:]
    for clause in spec.clauses {
      for (range, values, format) in printStatements(clause.actions) {
        var layout = Self.layout(id: UInt32(layouts.count), values: values, range: range)
        guard layout.size <= Self.maximumRecordSize else {
          throw CodeGenError(
            message: "this event takes \(layout.size) bytes; an event can hold at most \(Self.maximumRecordSize)",
            range: range)
        }
        layout.format = format
        layouts.append(layout)
        layoutByRange[range] = layout
      }
    }
    var captureLayouts: [CaptureLayout] = []
    var captureLayoutByRange: [CaptureKey: CaptureLayout] = [:]
    for clause in spec.clauses {
      for (range, capture) in captureStatements(clause.actions) {
        // One layout for the attach points with the common comment, one for each with values
        // of its own.
        for probe in [nil] + capture.probeComment.keys.sorted() {
          let layout = CaptureLayout.make(
            id: UInt32(captureLayouts.count), comment: probe.map { capture.comment(at: $0) } ?? capture.comment,
            geometry: capture.geometry, range: range)
          captureLayouts.append(layout)
          captureLayoutByRange[CaptureKey(range: range, probe: probe)] = layout
        }
      }
    }
    // Maps of their own after the spec's, in this order: the perf rings packets go to, kernel
    // stacks, and the one-entry array `elapsed` reads the start time from.
    var nextMap = StandardMap.firstUserMap + Int32(spec.maps.count)
    let packetMap: Int32? = captureLayouts.isEmpty ? nil : nextMap
    if packetMap != nil { nextMap += 1 }
    let stackMap: Int32? = spec.clauses.contains(where: Self.readsStack) ? nextMap : nil
    if stackMap != nil { nextMap += 1 }
    let startTimeMap = spec.clauses.contains(where: Self.readsElapsed) ? Int(nextMap) : nil
    let auxiliary = AuxiliaryMaps(
      packets: packetMap, stacks: stackMap, captureLayouts: captureLayoutByRange, snaplen: snaplen)
    var programs: [CompiledProgram] = []
    var probeNames: [String] = []
    // An array entry cannot be deleted: maps the spec deletes from stay hash maps.
    let deleted = Set(spec.clauses.flatMap { deletedMaps($0.actions) })
    var directlyIndexed: [Int: Int] = [:]
    for (index, map) in spec.maps.enumerated() where !deleted.contains(index) {
      directlyIndexed[index] = MapLayout.directIndexEntries(map)
    }
    // A spec that never prints (maps only) needs the ring buffer just for exit requests.
    let eventBytes = layouts.isEmpty ? 4096 : ringBufferSize
    var objectLayouts: [BTFTypeID: KernelObjectLayout] = [:]
    // The per-CPU scratch map comes last; each clause that needs it has an area of its own
    // (key), as large as the largest any of its programs uses.
    let scratchMap = nextMap + (startTimeMap == nil ? 0 : 1)
    var scratchKeys: [Int: Int32] = [:]
    var scratchBytes = 0
    for (clauseIndex, clause) in spec.clauses.enumerated() {
      for attachPoint in clause.attachPoints {
        let probeID = UInt32(probeNames.count)
        probeNames.append(attachPoint.name)
        let kernelObjects = kernelObjectLayouts(for: attachPoint, cache: &objectLayouts)
        let fromCookie = kprobeProgramsShareCode && (attachPoint.backend == .kprobe || attachPoint.backend == .kretprobe)
        let specialized = clause.specialized(for: attachPoint)
        func build(scratchKey: Int32?, beforeFilter: Bool = false) throws(CodeGenError) -> (Program, ProgramBuilder) {
          var builder = ProgramBuilder(
            attachPoint: attachPoint, probeID: probeID, layouts: layoutByRange, types: types, maps: spec.maps,
            tracking: spec.usesTracking, followsFrees: spec.followsPacketFrees, recordsSkbAddress: recordsSkbAddress,
            skbLayout: attachPoint.skbArgument.flatMap { kernelObjects[$0] }, probeFromCookie: fromCookie,
            directlyIndexedMaps: Set(directlyIndexed.keys), auxiliary: auxiliary, wakeUpBytes: eventBytes / RingBufferWakeUp.fillFraction,
            scratchKey: scratchKey, scratchMap: scratchMap, scratchBeforeFilter: beforeFilter)
          builder.startTimeMap = startTimeMap.map(Int32.init)
          let program = try builder.build(specialized)
          return (program, builder)
        }
        // Clauses with variables keep them in scratch; others use it only when their values
        // do not fit the stack, which the first attempt finds out.
        let key = scratchKeys[clauseIndex] ?? Int32(scratchKeys.count)
        var (program, builder) = try build(scratchKey: clause.variables.isEmpty ? scratchKeys[clauseIndex] : key)
        if builder.needsScratchBeforeFilter {
          (program, builder) = try build(scratchKey: key, beforeFilter: true)
        } else if builder.frame.needsScratch {
          (program, builder) = try build(scratchKey: key)
        }
        if builder.scratchKey != nil {
          scratchKeys[clauseIndex] = key
          scratchBytes = max(scratchBytes, SlotAllocator.scratchStart + builder.frame.scratchHighWater)
        }
        programs.append(
          CompiledProgram(
            attachPoint: attachPoint, probeID: probeID, program: program,
            context: Self.context(for: attachPoint, types: types),
            kernelObjects: kernelObjects, clauseRange: clause.range, probeFromCookie: fromCookie))
      }
    }
    var maps = [
      MapDescription(name: "events", kind: .ringBuffer, keySize: 0, valueSize: 0, maxEntries: eventBytes),
      // Counters of rare events, one value each, updated in place through the value's
      // address (no lookup): an atomic add on a shared line costs nothing while nothing is lost.
      // Events the ring buffer had no room for, then packets that could not be written.
      MapDescription(name: "lost", kind: .array, keySize: 4, valueSize: 16, maxEntries: 1),
      MapDescription(name: "full", kind: .array, keySize: 4, valueSize: 8 * max(1, spec.maps.count), maxEntries: 1),
      // Least recently used entries make room: a packet whose free no probe sees (freed where
      // the kernel has no tracepoint) must not keep newer packets out for good.
      spec.usesTracking || spec.followsPacketFrees
        ? MapDescription(name: "tracked", kind: .lruHash, keySize: 8, valueSize: 8, maxEntries: mapEntries)
        : MapDescription(name: "tracked", kind: .hash, keySize: 8, valueSize: 8, maxEntries: 1),
    ]
    for (index, map) in spec.maps.enumerated() {
      let name = map.name.isEmpty ? "at" : map.name
      if let entries = directlyIndexed[index] {
        maps.append(
          MapDescription(
            name: name, kind: .perCPUArray, keySize: 4, valueSize: MapLayout.valueSize(map), maxEntries: entries))
        continue
      }
      maps.append(
        MapDescription(
          name: name, kind: MapLayout.isPerCPU(map) ? .perCPUHash : .hash,
          keySize: MapLayout.keySize(map), valueSize: MapLayout.valueSize(map), maxEntries: mapEntries))
    }
    if packetMap != nil {
      // One perf ring per CPU: the runtime sets the entries to the number of possible CPUs.
      maps.append(MapDescription(name: "packets", kind: .perfEventArray, keySize: 4, valueSize: 4, maxEntries: 0))
    }
    if stackMap != nil {
      maps.append(
        MapDescription(
          name: "stacks", kind: .stackTrace, keySize: 4, valueSize: 8 * KernelStackDepth.maximum,
          maxEntries: mapEntries))
    }
    if startTimeMap != nil {
      maps.append(MapDescription(name: "start_time", kind: .array, keySize: 4, valueSize: 8, maxEntries: 1))
    }
    if !scratchKeys.isEmpty {
      maps.append(
        MapDescription(
          name: "scratch", kind: .perCPUArray, keySize: 4, valueSize: (scratchBytes + 7) / 8 * 8,
          maxEntries: scratchKeys.count))
    }
    var compiled = CompiledSpec(
      programs: programs, maps: maps, layouts: layouts, probeNames: probeNames,
      ringBufferSize: ringBufferSize, userMaps: spec.maps, userClauses: spec.userClauses,
      directlyIndexedMaps: directlyIndexed, probeTypes: spec.probeTypes)
    compiled.captureLayouts = captureLayouts
    compiled.packetMap = packetMap
    compiled.stackMap = stackMap
    compiled.snaplen = snaplen
    compiled.startTimeMap = startTimeMap
    compiled.writesEvents = programs.contains { Self.references(StandardMap.events, $0.program) }
    return compiled
  }

  /// Whether `program` loads the descriptor or a value address of map `index`.
  static func references(_ index: Int32, _ program: Program) -> Bool {
    program.instructions.contains { instruction in
      switch instruction {
      case .loadMapFD(_, let fd), .loadMapValue(_, let fd, _): fd == index
      default: false
      }
    }
  }

  /// Every capture a clause's actions make, with the range of the print it follows.
  func captureStatements(_ actions: [Action]) -> [(SourceRange, PacketCapture)] {
    actions.flatMap { action -> [(SourceRange, PacketCapture)] in
      switch action {
      case .capture(let capture, let range): [(range, capture)]
      case .conditional, .loop: captureStatements(action.nestedActions)
      default: []
      }
    }
  }

  /// Whether a clause reads `kstack` anywhere.
  static func readsStack(_ clause: CheckedClause) -> Bool {
    func reads(_ expression: TypedExpr) -> Bool {
      expression.kind == .builtin(.kstack) || expression.operands.contains(where: reads)
    }
    func reads(_ action: Action) -> Bool {
      action.expressions.contains(where: reads) || action.nestedActions.contains(where: reads)
    }
    return (clause.filter.map(reads) ?? false) || clause.actions.contains(where: reads)
  }

  /// Whether a clause reads `elapsed`.
  static func readsElapsed(_ clause: CheckedClause) -> Bool {
    func reads(_ expression: TypedExpr) -> Bool {
      if case .builtin(.elapsed) = expression.kind { return true }
      return expression.operands.contains(where: reads)
    }
    func reads(_ actions: [Action]) -> Bool {
      actions.contains { $0.expressions.contains(where: reads) || reads($0.nestedActions) }
    }
    return clause.filter.map(reads) == true || reads(clause.actions)
  }

  /// The largest event record: every offset in it must fit the 16-bit offset of a store.
  static let maximumRecordSize = 32 * 1024 - 8

  /// The maps a clause's actions delete entries from.
  func deletedMaps(_ actions: [Action]) -> [Int] {
    actions.flatMap { action -> [Int] in
      switch action {
      case .mapDelete(let map, _, _): [map]
      case .conditional, .loop: deletedMaps(action.nestedActions)
      case .print, .printf, .exit, .mapUpdate, .track, .assignVariable, .jump, .capture: []
      }
    }
  }

  /// Every print and printf statement of a clause, in source order, with its values.
  func printStatements(_ actions: [Action]) -> [(SourceRange, [PrintedValue], FormatString?)] {
    actions.flatMap { action -> [(SourceRange, [PrintedValue], FormatString?)] in
      switch action {
      case .print(let values, let range): [(range, values, nil)]
      case .printf(let format, let values, let range): [(range, values, format)]
      case .conditional, .loop: printStatements(action.nestedActions)
      case .exit, .mapUpdate, .mapDelete, .track, .assignVariable, .jump, .capture: []
      }
    }
  }

  /// Fields after the header, each aligned to its own width (at most 8).
  static func layout(id: UInt32, values: [PrintedValue], range: SourceRange) -> EventLayout {
    var offset = EventHeader.size
    var fields: [EventField] = []
    for value in values {
      let size = fieldSize(value.value)
      var alignment = min(8, size.nonzeroBitCount == 1 ? size : 1)
      // Wide variables are copied with 8-byte stores.
      if case .variable = value.value.kind { alignment = 8 }
      offset = (offset + alignment - 1) / alignment * alignment
      fields.append(EventField(label: value.label, type: value.value.type, offset: offset, size: size))
      offset += size
      if value.value.presence != nil {
        fields[fields.count - 1].presenceOffset = offset
        offset += 1
      }
    }
    return EventLayout(id: id, fields: fields, size: (offset + 7) / 8 * 8, range: range)
  }

  /// Bytes a value takes in a record: loads keep their width, strings their capacity.
  static func fieldSize(_ expression: TypedExpr) -> Int {
    switch expression.kind {
    case .load(_, _, let size, _): return size
    case .loadString(_, _, let capacity): return capacity
    case .select(_, let value, let otherwise):
      // `?:` arms of different widths: the wider one.
      return max(fieldSize(value), fieldSize(otherwise))
    case .optional(_, let value): return fieldSize(value)
    case .networkToHost(let value, _): return fieldSize(value)
    case .mapLookup: return expression.type.storageSize
    // Wide variables are copied from their slot 8 bytes at a time.
    case .variable where expression.type.storageSize > 8: return (expression.type.storageSize + 7) / 8 * 8
    case .variable:
      // A short string variable is copied whole from its 8-byte slot.
      if case .string = expression.type { return 8 }
    default: break
    }
    switch expression.type {
    case .string(let capacity): return capacity
    case .ipv6: return 16
    case .ipAddress: return 24
    case .probe: return 4
    case .bool: return 1
    case .integer(let bytes, _): return bytes
    // An enum in its own width, as BTF gives it: printf's %u and %x print those bits.
    case .enumeration(let names): return names.representation.bytes
    default: return 8
    }
  }

  static func context(for point: AttachPoint, types: KernelTypes) -> ProgramContext {
    switch point.backend {
    case .tracepoint, .fentry, .fexit:
      let pointers = Set(point.arguments.indices.filter { types.pointeeStructName(point.arguments[$0].type) != nil })
      let count = point.arguments.count + (point.backend == .fexit ? 1 : 0)
      return .tracing(argumentCount: count, kernelPointerArguments: pointers)
    case .kprobe, .kretprobe:
      return .kprobe
    case .tracepointRecord:
      return .tracepointRecord
    }
  }
}
