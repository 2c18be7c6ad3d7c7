import BPF
import Sema
import SwtraceSyntax

extension ProgramBuilder {
  static let updateAny: Int32 = 0

  func mapFD(_ map: Int) -> Int32 { StandardMap.firstUserMap + Int32(map) }

  /// Writes the key of `map` to a new slot and returns it. Every byte is written: unused
  /// bytes of a string key are zeroed so equal strings make equal keys.
  mutating func buildKey(_ map: Int, _ keys: [TypedExpr]) throws(CodeGenError) -> Slot {
    let declaration = maps[map]
    let size = MapLayout.keySize(declaration)
    let base = frame.allocate(size)
    if keys.isEmpty {
      zero(base, size: size)
      return base
    }
    // Each key takes the slot its map declares: a string key shorter than the map's widest
    // is zero-padded to it; an optional key is followed by 8 bytes saying it is there.
    var offset = 0
    for (key, declared) in zip(keys, declaration.keys) {
      let valueSize = MapLayout.slotSize(declared.type)
      try storeOnStack(key, at: base + offset, size: valueSize)
      if declared.optional {
        // 1 when the key is present, 0 when it is not (its value bytes are then zeros).
        let presence = base + (offset + valueSize)
        if let present = key.presence {
          temps.spillAll(&frame, &asm)
          let temp = try materialize(present)
          asm.emit(.store(.double, at: presence, temps.use(temp, &frame, &asm)))
          temps.free(temp, &frame)
        } else {
          asm.emit(.storeImmediate(.double, at: presence, 1))
        }
      }
      offset += declared.slotSize
    }
    return base
  }

  /// Stores zeros in `size` bytes (a multiple of 8) at `slot`.
  mutating func zero(_ slot: Slot, size: Int, from start: Int = 0) {
    for chunk in stride(from: start, to: size, by: 8) {
      asm.emit(.storeImmediate(.double, slot.base, offset: slot.advanced(by: chunk).offset, 0))
    }
  }

  /// Writes `saddr`/`daddr` (an `.ipAddress`) at `destination`: the host-order IPv4 address
  /// as a u32 followed by zeros, or the 16 IPv6 bytes; then the family, 4 or 6.
  mutating func storeFamilyAddress(
    _ isIPv4: TypedExpr, _ v4: TypedExpr, _ v6: TypedExpr, into destination: Slot
  ) throws(CodeGenError) {
    if case .integer(let decided) = isIPv4.kind {
      // `ntop()`: the family is known, so only its arm is written (no unreachable code).
      if decided != 0 {
        try storeIPv4Arm(v4, into: destination)
      } else {
        try storeIPv6Arm(v6, into: destination)
      }
      return
    }
    try prefetchSharedReads([isIPv4, v4, v6])
    temps.spillAll(&frame, &asm)
    let notIPv4 = asm.newLabel()
    let end = asm.newLabel()
    try branch(isIPv4, ifFalse: notIPv4)
    try storeIPv4Arm(v4, into: destination)
    asm.jump(to: end)
    asm.bind(notIPv4)
    try storeIPv6Arm(v6, into: destination)
    asm.bind(end)
  }

  /// An IPv4 address in an address-of-either-family slot: the 4 bytes, zeros, family 4.
  private mutating func storeIPv4Arm(_ v4: TypedExpr, into destination: Slot) throws(CodeGenError) {
    let temp = try emit(v4.unwrapped)
    asm.emit(.store(.word, at: destination, temps.use(temp, &frame, &asm)))
    temps.free(temp, &frame)
    asm.emit(.storeImmediate(.word, at: destination + 4, 0))
    asm.emit(.storeImmediate(.double, at: destination + 8, 0))
    asm.emit(.storeImmediate(.double, at: destination + 16, 4))
  }

  /// An IPv6 address in an address-of-either-family slot: the 16 bytes, family 6.
  private mutating func storeIPv6Arm(_ v6: TypedExpr, into destination: Slot) throws(CodeGenError) {
    if destination.base == Self.record {
      try store(v6.unwrapped, into: EventField(label: "", type: .ipv6, offset: Int(destination.offset), size: 16))
    } else {
      try storeOnStack(v6.unwrapped, at: destination, size: 16)
    }
    asm.emit(.storeImmediate(.double, at: destination + 16, 6))
  }

  /// Stores a value in a slot of `size` bytes: integers widened to 8 bytes, strings
  /// zero-filled then read.
  mutating func storeOnStack(_ value: TypedExpr, at slot: Slot, size: Int, asNumber: Bool = false) throws(CodeGenError) {
    switch value.kind {
    case .loadString(let base, let baseOffset, let capacity):
      let read = KernelRead(base: base, offset: baseOffset, size: capacity, isString: true)
      if let read, let cached = asm.slot(of: read), size % 8 == 0 {
        // Read before (a filter compared it): copied, with the same zero padding.
        let copied = min(size, (capacity + 7) / 8 * 8)
        copy(from: cached, size: copied, to: slot)
        zero(slot, size: size, from: copied)
        return
      }
      zero(slot, size: size)
      try readKernel(
        address: base, offset: baseOffset, size: min(capacity, size), into: slot, helper: .probeReadKernelString)
      return
    case .builtin(.comm):
      zero(slot, size: size)
      temps.spillAll(&frame, &asm)
      pointer(to: slot, in: .r1)
      asm.emit(.mov(.r2, Int32(min(size, Builtin.comm.type.storageSize))))
      asm.emit(.call(helper: HelperFunction.getCurrentComm.rawValue))
      return
    case .load(let base, let baseOffset, 6, nil) where value.type == .macAddress:
      // Six bytes into a zeroed slot, so equal addresses make equal keys.
      zero(slot, size: size)
      try readKernel(address: base, offset: baseOffset, size: 6, into: slot, helper: .probeReadKernel)
      return
    case .load(let base, let baseOffset, 16, nil):
      if isRead(base: base, offset: baseOffset, size: 16) {
        copy(from: try readIntoSlot(base: base, offset: baseOffset, size: 16), size: 16, to: slot)
      } else {
        try readKernel(address: base, offset: baseOffset, size: 16, into: slot, helper: .probeReadKernel)
      }
      return
    case .load(let base, let baseOffset, let bytes, nil) where value.type.isWide && bytes <= size:
      // Bytes no register holds (a byte array, a buffer): into a zeroed area, so equal bytes
      // make equal keys.
      zero(slot, size: size)
      try readKernel(address: base, offset: baseOffset, size: bytes, into: slot, helper: .probeReadKernel)
      return
    case .mapLookup(let map, let keys) where value.type.isWide:
      try copyMapValue(map, keys: keys, to: slot, size: size)
      return
    case .variable(let variable) where size > 8 || Self.isString(value.type):
      let source = variableSlots[variable]
      let copied = min(size, source.size)
      copy(from: source.slot, size: copied, to: slot)
      zero(slot, size: size, from: copied)
      return
    case .bytes(let bytes):
      storeBytes(bytes, size: size, into: slot)
      return
    case .string(let text):
      storeBytes(Array(text.utf8), size: size, into: slot)
      return
    case .integer(0) where size > 8:
      zero(slot, size: size)
      return
    case .integer(let constant) where size == 8 && Int32(exactly: Int64(bitPattern: constant)) != nil:
      asm.emit(.storeImmediate(.double, slot.base, offset: slot.offset, Int32(truncatingIfNeeded: Int64(bitPattern: constant))))
      return
    case .select(let condition, let chosen, let otherwise):
      // Each arm writes its value: no temporary slot to pass it through.
      try writeEachArm(condition, chosen, otherwise) { builder, arm throws(CodeGenError) in
        try builder.storeOnStack(arm, at: slot, size: size, asNumber: asNumber)
      }
      return
    case .optional(let present, let inner):
      // Where no presence byte goes with it, an absent value is stored as zeros.
      let absent = TypedExpr(.integer(0), type: inner.type, range: inner.range)
      try writeEachArm(present, inner, absent) { builder, arm throws(CodeGenError) in
        try builder.storeOnStack(arm, at: slot, size: size, asNumber: asNumber)
      }
      return
    case .eitherFamily(let isIPv4, let v4, let v6):
      try storeFamilyAddress(isIPv4, v4, v6, into: slot)
      return
    default:
      break
    }
    guard size == 8 else {
      throw CodeGenError(message: "a \(value.type) cannot be used here", range: value.range)
    }
    let temp = asNumber ? try emitNumber(value) : try emit(value)
    asm.emit(.store(.double, slot.base, offset: slot.offset, temps.use(temp, &frame, &asm)))
    temps.free(temp, &frame)
  }

  mutating func lookup(_ map: Int, key: Slot) {
    asm.emit(.loadMapFD(.r1, fd: mapFD(map)))
    pointer(to: key, in: .r2)
    asm.emit(.call(helper: HelperFunction.mapLookupElement.rawValue))
  }

  /// `@map[keys] = aggregate(value)` or `@map[keys] = value`.
  mutating func mapUpdate(_ map: Int, keys: [TypedExpr], value: TypedExpr?) throws(CodeGenError) {
    if directlyIndexedMaps.contains(map) {
      try directMapUpdate(map, value: value)
      return
    }
    let declaration = maps[map]
    let key = try buildKey(map, keys)
    if declaration.aggregation == .value {
      guard let value else { throw CodeGenError(message: "a map assignment needs a value", range: declaration.range) }
      let slot = frame.allocate(MapLayout.valueSize(declaration))
      try storeOnStack(value, at: slot, size: MapLayout.valueSize(declaration))
      temps.spillAll(&frame, &asm)
      let end = asm.newLabel()
      update(map, key: key, value: slot)
      asm.jump(if: .sge, .r0, .immediate(0), to: end)
      incrementCounter(in: StandardMap.full, index: Int32(map))
      asm.bind(end)
      return
    }
    // `first` is the entry's value after this event when the key is new: the value and the
    // constant 1 of a count or a present flag sit where the value layout has them, so a new
    // entry is written with one update. The value is computed before any map call and kept
    // on the stack across them; a histogram's only use of it is the bucket, part of the key.
    let first = frame.allocate(MapLayout.valueSize(declaration))
    var valueSlot = first
    switch declaration.aggregation {
    case .histogram, .linearHistogram:
      guard let value else { throw CodeGenError(message: "a histogram needs a value", range: declaration.range) }
      // The bucket index is the last 8 bytes of the key.
      let bucket = key.advanced(by: MapLayout.keySize(declaration) - 8)
      let temp = try bucketIndex(declaration, value: try emit(value))
      asm.emit(.store(.double, bucket.base, offset: bucket.offset, temps.use(temp, &frame, &asm)))
      temps.free(temp, &frame)
    case .sum, .average, .stats, .minimum, .maximum:
      guard let value else { throw CodeGenError(message: "this aggregation needs a value", range: declaration.range) }
      // (count, sum) for avg and stats; (value, present) for min and max.
      if declaration.aggregation == .average || declaration.aggregation == .stats { valueSlot = first.advanced(by: 8) }
      try storeOnStack(value, at: valueSlot, size: 8)
    case .count, .value:
      break
    }
    temps.spillAll(&frame, &asm)
    let end = asm.newLabel()
    let found = asm.newLabel()
    lookup(map, key: key)
    // A hit, every event but the first of its key, takes one branch and no further call.
    asm.jump(if: .ne, .r0, .immediate(0), to: found)
    switch declaration.aggregation {
    case .count, .histogram, .linearHistogram, .average, .stats:
      asm.emit(.storeImmediate(.double, first.base, offset: first.offset, 1))
    case .minimum, .maximum:
      asm.emit(.storeImmediate(.double, first.base, offset: first.advanced(by: 8).offset, 1))
    case .sum, .value:
      break
    }
    // BPF_ANY, not BPF_NOEXIST, and no second lookup: the map is per-CPU, and an update from
    // a program writes only this CPU's slot. If another CPU created the key since the lookup,
    // it zero-filled this CPU's slot, and writing the first value over zeros is exactly
    // adding this event to it. Only a full map (or no memory for the entry) fails.
    update(map, key: key, value: first)
    asm.jump(if: .sge, .r0, .immediate(0), to: end)
    incrementCounter(in: StandardMap.full, index: Int32(map))
    asm.jump(to: end)
    asm.bind(found)
    switch declaration.aggregation {
    // Per-CPU values are only written by programs on their own CPU: plain adds suffice,
    // and cost far less than locked ones.
    case .count, .histogram, .linearHistogram:
      asm.emit(.load(.double, .r1, .r0, offset: 0))
      asm.emit(.add(.r1, 1))
      asm.emit(.store(.double, .r0, offset: 0, .r1))
    case .sum:
      asm.emit(.load(.double, .r1, valueSlot.base, offset: valueSlot.offset))
      asm.emit(.load(.double, .r2, .r0, offset: 0))
      asm.emit(.add(.r2, .r1))
      asm.emit(.store(.double, .r0, offset: 0, .r2))
    case .average, .stats:
      asm.emit(.load(.double, .r1, .r0, offset: 0))
      asm.emit(.add(.r1, 1))
      asm.emit(.store(.double, .r0, offset: 0, .r1))
      asm.emit(.load(.double, .r1, valueSlot.base, offset: valueSlot.offset))
      asm.emit(.load(.double, .r2, .r0, offset: 8))
      asm.emit(.add(.r2, .r1))
      asm.emit(.store(.double, .r0, offset: 8, .r2))
    case .minimum, .maximum:
      // (value, present): replace when nothing is there yet (a slot zero-filled when another
      // CPU created the entry) or the new value wins.
      let replace = asm.newLabel()
      asm.emit(.load(.double, .r1, valueSlot.base, offset: valueSlot.offset))
      asm.emit(.load(.double, .r2, .r0, offset: 8))
      asm.jump(if: .eq, .r2, .immediate(0), to: replace)
      asm.emit(.load(.double, .r2, .r0, offset: 0))
      let signed = declaration.valueType.isSigned
      let keep: JumpCondition =
        declaration.aggregation == .minimum ? (signed ? .sge : .ge) : (signed ? .sle : .le)
      asm.jump(if: keep, .r1, .register(.r2), to: end)
      asm.bind(replace)
      asm.emit(.store(.double, .r0, offset: 0, .r1))
      asm.emit(.storeImmediate(.double, .r0, offset: 8, 1))
    case .value:
      break
    }
    asm.bind(end)
  }

  /// `bpf_map_update_elem(map, &key, &value, BPF_ANY)`; r0 is its result.
  mutating func update(_ map: Int, key: Slot, value: Slot) {
    asm.emit(.loadMapFD(.r1, fd: mapFD(map)))
    pointer(to: key, in: .r2)
    pointer(to: value, in: .r3)
    asm.emit(.mov(.r4, Self.updateAny))
    asm.emit(.call(helper: HelperFunction.mapUpdateElement.rawValue))
  }

  /// `@c = count()`, `@h = hist(x)`, `@l = lhist(...)` on a per-CPU array: the key is the
  /// bucket (0 for a count), the entry always exists, and the kernel inlines the lookup.
  mutating func directMapUpdate(_ map: Int, value: TypedExpr?) throws(CodeGenError) {
    let declaration = maps[map]
    let key = frame.allocate(4)
    switch declaration.aggregation {
    case .histogram, .linearHistogram:
      guard let value else { throw CodeGenError(message: "a histogram needs a value", range: declaration.range) }
      let temp = try bucketIndex(declaration, value: try emit(value))
      asm.emit(.store(.word, key.base, offset: key.offset, temps.use(temp, &frame, &asm)))
      temps.free(temp, &frame)
    default:
      asm.emit(.storeImmediate(.word, key.base, offset: key.offset, 0))
    }
    temps.spillAll(&frame, &asm)
    let end = asm.newLabel()
    lookup(map, key: key)
    // Never taken: every bucket index is inside the array. The verifier wants the check.
    asm.jump(if: .eq, .r0, .immediate(0), to: end)
    asm.emit(.load(.double, .r1, .r0, offset: 0))
    asm.emit(.add(.r1, 1))
    asm.emit(.store(.double, .r0, offset: 0, .r1))
    asm.bind(end)
  }

  /// `delete(@map[keys])`. A histogram keeps one entry per bucket, its index the last 8
  /// bytes of the key: each bucket's entry is deleted (no loops, so one call per bucket).
  mutating func mapDelete(_ map: Int, keys: [TypedExpr]) throws(CodeGenError) {
    let key = try buildKey(map, keys)
    temps.spillAll(&frame, &asm)
    let declaration = maps[map]
    var buckets: [Int64?] = [nil]
    switch declaration.aggregation {
    case .histogram: buckets = (0..<66).map { $0 }
    case .linearHistogram(let low, let high, let step):
      buckets = (0...(Buckets.linearCount(min: low, max: high, step: step) + 1)).map { $0 }
    default: break
    }
    let bucket = key.advanced(by: MapLayout.keySize(declaration) - 8)
    for index in buckets {
      if let index {
        asm.emit(.storeImmediate(.double, bucket.base, offset: bucket.offset, Int32(truncatingIfNeeded: index)))
      }
      asm.emit(.loadMapFD(.r1, fd: mapFD(map)))
      pointer(to: key, in: .r2)
      asm.emit(.call(helper: HelperFunction.mapDeleteElement.rawValue))
    }
  }

  /// The value of `@map[keys]` wider than a register (a string), `size` bytes of it copied to
  /// `destination`; zeros when the map has no such entry.
  mutating func copyMapValue(_ map: Int, keys: [TypedExpr], to destination: Slot, size: Int) throws(CodeGenError) {
    let key = try buildKey(map, keys)
    temps.spillAll(&frame, &asm)
    lookup(map, key: key)
    let missing = asm.newLabel()
    let end = asm.newLabel()
    asm.jump(if: .eq, .r0, .immediate(0), to: missing)
    let available = min(size, MapLayout.valueSize(maps[map]))
    var position = 0
    while position < available {
      let width = [8, 4, 2, 1].first { position + $0 <= available }!
      let access = AccessSize(bytes: width)!
      asm.emit(.load(access, .r1, .r0, offset: Int16(position)))
      asm.emit(.store(access, at: destination + position, .r1))
      position += width
    }
    if available < size { storeBytes([], size: size - available, into: destination + available) }
    asm.jump(to: end)
    asm.bind(missing)
    storeBytes([], size: size, into: destination)
    asm.bind(end)
  }

  /// `@map[keys]` in an expression: the stored value, or 0.
  mutating func mapLookupValue(_ map: Int, keys: [TypedExpr]) throws(CodeGenError) -> Temp {
    let key: Slot
    if directlyIndexedMaps.contains(map) {
      // A key-less count: entry 0 of its array.
      key = frame.allocate(4)
      asm.emit(.storeImmediate(.word, key.base, offset: key.offset, 0))
    } else {
      key = try buildKey(map, keys)
    }
    temps.spillAll(&frame, &asm)
    let result = frame.allocate(8)
    asm.emit(.storeImmediate(.double, result.base, offset: result.offset, 0))
    lookup(map, key: key)
    let missing = asm.newLabel()
    asm.jump(if: .eq, .r0, .immediate(0), to: missing)
    asm.emit(.load(.double, .r1, .r0, offset: 0))
    asm.emit(.store(.double, result.base, offset: result.offset, .r1))
    asm.bind(missing)
    let (temp, register) = temps.allocate(&frame, &asm)
    asm.emit(.load(.double, register, result.base, offset: result.offset))
    frame.release(result)
    return temp
  }

  /// The histogram bucket of `valueTemp` (which it consumes), as `Buckets` defines it: a
  /// binary search over bit positions, without loops; values narrower than 64 bits skip the
  /// steps above their width.
  mutating func bucketIndex(_ declaration: MapDeclaration, value valueTemp: Temp) throws(CodeGenError) -> Temp {
    let (temp, index) = temps.allocate(&frame, &asm)
    let value = temps.use(valueTemp, &frame, &asm)
    let done = asm.newLabel()
    let signed = declaration.valueType.isSigned
    switch declaration.aggregation {
    case .linearHistogram(let low, let high, let step):
      let count = Buckets.linearCount(min: low, max: high, step: step)
      asm.emit(.mov(index, 0))
      try compareConstant(value, .slt, low, to: done)
      asm.emit(.mov(index, Int32(count + 1)))
      try compareConstant(value, .sge, high, to: done)
      asm.emit(.mov(index, value))
      // 1 + (value - low) / step as (value - (low - step)) / step: one subtraction instead of
      // a subtraction and an add, unless low - step or the largest dividend overflows. The
      // dividend is positive here, so a power-of-two step is a shift (a divide is far slower).
      let (start, startOverflows) = low.subtractingReportingOverflow(step)
      let (span, spanOverflows) = high.subtractingReportingOverflow(start)
      let folded = !startOverflows && !spanOverflows && span > 0
      if (folded ? start : low) != 0 { try subtractConstant(index, folded ? start : low) }
      if step > 1, step.nonzeroBitCount == 1 {
        asm.emit(.alu64(.rsh, index, .immediate(Int32(step.trailingZeroBitCount))))
      } else if step > 1, let small = Int32(exactly: step) {
        asm.emit(.alu64(.div, index, .immediate(small)))
      } else if step > 1 {
        let (temp, divisor) = temps.allocate(&frame, &asm)
        asm.emit(.loadImmediate64(divisor, UInt64(bitPattern: step)))
        asm.emit(.alu64(.div, index, .register(divisor)))
        temps.free(temp, &frame)
      }
      if !folded { asm.emit(.add(index, 1)) }
    default:
      if signed {
        asm.emit(.mov(index, 0))
        asm.jump(if: .slt, value, .immediate(0), to: done)
      }
      asm.emit(.mov(index, 1))
      asm.jump(if: .eq, value, .immediate(0), to: done)
      // index = 2 + floor(log2(value)), halving the bit range that holds the top set bit.
      asm.emit(.mov(index, 2))
      var width = 64
      if let representation = declaration.valueType.integerRepresentation, !representation.isSigned {
        width = 8 * representation.bytes
      }
      for bits in [32, 16, 8, 4, 2] as [Int32] where Int(bits) < width {
        let skip = asm.newLabel()
        if bits < 31 {
          // value is at least 1 here, so an unsigned compare with 2^bits says whether the
          // top bit is at or above `bits`.
          asm.jump(if: .lt, value, .immediate(1 << bits), to: skip)
          asm.emit(.alu64(.rsh, value, .immediate(bits)))
        } else {
          // 2^32 is no 32-bit immediate: shift a copy and test it.
          let (scratchTemp, scratch) = temps.allocate(&frame, &asm)
          asm.emit(.mov(scratch, value))
          asm.emit(.alu64(.rsh, scratch, .immediate(bits)))
          asm.jump(if: .eq, scratch, .immediate(0), to: skip)
          asm.emit(.mov(value, scratch))
          temps.free(scratchTemp, &frame)
        }
        asm.emit(.add(index, bits))
        asm.bind(skip)
      }
      // value is now 1, 2 or 3: the last step adds value >> 1, without a branch.
      asm.emit(.alu64(.rsh, value, .immediate(1)))
      asm.emit(.add(index, value))
    }
    asm.bind(done)
    temps.free(valueTemp, &frame)
    return temp
  }

  mutating func compareConstant(_ register: Register, _ condition: JumpCondition, _ constant: Int64, to label: Label)
    throws(CodeGenError)
  {
    if let small = Int32(exactly: constant) {
      asm.jump(if: condition, register, .immediate(small), to: label)
    } else {
      let (temp, scratch) = temps.allocate(&frame, &asm)
      asm.emit(.loadImmediate64(scratch, UInt64(bitPattern: constant)))
      asm.jump(if: condition, register, .register(scratch), to: label)
      temps.free(temp, &frame)
    }
  }

  mutating func subtractConstant(_ register: Register, _ constant: Int64) throws(CodeGenError) {
    if let small = Int32(exactly: constant) {
      asm.emit(.alu64(.sub, register, .immediate(small)))
    } else {
      let (temp, scratch) = temps.allocate(&frame, &asm)
      asm.emit(.loadImmediate64(scratch, UInt64(bitPattern: constant)))
      asm.emit(.alu64(.sub, register, .register(scratch)))
      temps.free(temp, &frame)
    }
  }
}
