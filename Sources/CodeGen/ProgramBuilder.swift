import BPF
import BTF
import Sema
import SwtraceSyntax

/// Builds the program of one clause for one attach point.
///
/// Register conventions: r6 holds the context for the whole program, r7 the skb pointer
/// (loaded once, only when the clause reads the skb), r8 the event record while a print
/// statement fills it, r9 the clause's scratch area when it has one. r1-r5 hold expression
/// temporaries (see `TempAllocator`).
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
  /// The key of the clause's area in the per-CPU scratch map, when the program has one.
  let scratchKey: Int32?
  /// Index of the scratch map among the spec's maps.
  let scratchMap: Int32
  /// Whether the scratch area is taken before the filter (which then may use it) rather than
  /// after it.
  let scratchBeforeFilter: Bool
  /// Set when the filter needed more memory than the stack has: generate the program again
  /// with `scratchBeforeFilter`.
  var needsScratchBeforeFilter = false
  /// A record submitted when the ring buffer holds more than this wakes the reader.
  let wakeUpBytes: Int
  var asm = CodeEmitter()
  var frame: SlotAllocator
  var temps = TempAllocator()
  var skbLoaded = false
  /// Slot and size of each `$variable` of the clause, by `TypedExpr.Kind.variable` slot.
  var variableSlots: [(slot: Slot, size: Int)] = []
  /// Slots given back to the allocator after their statement except that the read cache
  /// still held them: looked at again after each later statement.
  var pinnedSlots: Set<Slot> = []
  /// The statement that first asked for more memory than a clause can have.
  var firstUnplacedRange: SourceRange?
  /// Fields the clause reads through a helper more than once: read once, kept on the stack.
  var sharedReads: Set<KernelRead> = []
  /// The packet and stack maps, and the capture records, for clauses that use them.
  let auxiliary: AuxiliaryMaps
  /// The stack areas of the packet header walk, by layer, and its scratch space: allocated
  /// once per program, written again by each run of the walk (see `ProgramBuilder+Packet`).
  var packetFactAreas: [Int: Slot] = [:]
  var packetScratch: Slot?
  var packetWalkState: Slot?
  /// Where `break` and `continue` of the loops being emitted go, innermost last.
  var loopTargets: [(breakTarget: Label, continueTarget: Label)] = []
  /// Where `return` goes: the end of the clause's actions.
  var returnLabel: Label?
  /// The array map whose one value is the time the trace started (`elapsed`), if used.
  var startTimeMap: Int32?

  static let context = Register.r6
  static let skb = Register.r7
  static let record = Register.r8
  static let scratch = Register.r9

  init(
    attachPoint: AttachPoint, probeID: UInt32, layouts: [SourceRange: EventLayout], types: KernelTypes,
    maps: [MapDeclaration], tracking: Bool = false, followsFrees: Bool = false, recordsSkbAddress: Bool = false,
    skbLayout: KernelObjectLayout? = nil, probeFromCookie: Bool = false, directlyIndexedMaps: Set<Int> = [],
    auxiliary: AuxiliaryMaps = AuxiliaryMaps(captureLayouts: [:], snaplen: Snaplen.standard),
    wakeUpBytes: Int = RingBufferSize.standard / RingBufferWakeUp.fillFraction,
    scratchKey: Int32? = nil, scratchMap: Int32 = 0, scratchBeforeFilter: Bool = false
  ) {
    self.auxiliary = auxiliary
    self.wakeUpBytes = wakeUpBytes
    self.scratchKey = scratchKey
    self.scratchMap = scratchMap
    self.scratchBeforeFilter = scratchBeforeFilter
    self.frame = SlotAllocator()
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
    if tracking || followsFrees || clause.filter.map(Self.readsSkb) == true || clause.actions.contains(where: Self.readsSkb) {
      guard let index = attachPoint.skbArgument else {
        throw CodeGenError(message: "\(attachPoint.name) has no skb argument", range: clause.range)
      }
      loadArgument(index, into: Self.skb)
      skbLoaded = true
    }
    sharedReads = sharedReads(of: clause)
    let done = asm.newLabel()
    let scratchReleased = asm.newLabel()
    let exit = asm.newLabel()
    if skbLoaded {
      // Some tracepoints pass a NULL skb (qdisc_dequeue with an empty queue): nothing to trace.
      asm.jump(if: .eq, Self.skb, .immediate(0), to: exit)
    }
    // The filter reads no variables: the scratch area is taken after it, so that packets it
    // drops cost nothing more, unless the filter itself needs more than the stack.
    if scratchKey != nil, scratchBeforeFilter { acquireScratch(skip: scratchReleased, clause) }
    let body = asm.newLabel()
    if let filter = clause.filter, filter.kind != .integer(1) {
      asm.currentRange = filter.range
      let before = frame.liveSlots
      if passesTrackedPackets {
        // A tracked packet passes whatever the filter says: its mark may have been scrubbed.
        lookupTracked()
        asm.jump(if: .ne, .r0, .immediate(0), to: body)
      }
      try branch(filter, ifFalse: scratchBeforeFilter ? done : scratchReleased)
      releaseSlots(allocatedAfter: before)
    }
    asm.bind(body)
    if frame.needsScratch { needsScratchBeforeFilter = true }
    if scratchKey != nil, !scratchBeforeFilter { acquireScratch(skip: scratchReleased, clause) }
    returnLabel = done
    try actions(clause.actions, done: done)
    asm.bind(done)
    asm.currentRange = clause.range
    if scratchKey != nil {
      asm.emit(.storeImmediate(.double, Self.scratch, offset: 0, 0))
    }
    asm.bind(scratchReleased)
    if tracking || followsFrees, isFreePoint {
      // The kernel frees the skb here: its address may be reused by an unrelated packet.
      let key = trackedKey()
      asm.emit(.loadMapFD(.r1, fd: StandardMap.tracked))
      pointer(to: key, in: .r2)
      asm.emit(.call(helper: HelperFunction.mapDeleteElement.rawValue))
    }
    asm.bind(exit)
    asm.emit(.mov(.r0, 0))
    asm.emit(.exit)
    return try finishProgram(clause)
  }

  /// r9 = the clause's area of the per-CPU scratch map, marked busy. Another program of the
  /// clause that interrupts this one on the same CPU (from an interrupt) finds it busy, counts
  /// its event as lost and jumps to `skip`, instead of overwriting this program's values.
  /// The clause's variables get their slots there.
  mutating func acquireScratch(skip: Label, _ clause: CheckedClause) {
    let key = frame.allocate(4)
    asm.emit(.storeImmediate(.word, key.base, offset: key.offset, scratchKey ?? 0))
    asm.emit(.loadMapFD(.r1, fd: scratchMap))
    pointer(to: key, in: .r2)
    asm.emit(.call(helper: HelperFunction.mapLookupElement.rawValue))
    frame.release(key)
    // Never taken (the key is inside the array); the verifier wants the check.
    asm.jump(if: .eq, .r0, .immediate(0), to: skip)
    asm.emit(.mov(Self.scratch, .r0))
    let free = asm.newLabel()
    asm.emit(.load(.double, .r1, Self.scratch, offset: 0))
    asm.jump(if: .eq, .r1, .immediate(0), to: free)
    incrementCounter(in: StandardMap.lost, index: LossCounter.events)
    asm.jump(to: skip)
    asm.bind(free)
    asm.emit(.storeImmediate(.double, Self.scratch, offset: 0, 1))
    frame.scratchAvailable = true
    // Variables live in scratch, where the verifier does not follow their values: a clause
    // that adds to a variable in many independent branches then costs it one state per
    // branch point, not one per path (`2^n` for n branches).
    variableSlots = clause.variables.map { variable in
      let unplaced = frame.unplaced
      let slot = frame.allocate(variable.slotSize, inScratch: true, permanent: true)
      if frame.unplaced > unplaced, firstUnplacedRange == nil { firstUnplacedRange = variable.range }
      return (slot, variable.slotSize)
    }
  }

  /// `register = address of slot`.
  mutating func pointer(to slot: Slot, in register: Register) {
    asm.emit(.mov(register, slot.base))
    if slot.offset != 0 { asm.emit(.add(register, Int32(slot.offset))) }
  }

  /// Gives back the slots allocated since `before` (and those kept earlier for the read
  /// cache), except the ones the read cache still holds: their values are dead once the
  /// statement that wrote them is done, so the next statements reuse the memory.
  mutating func releaseSlots(allocatedAfter before: Set<Slot>) {
    let remembered = asm.rememberedSlots
    for slot in frame.liveSlots where !before.contains(slot) || pinnedSlots.contains(slot) {
      if remembered.contains(slot) {
        pinnedSlots.insert(slot)
        continue
      }
      pinnedSlots.remove(slot)
      asm.forget(slot)
      frame.release(slot)
    }
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
    if frame.unplaced > 0 {
      throw CodeGenError(
        message: "this needs \(frame.unplaced) bytes of memory that do not fit in what a clause has for its values (its \(SlotAllocator.stackSize)-byte stack and \(SlotAllocator.scratchLimit + SlotAllocator.scratchStart) bytes of scratch); keep fewer or smaller values, or split the clause",
        range: firstUnplacedRange ?? clause.range)
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
      let before = frame.liveSlots
      let unplaced = frame.unplaced
      try self.action(action, done: done)
      if frame.unplaced > unplaced, firstUnplacedRange == nil { firstUnplacedRange = asm.currentRange }
      releaseSlots(allocatedAfter: before)
    }
  }

  mutating func action(_ action: Action, done: Label) throws(CodeGenError) {
    // The header walk runs before the statement that needs it rather than inside its
    // branches: a walk in each of many branches would leave the kernel's verifier a state per
    // path (walked here or not), and later statements would walk again.
    for (layer, range) in Self.packetLayers(in: action).sorted(by: { $0.key < $1.key })
    where asm.slot(of: factsKey(layer: layer)) == nil {
      _ = try packetFacts(layer: layer, range: range)
    }
    switch action {
    case .print(let values, let range), .printf(_, let values, let range):
      asm.currentRange = range
      try print(values, layout: layouts[range]!)
    case .assignVariable(let slot, let value, let range):
      asm.currentRange = range
      temps.spillAll(&frame, &asm)
      // A variable holds numbers: a kernel pointer is stored as its address, so that
      // arithmetic on it later (`$p[i]`) is arithmetic on a number.
      try storeOnStack(value, at: variableSlots[slot].slot, size: variableSlots[slot].size, asNumber: true)
    case .conditional(let condition, let then, let otherwise):
      asm.currentRange = condition.range
      if case .integer(let value) = condition.kind {
        // Known at compile time, or decided for this attach point: only the branch that
        // runs is generated (the other would be unreachable code).
        try actions(value != 0 ? then : otherwise, done: done)
        return
      }
      let elseLabel = asm.newLabel()
      let end = asm.newLabel()
      let before = frame.liveSlots
      try branch(condition, ifFalse: elseLabel)
      // What the condition computed is dead in the branches.
      releaseSlots(allocatedAfter: before)
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
    // Slots of the statement: given back with it.
    let key = trackedKey()
    let value = frame.allocate(8)
    asm.emit(.storeImmediate(.double, at: value, 1))
    asm.emit(.loadMapFD(.r1, fd: StandardMap.tracked))
    pointer(to: key, in: .r2)
    pointer(to: value, in: .r3)
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

  /// The skb address as a map key.
  mutating func trackedKey() -> Slot {
    let key = frame.allocate(8)
    asm.emit(.store(.double, key.base, offset: key.offset, Self.skb))
    return key
  }

  /// r0 = the tracked-set entry of this skb, or 0.
  mutating func lookupTracked() {
    let key = trackedKey()
    asm.emit(.loadMapFD(.r1, fd: StandardMap.tracked))
    pointer(to: key, in: .r2)
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
    // Record offsets fit an instruction's offset: `CodeGenerator.layout` bounds records.
    let destination = Slot(base: Self.record, offset: Int16(truncatingIfNeeded: field.offset))
    switch value.kind {
    case .loadString(let base, let baseOffset, let capacity):
      if field.size % 8 == 0, field.size <= (capacity + 7) / 8 * 8,
        let read = KernelRead(base: base, offset: baseOffset, size: capacity, isString: true),
        let slot = asm.slot(of: read)
      {
        copy(from: slot, size: field.size, to: destination)
        return
      }
      try readKernel(
        address: base, offset: baseOffset, size: min(capacity, field.size), into: destination,
        helper: .probeReadKernelString)
      return
    case .builtin(.comm):
      pointer(to: destination, in: .r1)
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
        asm.emit(.storeImmediate(.byte, Self.record, offset: Int16(truncatingIfNeeded: presence), decided != 0 ? 1 : 0))
        return
      }
      try prefetchSharedReads([present, inner])
      temps.spillAll(&frame, &asm)
      let isAbsent = asm.newLabel()
      let end = asm.newLabel()
      try branch(present, ifFalse: isAbsent)
      try store(inner, into: field)
      asm.emit(.storeImmediate(.byte, Self.record, offset: Int16(truncatingIfNeeded: presence), 1))
      asm.jump(to: end)
      asm.bind(isAbsent)
      try store(TypedExpr(.integer(0), type: inner.type, range: inner.range), into: field)
      asm.emit(.storeImmediate(.byte, Self.record, offset: Int16(truncatingIfNeeded: presence), 0))
      asm.bind(end)
      return
    case .eitherFamily(let isIPv4, let v4, let v6):
      try storeFamilyAddress(isIPv4, v4, v6, into: destination)
      return
    case .mapLookup(let map, let keys) where value.type.isWide:
      try copyMapValue(map, keys: keys, to: destination, size: field.size)
      return
    case .integer(0) where AccessSize(bytes: field.size) == nil:
      // Zeros of a value no register holds (an IPv6 or MAC address).
      storeBytes([], size: field.size, into: destination)
      return
    case .integer(let constant) where field.size <= 8:
      if let size = AccessSize(bytes: field.size), let small = Int32(exactly: Int64(bitPattern: constant)) {
        asm.emit(.storeImmediate(size, destination.base, offset: destination.offset, small))
        return
      }
    case .variable(let slot) where field.size > 8 || Self.isString(value.type):
      copy(from: variableSlots[slot].slot, size: min(field.size, variableSlots[slot].size), to: destination)
      return
    case .bytes(let bytes):
      storeBytes(bytes, size: field.size, into: destination)
      return
    case .string(let text):
      storeBytes(Array(text.utf8), size: field.size, into: destination)
      return
    case .load(let base, let baseOffset, let size, nil) where size == field.size:
      // The record holds the field's own bytes, so no sign extension is needed.
      if let through = directBase(base, offset: baseOffset, size: size), let access = AccessSize(bytes: size),
        let smallOffset = Int16(exactly: baseOffset)
      {
        let (temp, register) = temps.allocate(&frame, &asm)
        asm.emit(.load(access, register, through, offset: smallOffset))
        asm.emit(.store(access, destination.base, offset: destination.offset, register))
        temps.free(temp, &frame)
      } else if isRead(base: base, offset: baseOffset, size: size) {
        copy(from: try readIntoSlot(base: base, offset: baseOffset, size: size), size: size, to: destination)
      } else {
        // Read once: straight into the record.
        try readKernel(address: base, offset: baseOffset, size: size, into: destination, helper: .probeReadKernel)
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
    asm.emit(.store(size, destination.base, offset: destination.offset, register))
    temps.free(temp, &frame)
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
      asm.emit(.load(.double, register, buffer.base, offset: buffer.advanced(by: chunk).offset))
      if value <= UInt64(Int32.max) {
        // Short strings end in this chunk: the immediate, sign-extended, is the same number.
        asm.jump(if: .ne, register, .immediate(Int32(value)), to: equal ? differ : target)
      } else {
        asm.emit(.loadImmediate64(constant, value))
        asm.jump(if: .ne, register, .register(constant), to: equal ? differ : target)
      }
    }
    temps.free(temp, &frame)
    temps.free(constantTemp, &frame)
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
    var otherBuffer = buffer
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
      asm.emit(.load(.double, value, buffer.base, offset: buffer.advanced(by: chunk).offset))
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
        asm.emit(.load(.double, otherRegister, otherBuffer.base, offset: otherBuffer.advanced(by: chunk).offset))
      }
      asm.jump(if: .ne, value, .register(otherRegister), to: equal ? differ : target)
    }
    temps.free(valueTemp, &frame)
    temps.free(otherTemp, &frame)
    if equal { asm.jump(to: target) }
    asm.bind(differ)
  }

  /// Copies `size` bytes (1, 2, 4, or 8 at a time otherwise) from `source` to `destination`.
  mutating func copy(from source: Slot, size: Int, to destination: Slot) {
    let (temp, register) = temps.allocate(&frame, &asm)
    let width = [1, 2, 4].contains(size) ? size : 8
    let access = AccessSize(bytes: width)!
    for chunk in stride(from: 0, to: size, by: width) {
      asm.emit(.load(access, register, source.base, offset: source.advanced(by: chunk).offset))
      asm.emit(.store(access, destination.base, offset: destination.advanced(by: chunk).offset, register))
    }
    temps.free(temp, &frame)
  }

  /// Writes `bytes`, zero-padded or cut to `size`, at `destination` with the widest aligned
  /// stores available.
  mutating func storeBytes(_ bytes: [UInt8], size: Int, into destination: Slot) {
    let padded = Array((bytes + Array(repeating: 0, count: max(0, size - bytes.count))).prefix(size))
    var position = 0
    while position < size {
      let at = Int(destination.offset) + position
      let width = [8, 4, 2, 1].first { position + $0 <= size && at % $0 == 0 }!
      let value = padded[position..<position + width].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
      let access: AccessSize = width == 8 ? .double : width == 4 ? .word : width == 2 ? .half : .byte
      let offset = destination.advanced(by: position).offset
      if width < 8 || Int32(exactly: Int64(bitPattern: value)) != nil {
        asm.emit(.storeImmediate(access, destination.base, offset: offset, Int32(truncatingIfNeeded: Int64(bitPattern: value))))
      } else {
        let (temp, register) = temps.allocate(&frame, &asm)
        asm.emit(.loadImmediate64(register, value))
        asm.emit(.store(.double, destination.base, offset: offset, register))
        temps.free(temp, &frame)
      }
      position += width
    }
  }

  /// `if lhs <jump> rhs goto target`, with the constant as an immediate when it fits.
  mutating func compare(_ lhs: TypedExpr, _ rhs: TypedExpr, _ jump: JumpCondition, to target: Label)
    throws(CodeGenError)
  {
    // A kernel pointer is compared as a number, except with the constant 0 (a null check):
    // the kernel compares pointers with anything else only for privileged programs, and the
    // pre-check not at all.
    let left = if case .integer(0) = rhs.kind { try emit(lhs) } else { try emitNumber(lhs) }
    if case .integer(let constant) = rhs.kind {
      if let immediate = Int32(exactly: Int64(bitPattern: constant)), constant <= UInt64(Int32.max) || rhs.type.isSigned {
        let register = temps.use(left, &frame, &asm)
        asm.jump(if: jump, register, .immediate(immediate), to: target)
        temps.free(left, &frame)
        return
      }
      // A u32 field against a constant above 2^31: compare the low 32 bits, since a 64-bit
      // immediate would be sign-extended.
      if constant <= UInt64(UInt32.max), Self.width(of: lhs) <= 4, !lhs.type.isSigned {
        let register = temps.use(left, &frame, &asm)
        asm.jump(if: jump, register, .immediate(Int32(bitPattern: UInt32(constant))), to: target, jump32: true)
        temps.free(left, &frame)
        return
      }
    }
    let right = try emitNumber(rhs)
    let registers = temps.use([left, right], &frame, &asm)
    asm.jump(if: jump, registers[0], .register(registers[1]), to: target)
    temps.free(left, &frame)
    temps.free(right, &frame)
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
