import BPF
import BTF
import Sema
import SwtraceSyntax

/// Builds the program of one clause for one attach point.
///
/// Register conventions: r6 holds the context for the whole program, r7 the skb pointer
/// (loaded once, only when the clause reads the skb), r8 the event record while a print
/// statement fills it. r1-r5 hold expression temporaries (see `TempAllocator`).
struct ProgramBuilder {
  let attachPoint: AttachPoint
  let probeID: UInt32
  /// Whether the program reads its probe id from the attach cookie instead of having it as a
  /// constant: then one program serves many functions through one kprobe.multi link.
  let probeFromCookie: Bool
  /// User maps held in per-CPU arrays indexed by bucket (`MapLayout.directIndexEntries`).
  let directlyIndexedMaps: Set<Int>
  let layouts: [SourceRange: EventLayout]
  let types: KernelTypes
  let maps: [MapDeclaration]
  /// Whether the spec tracks packets: skb programs then fire for tracked skbs whatever their
  /// filter, and free points drop the skb from the tracked set.
  let tracking: Bool
  /// `-f paths` (`CheckedSpec.followsPacketFrees`): every print adds its skb to the tracked
  /// set, and a free point passes tracked packets whatever its filter says.
  let followsFrees: Bool
  let recordsSkbAddress: Bool
  /// Where the skb may be read with plain loads (its number fields); nil outside tracing programs.
  let skbLayout: KernelObjectLayout?
  /// A record submitted when the ring buffer holds more than this wakes the reader.
  let wakeUpBytes: Int
  var asm = CodeEmitter()
  var frame = StackFrame()
  var temps = TempAllocator()
  var skbLoaded = false
  /// Stack slot and size of each `$variable` of the clause, by `TypedExpr.Kind.variable` slot.
  var variableSlots: [(offset: Int16, size: Int)] = []
  /// Fields the clause reads through a helper more than once: read once, kept on the stack.
  var sharedReads: Set<KernelRead> = []
  /// The packet and stack maps, and the capture records, for clauses that use them.
  let auxiliary: AuxiliaryMaps
  /// The stack areas of the packet header walk, by layer, and its scratch space: allocated
  /// once per program, written again by each run of the walk (see `ProgramBuilder+Packet`).
  var packetFactAreas: [Int: Int16] = [:]
  var packetScratch: Int16?
  var packetWalkState: Int16?
  /// Where `break` and `continue` of the loops being emitted go, innermost last.
  var loopTargets: [(breakTarget: Label, continueTarget: Label)] = []
  /// Where `return` goes: the end of the clause's actions.
  var returnLabel: Label?
  /// The array map whose one value is the time the trace started (`elapsed`), if used.
  var startTimeMap: Int32?

  static let context = Register.r6
  static let skb = Register.r7
  static let record = Register.r8

  init(
    attachPoint: AttachPoint, probeID: UInt32, layouts: [SourceRange: EventLayout], types: KernelTypes,
    maps: [MapDeclaration], tracking: Bool = false, followsFrees: Bool = false, recordsSkbAddress: Bool = false,
    skbLayout: KernelObjectLayout? = nil, probeFromCookie: Bool = false, directlyIndexedMaps: Set<Int> = [],
    auxiliary: AuxiliaryMaps = AuxiliaryMaps(captureLayouts: [:], snaplen: Snaplen.standard),
    wakeUpBytes: Int = (8 << 20) / RingBufferWakeUp.fillFraction
  ) {
    self.auxiliary = auxiliary
    self.wakeUpBytes = wakeUpBytes
    self.followsFrees = followsFrees && attachPoint.skbArgument != nil
    self.probeFromCookie = probeFromCookie
    self.directlyIndexedMaps = directlyIndexedMaps
    self.recordsSkbAddress = recordsSkbAddress
    self.skbLayout = skbLayout
    self.attachPoint = attachPoint
    self.probeID = probeID
    self.layouts = layouts
    self.types = types
    self.maps = maps
    self.tracking = tracking && attachPoint.skbArgument != nil
  }

  /// Where the kernel frees the skb: a tracked packet's path ends here.
  var isFreePoint: Bool { skbFreePoints.contains(attachPoint.name) }

  /// Whether a tracked packet runs the clause whatever its filter says: everywhere when the
  /// spec tracks, at free points when paths follow frees.
  var passesTrackedPackets: Bool { tracking || (followsFrees && isFreePoint) }

  /// Stack slots of the tracked-set key and value for `trackSkb()`, allocated once.
  var trackSlots: (key: Int16, value: Int16)?

  var isTracing: Bool {
    switch attachPoint.backend {
    case .tracepoint, .fentry, .fexit: true
    case .kprobe, .kretprobe, .tracepointRecord: false
    }
  }

  mutating func build(_ clause: CheckedClause) throws(CodeGenError) -> Program {
    asm.currentRange = clause.range
    if case .integer(0)? = clause.filter?.kind, !passesTrackedPackets {
      // A filter that is always false: the program does nothing, and has no dead code either.
      asm.emit(.mov(.r0, 0))
      asm.emit(.exit)
      return try finishProgram(clause)
    }
    asm.emit(.mov(Self.context, .r1))
    variableSlots = clause.variables.map { (frame.allocate($0.slotSize), $0.slotSize) }
    if tracking || followsFrees || clause.filter.map(Self.readsSkb) == true || clause.actions.contains(where: Self.readsSkb) {
      guard let index = attachPoint.skbArgument else {
        throw CodeGenError(message: "\(attachPoint.name) has no skb argument", range: clause.range)
      }
      loadArgument(index, into: Self.skb)
      skbLoaded = true
    }
    sharedReads = sharedReads(of: clause)
    let done = asm.newLabel()
    if skbLoaded {
      // Some tracepoints pass a NULL skb (qdisc_dequeue with an empty queue): nothing to trace.
      asm.jump(if: .eq, Self.skb, .immediate(0), to: done)
    }
    let body = asm.newLabel()
    if let filter = clause.filter, filter.kind != .integer(1) {
      asm.currentRange = filter.range
      if passesTrackedPackets {
        // A tracked packet passes whatever the filter says: its mark may have been scrubbed.
        lookupTracked()
        asm.jump(if: .ne, .r0, .immediate(0), to: body)
      }
      try branch(filter, ifFalse: done)
    }
    asm.bind(body)
    returnLabel = done
    try actions(clause.actions, done: done)
    asm.bind(done)
    asm.currentRange = clause.range
    if tracking || followsFrees, isFreePoint {
      // The kernel frees the skb here: its address may be reused by an unrelated packet.
      let key = trackedKey()
      asm.emit(.loadMapFD(.r1, fd: StandardMap.tracked))
      asm.emit(.mov(.r2, .fp))
      asm.emit(.add(.r2, Int32(key)))
      asm.emit(.call(helper: HelperFunction.mapDeleteElement.rawValue))
    }
    asm.emit(.mov(.r0, 0))
    asm.emit(.exit)
    return try finishProgram(clause)
  }

  /// The helper reads that appear more than once in the clause's filter and actions.
  func sharedReads(of clause: CheckedClause) -> Set<KernelRead> {
    func expressions(_ actions: [Action]) -> [TypedExpr] {
      actions.flatMap { $0.expressions + expressions($0.nestedActions) }
    }
    var counts: [KernelRead: Int] = [:]
    for expression in (clause.filter.map { [$0] } ?? []) + expressions(clause.actions) {
      for read in helperReads(in: expression) { counts[read, default: 0] += 1 }
    }
    return Set(counts.filter { $0.value > 1 }.keys)
  }

  mutating func finishProgram(_ clause: CheckedClause) throws(CodeGenError) -> Program {
    if frame.overflowed {
      throw CodeGenError(
        message: "this clause needs \(frame.peak) bytes of stack, more than the kernel's 512; split it into smaller clauses",
        range: clause.range)
    }
    do {
      return try asm.finish()
    } catch {
      throw CodeGenError(message: "the program is too large to jump across (\(error))", range: clause.range)
    }
  }

  // MARK: Actions

  mutating func actions(_ list: [Action], done: Label) throws(CodeGenError) {
    for action in list {
      // After `exit()`, `break`, `continue` or `return` on every path, the rest never runs:
      // no code for it (the kernel refuses unreachable instructions).
      guard asm.isReachable else { return }
      switch action {
      case .print(let values, let range), .printf(_, let values, let range):
        asm.currentRange = range
        try print(values, layout: layouts[range]!)
      case .assignVariable(let slot, let value, let range):
        asm.currentRange = range
        temps.spillAll(&frame, &asm)
        try storeOnStack(value, at: variableSlots[slot].offset, size: variableSlots[slot].size)
      case .conditional(let condition, let then, let otherwise):
        asm.currentRange = condition.range
        if case .integer(let decided) = condition.kind {
          // Decided for this attach point: the branch not taken would be unreachable code.
          try actions(decided != 0 ? then : otherwise, done: done)
          continue
        }
        let elseLabel = asm.newLabel()
        let end = asm.newLabel()
        try branch(condition, ifFalse: elseLabel)
        try actions(then, done: done)
        if otherwise.isEmpty {
          asm.bind(elseLabel)
        } else {
          if asm.isReachable { asm.jump(to: end) }
          asm.bind(elseLabel)
          try actions(otherwise, done: done)
        }
        asm.bind(end)
      case .track(let range):
        asm.currentRange = range
        trackSkb()
      case .exit(let range):
        // Stopping the whole trace is the user side's job: send it a request, then end this run.
        asm.currentRange = range
        try requestExit()
        asm.jump(to: done)
      case .mapUpdate(let map, let keys, let value, let range):
        asm.currentRange = range
        try mapUpdate(map, keys: keys, value: value)
      case .mapDelete(let map, let keys, let range):
        asm.currentRange = range
        try mapDelete(map, keys: keys)
      case .capture(let capture, let range):
        asm.currentRange = range
        let own = attachPoint.qualifiedName
        let key = CaptureKey(range: range, probe: capture.probeComment[own] == nil ? nil : own)
        try self.capture(capture, layout: auxiliary.captureLayouts[key]!)
      case .loop(let loop):
        asm.currentRange = loop.range
        try unrolled(loop, done: done)
      case .jump(let kind, let range):
        asm.currentRange = range
        try jump(kind, range: range)
      }
    }
  }

  /// Reserves a record of `size` bytes in the ring buffer into r8, lets `fill` write it, and
  /// submits it (or, with `discarding`, gives it back: the record was only a buffer); when the
  /// ring buffer is full, counts the loss in counter `lossCounter` of the `lost` map.
  mutating func emitRecord(
    size: Int, lossCounter: Int32 = LossCounter.events, discarding: Bool = false,
    fill: (inout ProgramBuilder) throws(CodeGenError) -> Void
  ) throws(CodeGenError) {
    let reserved = asm.newLabel()
    let end = asm.newLabel()
    asm.emit(.loadMapFD(.r1, fd: StandardMap.events))
    asm.emit(.mov(.r2, Int32(size)))
    asm.emit(.mov(.r3, 0))
    asm.emit(.call(helper: HelperFunction.ringbufReserve.rawValue))
    asm.jump(if: .ne, .r0, .immediate(0), to: reserved)
    incrementCounter(in: StandardMap.lost, index: lossCounter)
    asm.jump(to: end)
    asm.bind(reserved)
    asm.emit(.mov(Self.record, .r0))
    try fill(&self)
    if discarding {
      asm.emit(.mov(.r1, Self.record))
      asm.emit(.mov(.r2, 0))
      asm.emit(.call(helper: HelperFunction.ringbufDiscard.rawValue))
    } else {
      // Waking the reader for every record costs more than writing it: the reader polls on
      // its own every few milliseconds (`RingBufferWakeUp`), and is woken at once only when
      // the buffer fills past `wakeUpBytes`, before it could overflow.
      let submit = asm.newLabel()
      asm.emit(.loadMapFD(.r1, fd: StandardMap.events))
      asm.emit(.mov(.r2, RingBufferWakeUp.availableData))
      asm.emit(.call(helper: HelperFunction.ringbufQuery.rawValue))
      asm.emit(.mov(.r2, RingBufferWakeUp.noWakeUp))
      asm.jump(if: .le, .r0, .immediate(Int32(clamping: wakeUpBytes)), to: submit)
      asm.emit(.mov(.r2, RingBufferWakeUp.forceWakeUp))
      asm.bind(submit)
      asm.emit(.mov(.r1, Self.record))
      asm.emit(.call(helper: HelperFunction.ringbufSubmit.rawValue))
    }
    asm.bind(end)
  }

  /// Adds the skb to the tracked set (a packet seen again after its address was reused simply
  /// stays in it: the set only says the packet's free is to be reported).
  mutating func trackSkb() {
    let slots = trackSlots ?? (frame.allocate(8), frame.allocate(8))
    trackSlots = slots
    asm.emit(.store(.double, .fp, offset: slots.key, Self.skb))
    asm.emit(.storeImmediate(.double, .fp, offset: slots.value, 1))
    asm.emit(.loadMapFD(.r1, fd: StandardMap.tracked))
    asm.emit(.mov(.r2, .fp))
    asm.emit(.add(.r2, Int32(slots.key)))
    asm.emit(.mov(.r3, .fp))
    asm.emit(.add(.r3, Int32(slots.value)))
    asm.emit(.mov(.r4, 0))
    asm.emit(.call(helper: HelperFunction.mapUpdateElement.rawValue))
  }

  /// One event of a print statement: header, then each value at its field.
  mutating func print(_ values: [PrintedValue], layout: EventLayout) throws(CodeGenError) {
    // A packet on a path: its free is reported, wherever the kernel frees it.
    if followsFrees, skbLoaded { trackSkb() }
    try prefetchSharedReads(values.map(\.value))
    try emitRecord(size: layout.size) { builder throws(CodeGenError) in
      builder.asm.emit(.call(helper: HelperFunction.ktimeGetNanoseconds.rawValue))
      builder.asm.emit(.store(.double, Self.record, offset: Int16(EventHeader.timestampOffset), .r0))
      builder.asm.emit(.call(helper: HelperFunction.getSMPProcessorID.rawValue))
      builder.asm.emit(.store(.word, Self.record, offset: Int16(EventHeader.cpuOffset), .r0))
      builder.storeHeaderTail(layoutID: layout.id, probeID: builder.probeID)
      for (value, field) in zip(values, layout.fields) {
        builder.asm.currentRange = value.value.range
        try builder.store(value.value, into: field)
      }
      builder.asm.currentRange = layout.range
    }
  }

  /// Probe and layout ids, padding, and the skb address (or 0) of the record in r8.
  /// No temporaries are live here: the record is filled right after helper calls.
  mutating func storeHeaderTail(layoutID: UInt32, probeID: UInt32) {
    if probeFromCookie {
      asm.emit(.mov(.r1, Self.context))
      asm.emit(.call(helper: HelperFunction.getAttachCookie.rawValue))
      asm.emit(.store(.word, Self.record, offset: Int16(EventHeader.probeOffset), .r0))
    } else {
      asm.emit(.storeImmediate(.word, Self.record, offset: Int16(EventHeader.probeOffset), Int32(bitPattern: probeID)))
    }
    asm.emit(.storeImmediate(.word, Self.record, offset: Int16(EventHeader.layoutOffset), Int32(bitPattern: layoutID)))
    // The padding and, without -f paths, the skb address are never read: not written either.
    if recordsSkbAddress {
      if skbLoaded {
        asm.emit(.store(.double, Self.record, offset: Int16(EventHeader.skbOffset), Self.skb))
      } else {
        asm.emit(.storeImmediate(.double, Self.record, offset: Int16(EventHeader.skbOffset), 0))
      }
    }
  }

  /// The skb address as a map key on the stack.
  mutating func trackedKey() -> Int16 {
    let key = frame.allocate(8)
    asm.emit(.store(.double, .fp, offset: key, Self.skb))
    return key
  }

  /// r0 = the tracked-set entry of this skb, or 0.
  mutating func lookupTracked() {
    let key = trackedKey()
    asm.emit(.loadMapFD(.r1, fd: StandardMap.tracked))
    asm.emit(.mov(.r2, .fp))
    asm.emit(.add(.r2, Int32(key)))
    asm.emit(.call(helper: HelperFunction.mapLookupElement.rawValue))
  }

  /// A header-only record with the exit layout id; the user side stops when it reads one.
  mutating func requestExit() throws(CodeGenError) {
    try emitRecord(size: EventHeader.size) { builder throws(CodeGenError) in
      builder.asm.emit(.storeImmediate(.double, Self.record, offset: Int16(EventHeader.timestampOffset), 0))
      builder.asm.emit(.storeImmediate(.double, Self.record, offset: Int16(EventHeader.cpuOffset), 0))
      builder.storeHeaderTail(layoutID: exitRequestLayoutID, probeID: builder.probeID)
    }
  }

  /// Adds one to the `index`th counter of a one-entry array map, addressed directly.
  mutating func incrementCounter(in map: Int32, index: Int32) {
    asm.emit(.loadMapValue(.r1, fd: map, offset: 8 * index))
    asm.emit(.mov(.r2, 1))
    asm.emit(.atomic(.add, .double, .r1, offset: 0, .r2))
  }

  /// Writes one value into the record at its field; kernel memory is read straight into the
  /// record where no conversion is needed, saving a stack copy.
  mutating func store(_ value: TypedExpr, into field: EventField) throws(CodeGenError) {
    let offset = Int32(field.offset)
    switch value.kind {
    case .loadString(let base, let baseOffset, let capacity):
      if field.size % 8 == 0, field.size <= (capacity + 7) / 8 * 8,
        let read = KernelRead(base: base, offset: baseOffset, size: capacity, isString: true),
        let slot = asm.slot(of: read)
      {
        copy(from: slot, size: field.size, to: Self.record, at: field.offset)
        return
      }
      try readKernel(
        address: base, offset: baseOffset, size: capacity, into: Self.record, at: offset,
        helper: .probeReadKernelString)
      return
    case .builtin(.comm):
      asm.emit(.mov(.r1, Self.record))
      asm.emit(.add(.r1, offset))
      asm.emit(.mov(.r2, Int32(field.size)))
      asm.emit(.call(helper: HelperFunction.getCurrentComm.rawValue))
      return
    case .select(let condition, let chosen, let otherwise):
      // Each arm writes its value into the record: no temporary slot to pass it through.
      try writeEachArm(condition, chosen, otherwise) { builder, arm throws(CodeGenError) in
        try builder.store(arm, into: field)
      }
      return
    case .optional(let present, let inner):
      guard let presence = field.presenceOffset else { break }
      // The value and a byte saying it is there, or zeros and a byte saying it is not.
      if case .integer(let decided) = present.kind {
        // Decided for this attach point (a packet read after the hand-over is never there).
        try store(decided != 0 ? inner : TypedExpr(.integer(0), type: inner.type, range: inner.range), into: field)
        asm.emit(.storeImmediate(.byte, Self.record, offset: Int16(presence), decided != 0 ? 1 : 0))
        return
      }
      try prefetchSharedReads([present, inner])
      temps.spillAll(&frame, &asm)
      let isAbsent = asm.newLabel()
      let end = asm.newLabel()
      try branch(present, ifFalse: isAbsent)
      try store(inner, into: field)
      asm.emit(.storeImmediate(.byte, Self.record, offset: Int16(presence), 1))
      asm.jump(to: end)
      asm.bind(isAbsent)
      try store(TypedExpr(.integer(0), type: inner.type, range: inner.range), into: field)
      asm.emit(.storeImmediate(.byte, Self.record, offset: Int16(presence), 0))
      asm.bind(end)
      return
    case .eitherFamily(let isIPv4, let v4, let v6):
      try storeFamilyAddress(isIPv4, v4, v6, into: Self.record, at: field.offset)
      return
    case .mapLookup(let map, let keys) where value.type.isWide:
      try copyMapValue(map, keys: keys, to: Self.record, at: field.offset, size: field.size)
      return
    case .integer(0) where AccessSize(bytes: field.size) == nil:
      // Zeros of a value no register holds (an IPv6 or MAC address).
      storeBytes([], size: field.size, into: Self.record, at: field.offset)
      return
    case .integer(let constant) where field.size <= 8:
      if let size = AccessSize(bytes: field.size), let small = Int32(exactly: Int64(bitPattern: constant)) {
        asm.emit(.storeImmediate(size, Self.record, offset: Int16(offset), small))
        return
      }
    case .variable(let slot) where field.size > 8 || Self.isString(value.type):
      copy(from: variableSlots[slot].offset, size: min(field.size, variableSlots[slot].size), to: Self.record, at: field.offset)
      return
    case .bytes(let bytes):
      storeBytes(bytes, size: field.size, into: Self.record, at: field.offset)
      return
    case .string(let text):
      storeBytes(Array(text.utf8), size: field.size, into: Self.record, at: field.offset)
      return
    case .load(let base, let baseOffset, let size, nil) where size == field.size:
      // The record holds the field's own bytes, so no sign extension is needed.
      if let through = directBase(base, offset: baseOffset, size: size), let access = AccessSize(bytes: size),
        let smallOffset = Int16(exactly: baseOffset)
      {
        let (temp, register) = temps.allocate(&frame, &asm)
        asm.emit(.load(access, register, through, offset: smallOffset))
        asm.emit(.store(access, Self.record, offset: Int16(offset), register))
        temps.free(temp)
      } else if isRead(base: base, offset: baseOffset, size: size) {
        copy(from: try readIntoSlot(base: base, offset: baseOffset, size: size), size: size, to: Self.record, at: field.offset)
      } else {
        // Read once: straight into the record.
        try readKernel(
          address: base, offset: baseOffset, size: size, into: Self.record, at: offset, helper: .probeReadKernel)
      }
      return
    default:
      break
    }
    guard let size = AccessSize(bytes: field.size) else {
      throw CodeGenError(message: "cannot store a \(field.size)-byte value", range: value.range)
    }
    let temp = try emit(value)
    let register = temps.use(temp, &frame, &asm)
    asm.emit(.store(size, Self.record, offset: Int16(offset), register))
    temps.free(temp)
  }

  /// `condition ? chosen : otherwise`, each arm handing its value to `write`, which puts it
  /// where it is wanted. Every temporary is spilled first so that both arms start from the
  /// same register state.
  mutating func writeEachArm(
    _ condition: TypedExpr, _ chosen: TypedExpr, _ otherwise: TypedExpr,
    _ write: (inout ProgramBuilder, TypedExpr) throws(CodeGenError) -> Void
  ) throws(CodeGenError) {
    if case .integer(let decided) = condition.kind {
      // Known here: only the arm taken is written, so no code is left unreachable.
      try write(&self, decided != 0 ? chosen : otherwise)
      return
    }
    try prefetchSharedReads([condition, chosen, otherwise])
    temps.spillAll(&frame, &asm)
    let isFalse = asm.newLabel()
    let end = asm.newLabel()
    try branch(condition, ifFalse: isFalse)
    try write(&self, chosen)
    asm.jump(to: end)
    asm.bind(isFalse)
    try write(&self, otherwise)
    asm.bind(end)
  }

  // MARK: Conditions

  /// Jumps to `target` when `condition` is false; falls through when true.
  mutating func branch(_ condition: TypedExpr, ifFalse target: Label) throws(CodeGenError) {
    try branch(condition, jumpWhen: false, to: target)
  }

  mutating func branch(_ condition: TypedExpr, jumpWhen wanted: Bool, to target: Label) throws(CodeGenError) {
    if let split = splitSelectComparison(condition) {
      try branch(split, jumpWhen: wanted, to: target)
      return
    }
    switch condition.kind {
    case .integer(let value):
      if (value != 0) == wanted { asm.jump(to: target) }
    case .unary(.not, let operand):
      try branch(operand, jumpWhen: !wanted, to: target)
    case .binary(.and, let lhs, let rhs):
      if wanted {
        let skip = asm.newLabel()
        try branch(lhs, jumpWhen: false, to: skip)
        try branch(rhs, jumpWhen: true, to: target)
        asm.bind(skip)
      } else {
        try branch(lhs, jumpWhen: false, to: target)
        try branch(rhs, jumpWhen: false, to: target)
      }
    case .binary(.or, let lhs, let rhs):
      if wanted {
        try branch(lhs, jumpWhen: true, to: target)
        try branch(rhs, jumpWhen: true, to: target)
      } else {
        let skip = asm.newLabel()
        try branch(lhs, jumpWhen: true, to: skip)
        try branch(rhs, jumpWhen: false, to: target)
        asm.bind(skip)
      }
    case .mapHasKey(let map, let keys):
      let key = try buildKey(map, keys)
      temps.spillAll(&frame, &asm)
      lookup(map, key: key)
      asm.jump(if: wanted ? .ne : .eq, .r0, .immediate(0), to: target)
    case .prefixMatch(let address, let network, let length):
      try compareWide(address, TypedExpr(.bytes(network), type: .ipv6, range: condition.range), prefixLength: length, equal: wanted, to: target)
    case .binary(let op, let lhs, let rhs) where (op == .equal || op == .notEqual) && lhs.type == .ipv6:
      try compareWide(lhs, rhs, prefixLength: 128, equal: (op == .equal) == wanted, to: target)
    case .binary(let op, let field, let other) where (op == .equal || op == .notEqual) && Self.stringLiteral(other) != nil:
      try compareString(field, Self.stringLiteral(other)!, equal: (op == .equal) == wanted, to: target)
    case .binary(let op, let lhs, let rhs) where op.isComparison:
      let signed = lhs.type.isSigned || rhs.type.isSigned
      guard var jump = Self.jumpCondition(op, signed: signed) else {
        throw CodeGenError(message: "'\(op.rawValue)' cannot be compiled as a condition", range: condition.range)
      }
      if !wanted { jump = jump.negated! }
      try compare(lhs, rhs, jump, to: target)
    default:
      try compare(condition, TypedExpr(.integer(0), type: .u64, range: condition.range), wanted ? .ne : .eq, to: target)
    }
  }

  /// `(c ? v : k1) op k2` for constants k1 and k2 as `c && v op k2` (or `!c || v op k2` when
  /// `k1 op k2` holds): a packet field compared with a constant, with no value to merge
  /// from the two arms first.
  func splitSelectComparison(_ condition: TypedExpr) -> TypedExpr? {
    guard case .binary(let op, let lhs, let rhs) = condition.kind, op.isComparison,
      case .select(let test, let value, let otherwise) = lhs.kind,
      case .integer(let otherwiseValue) = otherwise.kind, case .integer(let constant) = rhs.kind
    else { return nil }
    guard
      let otherwiseHolds = ConstantFolding.compare(
        op, otherwiseValue, constant, signed: lhs.type.isSigned || rhs.type.isSigned)
    else { return nil }
    let compared = TypedExpr(.binary(op, value, rhs), type: condition.type, range: condition.range)
    if otherwiseHolds {
      let notTest = TypedExpr(.unary(.not, test), type: test.type, range: test.range)
      return TypedExpr(.binary(.or, notTest, compared), type: condition.type, range: condition.range)
    }
    return TypedExpr(.binary(.and, test, compared), type: condition.type, range: condition.range)
  }

  static func stringLiteral(_ expression: TypedExpr) -> String? {
    if case .string(let text) = expression.kind { return text }
    return nil
  }

  /// Reads the string into a zeroed stack buffer and compares it with the literal 8 bytes
  /// at a time (the literal padded with NULs), jumping to `target` when the strings are equal
  /// (`equal`) or differ (`!equal`).
  mutating func compareString(_ field: TypedExpr, _ literal: String, equal: Bool, to target: Label)
    throws(CodeGenError)
  {
    let capacity = field.type.storageSize
    let slotSize = (capacity + 7) / 8 * 8
    let buffer = frame.allocate(slotSize)
    temps.spillAll(&frame, &asm)
    try storeOnStack(field, at: buffer, size: slotSize)
    if case .loadString(let base, let offset, let capacity) = field.kind,
      let read = KernelRead(base: base, offset: offset, size: capacity, isString: true)
    {
      // The buffer is never written again: a later print of the string copies it from here.
      asm.remember(read, at: buffer)
    }
    var bytes = Array(literal.utf8)
    let compared = min(slotSize, (bytes.count + 1 + 7) / 8 * 8)
    bytes += Array(repeating: 0, count: compared - bytes.count)
    let (temp, register) = temps.allocate(&frame, &asm)
    let (constantTemp, constant) = temps.allocate(&frame, &asm)
    let differ = asm.newLabel()
    for chunk in stride(from: 0, to: compared, by: 8) {
      let value = bytes[chunk..<chunk + 8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
      asm.emit(.load(.double, register, .fp, offset: buffer + Int16(chunk)))
      if value <= UInt64(Int32.max) {
        // Short strings end in this chunk: the immediate, sign-extended, is the same number.
        asm.jump(if: .ne, register, .immediate(Int32(value)), to: equal ? differ : target)
      } else {
        asm.emit(.loadImmediate64(constant, value))
        asm.jump(if: .ne, register, .register(constant), to: equal ? differ : target)
      }
    }
    temps.free(temp)
    temps.free(constantTemp)
    if equal { asm.jump(to: target) }
    asm.bind(differ)
  }

  /// Compares two 16-byte values (IPv6 addresses) on the stack 8 bytes at a time, only the
  /// first `prefixLength` bits; jumps to `target` when they are equal (`equal`) or differ.
  mutating func compareWide(_ lhs: TypedExpr, _ rhs: TypedExpr, prefixLength: Int, equal: Bool, to target: Label)
    throws(CodeGenError)
  {
    var (field, other) = (lhs, rhs)
    if case .bytes = lhs.kind { (field, other) = (rhs, lhs) }
    temps.spillAll(&frame, &asm)
    let buffer = frame.allocate(16)
    try storeOnStack(field, at: buffer, size: 16)
    var constant: [UInt8]?
    var otherBuffer: Int16 = 0
    if case .bytes(let bytes) = other.kind {
      constant = bytes
    } else {
      otherBuffer = frame.allocate(16)
      try storeOnStack(other, at: otherBuffer, size: 16)
    }
    let mask = (0..<16).map { index -> UInt8 in
      let bits = min(8, max(0, prefixLength - 8 * index))
      return bits == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - bits))
    }
    // Memory holds the bytes in network order; an 8-byte load reads them little-endian.
    func word(_ bytes: [UInt8], _ chunk: Int) -> UInt64 {
      bytes[chunk..<chunk + 8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }
    let differ = asm.newLabel()
    let (valueTemp, value) = temps.allocate(&frame, &asm)
    let (otherTemp, otherRegister) = temps.allocate(&frame, &asm)
    for chunk in [0, 8] {
      let chunkMask = word(mask, chunk)
      if chunkMask == 0 { continue }
      asm.emit(.load(.double, value, .fp, offset: buffer + Int16(chunk)))
      if chunkMask != UInt64.max {
        asm.emit(.loadImmediate64(otherRegister, chunkMask))
        asm.emit(.alu64(.and, value, .register(otherRegister)))
      }
      if let constant {
        let expected = word(constant, chunk) & chunkMask
        if let small = Int32(exactly: Int64(bitPattern: expected)) {
          asm.emit(.mov(otherRegister, small))
        } else {
          asm.emit(.loadImmediate64(otherRegister, expected))
        }
      } else {
        asm.emit(.load(.double, otherRegister, .fp, offset: otherBuffer + Int16(chunk)))
      }
      asm.jump(if: .ne, value, .register(otherRegister), to: equal ? differ : target)
    }
    temps.free(valueTemp)
    temps.free(otherTemp)
    if equal { asm.jump(to: target) }
    asm.bind(differ)
  }

  /// Copies `size` bytes (1, 2, 4, or 8 at a time otherwise) from the stack slot at `source` to
  /// `destination + at`.
  mutating func copy(from source: Int16, size: Int, to destination: Register, at: Int) {
    let (temp, register) = temps.allocate(&frame, &asm)
    let width = [1, 2, 4].contains(size) ? size : 8
    let access = AccessSize(bytes: width)!
    for chunk in stride(from: 0, to: size, by: width) {
      asm.emit(.load(access, register, .fp, offset: source + Int16(chunk)))
      asm.emit(.store(access, destination, offset: Int16(at + chunk), register))
    }
    temps.free(temp)
  }

  /// Writes `bytes`, zero-padded or cut to `size`, at `destination + at` with the widest
  /// aligned stores available.
  mutating func storeBytes(_ bytes: [UInt8], size: Int, into destination: Register, at: Int) {
    let padded = Array((bytes + Array(repeating: 0, count: max(0, size - bytes.count))).prefix(size))
    var position = 0
    while position < size {
      let width = [8, 4, 2, 1].first { position + $0 <= size && (at + position) % $0 == 0 }!
      let value = padded[position..<position + width].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
      let access: AccessSize = width == 8 ? .double : width == 4 ? .word : width == 2 ? .half : .byte
      let offset = Int16(at + position)
      if width < 8 || Int32(exactly: Int64(bitPattern: value)) != nil {
        asm.emit(.storeImmediate(access, destination, offset: offset, Int32(truncatingIfNeeded: Int64(bitPattern: value))))
      } else {
        let (temp, register) = temps.allocate(&frame, &asm)
        asm.emit(.loadImmediate64(register, value))
        asm.emit(.store(.double, destination, offset: offset, register))
        temps.free(temp)
      }
      position += width
    }
  }

  /// `if lhs <jump> rhs goto target`, with the constant as an immediate when it fits.
  mutating func compare(_ lhs: TypedExpr, _ rhs: TypedExpr, _ jump: JumpCondition, to target: Label)
    throws(CodeGenError)
  {
    let left = try emit(lhs)
    if case .integer(let constant) = rhs.kind {
      if let immediate = Int32(exactly: Int64(bitPattern: constant)), constant <= UInt64(Int32.max) || rhs.type.isSigned {
        let register = temps.use(left, &frame, &asm)
        asm.jump(if: jump, register, .immediate(immediate), to: target)
        temps.free(left)
        return
      }
      // A u32 field against a constant above 2^31: compare the low 32 bits, since a 64-bit
      // immediate would be sign-extended.
      if constant <= UInt64(UInt32.max), Self.width(of: lhs) <= 4, !lhs.type.isSigned {
        let register = temps.use(left, &frame, &asm)
        asm.jump(if: jump, register, .immediate(Int32(bitPattern: UInt32(constant))), to: target, jump32: true)
        temps.free(left)
        return
      }
    }
    let right = try emit(rhs)
    let registers = temps.use([left, right], &frame, &asm)
    asm.jump(if: jump, registers[0], .register(registers[1]), to: target)
    temps.free(left)
    temps.free(right)
  }

  static func jumpCondition(_ op: BinaryOperator, signed: Bool) -> JumpCondition? {
    switch op {
    case .equal: .eq
    case .notEqual: .ne
    case .less: signed ? .slt : .lt
    case .lessEqual: signed ? .sle : .le
    case .greater: signed ? .sgt : .gt
    case .greaterEqual: signed ? .sge : .ge
    default: nil
    }
  }

  /// Bytes of a value's meaningful width: a u32 load has 4 even in a 64-bit register.
  static func width(of expression: TypedExpr) -> Int {
    if case .load(_, _, let size, _) = expression.kind { return size }
    if case .integer(let bytes, _) = expression.type { return bytes }
    return 8
  }

  /// Strings are copied byte for byte, never through a register.
  static func isString(_ type: ValueType) -> Bool {
    if case .string = type { return true }
    return false
  }
}
