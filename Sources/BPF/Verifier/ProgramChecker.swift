/// Path-sensitive abstract interpretation, in the manner of the kernel verifier: each path is
/// followed from the entry with its own state, in the kernel's order, and a path stops where
/// the kernel would find its state equivalent to one it checked before (see `explore`).
final class ProgramChecker {
  /// The kernel's limit on program length.
  static let maximumSlots = 1_000_000
  /// Stop after this many distinct problems: later ones are usually consequences.
  static let maximumRejections = 20
  /// The kernel's bound on offsets added to pointers (`BPF_MAX_VAR_OFF`).
  static let maximumPointerOffset = 1 << 29

  let program: Program
  let context: ProgramContext
  let maps: [MapDescription]
  /// Layouts of the kernel objects behind tracing arguments, where known.
  let kernelObjects: [Int: KernelObjectLayout]
  var rejections: [VerifierRejection] = []
  private var reported: Set<Problem> = []
  private var nextID = 1
  /// What each memory instruction accessed on the paths followed so far.
  private var accessedKinds: [Int: AccessedKind] = [:]
  /// Set once the program's shape is known (`run`).
  var flow: ControlFlow!
  var pruneKinds: [PruneKinds] = []
  var relevance: StateRelevance!
  /// Instructions processed the way the kernel counts them (`insn_processed`).
  var processedInstructions = 0
  /// Set when the program is refused for the kernel's verification cost.
  var exceededComplexity = false
  /// How numbers and stack slots were computed, numbered (see `Origin`).
  private var derivations: [Derivation: Int] = [:]
  private(set) var derivationList: [Derivation] = []

  init(program: Program, context: ProgramContext, maps: [MapDescription], kernelObjects: [Int: KernelObjectLayout] = [:]) {
    self.program = program
    self.context = context
    self.maps = maps
    self.kernelObjects = kernelObjects
  }

  func run() -> [VerifierRejection] {
    let instructions = program.instructions
    guard !instructions.isEmpty else {
      return [VerifierRejection(instructionIndex: 0, message: "the program has no instructions",
        hint: "end the program with r0 = 0; exit")]
    }
    guard program.slotCount <= Self.maximumSlots else {
      return [VerifierRejection(instructionIndex: 0,
        message: "the program has \(program.slotCount) instructions; the kernel accepts at most \(Self.maximumSlots)",
        hint: "split the probe into smaller programs")]
    }
    flow = ControlFlow(instructions)
    for (index, problem) in flow.problems { report(problem, at: index) }
    for index in instructions.indices {
      if let problem = Self.encodingProblem(instructions[index]) { report(problem, at: index) }
    }
    guard rejections.isEmpty else { return sorted() }
    pruneKinds = PruneKinds.of(instructions, flow: flow)
    explore()
    return sorted()
  }

  private func sorted() -> [VerifierRejection] {
    rejections.sorted { ($0.instructionIndex, $0.message) < ($1.instructionIndex, $1.message) }
  }

  func report(_ problem: Problem, at index: Int) {
    // The same problem reached along several paths is reported once.
    var key = problem
    key.message = "\(index):" + key.message
    guard reported.insert(key).inserted else { return }
    let tag = index < program.sourceTags.count ? program.sourceTags[index] : nil
    rejections.append(
      VerifierRejection(
        instructionIndex: index, slot: flow?.slotOfIndex[index] ?? index, sourceTag: tag,
        message: problem.message, hint: problem.hint))
  }

  private func freshID() -> Int {
    defer { nextID += 1 }
    return nextID
  }

  // MARK: - Origins

  /// How a number or the contents of a stack slot came about, in the terms that decide what
  /// the kernel knows about it.
  enum Derivation: Hashable {
    case operation(ALUOperation, is64: Bool, Origin, Origin?)
    /// A number on one side of a comparison the kernel did not decide.
    case narrowed(Origin, JumpCondition, is64: Bool, Origin, taken: Bool)
    /// Bytes read from a stack slot with history `slot` that held no whole register.
    case fill(slot: Int, offset: Int, size: Int)
    /// A number of its own: a helper's result, a value after a 32-bit comparison.
    case unique(Int)
    /// A stack slot's contents: a whole register stored, or `size` bytes at `offset` over
    /// what the slot held before.
    case spill(SlotContents)
    case partial(previous: Int, offset: Int, size: Int, SlotContents)
    /// All 8 bytes written by a helper.
    case helperWritten
  }

  /// What was written to a stack slot: a number (by origin, or for a slot's shape only
  /// whether it was 0), a pointer, or bytes from a helper.
  enum SlotContents: Hashable {
    case number(Origin?)
    case zero
    case pointer(Pointer)
    case helperBytes
    case other
  }

  func derived(_ derivation: Derivation) -> Int {
    if let id = derivations[derivation] { return id }
    derivationList.append(derivation)
    // 0 stands for a slot never written.
    let id = derivationList.count
    derivations[derivation] = id
    return id
  }

  /// The origin of a number with `bounds` produced by `derivation`: a known number is known
  /// to the kernel whatever produced it.
  func origin(_ bounds: ScalarBounds, _ derivation: @autoclosure () -> Derivation) -> Origin {
    if let constant = bounds.constant { return .constant(constant) }
    return .derived(derived(derivation()))
  }

  /// A number with a new origin of its own.
  func uniqueNumber(_ bounds: ScalarBounds) -> Value {
    let id = freshID()
    return .scalar(bounds, link: 0, origin: origin(bounds, .unique(id)))
  }

  /// Records in `state` that `size` bytes at stack offset `offset` now hold `contents`.
  func recordStackWrite(
    _ state: inout AbstractState, offset: Int, size: Int, contents: SlotContents, shape: SlotContents
  ) {
    for slot in StateRelevance.slotIndices(from: offset, size: size) {
      let slotStart = -8 * (slot + 1)
      let start = max(offset, slotStart)
      let end = min(offset + size, slotStart + 8)
      if start == slotStart, end == slotStart + 8 {
        // The whole slot: what it held before no longer matters.
        if contents == .helperBytes {
          state.stackHistories[slot] = derived(.helperWritten)
          state.stackShapes[slot] = derived(.helperWritten)
        } else {
          state.stackHistories[slot] = derived(.spill(contents))
          state.stackShapes[slot] = derived(.spill(shape))
        }
      } else {
        state.stackHistories[slot] = derived(
          .partial(previous: state.stackHistories[slot], offset: start - slotStart, size: end - start, contents))
        state.stackShapes[slot] = derived(
          .partial(previous: state.stackShapes[slot], offset: start - slotStart, size: end - start, shape))
      }
    }
  }

  /// Executes one instruction abstractly; returns the states at each possible successor.
  func step(
    _ index: Int, _ incoming: AbstractState
  ) throws(Problem) -> [(index: Int, state: AbstractState)] {
    var state = incoming
    let instruction = program.instructions[index]
    switch instruction {
    case .alu64(let op, let dst, let operand), .alu32(let op, let dst, let operand):
      let is64 = if case .alu64 = instruction { true } else { false }
      if (op == .and || op == .or), forksOnSign(dst, operand, is64: is64, state) {
        // Newer kernels split a number that is -1 or 0 before `&` or `|` with a constant
        // (maybe_fork_scalars): the path goes on with -1, and the same instruction is
        // checked again later with 0.
        var minusOne = state
        minusOne[dst] = .constant(is64 ? UInt64.max : UInt64(UInt32.max))
        try arithmetic(op, dst, operand, is64: is64, &minusOne)
        var zero = state
        zero[dst] = .constant(0)
        return [(index + 1, minusOne), (index, zero)]
      }
      try arithmetic(op, dst, operand, is64: is64, &state)
    case .endian(_, let dst, _):
      try requireWritable(dst)
      guard case .scalar(_, _, let origin) = try read(dst, state) else {
        throw Problem("swaps the bytes of a pointer in \(dst)", hint: "only numbers can be byte-swapped")
      }
      // The kernel does not follow byte swaps: the result is any number.
      if case .endian(let order, _, let bits) = instruction {
        let derivation = Derivation.operation(order == .big ? .xor : .or, is64: bits == 64, origin, .constant(UInt64(bits)))
        state[dst] = .scalar(.unknown, link: 0, origin: self.origin(.unknown, derivation))
      }
    case .loadImmediate64(let dst, let value):
      try requireWritable(dst)
      state[dst] = .constant(value)
    case .loadMapFD(let dst, let fd):
      try requireWritable(dst)
      state[dst] = .pointer(Pointer(.mapHandle(try mapIndex(fd))))
    case .loadMapValue(let dst, let fd, let offset):
      try requireWritable(dst)
      let map = try mapIndex(fd)
      let description = maps[map]
      guard description.kind == .array, description.maxEntries == 1 else {
        throw Problem(
          "takes the address of a value of map '\(description.name)' directly, which only works for array maps with one entry",
          hint: "look the value up with bpf_map_lookup_elem instead")
      }
      guard offset >= 0, Int(offset) < description.valueSize else {
        throw Problem(
          "takes the address of offset \(offset) in the value of map '\(description.name)', which is \(description.valueSize) bytes long",
          hint: "use an offset inside the value")
      }
      state[dst] = .pointer(Pointer(.mapValue(map: map), fixed: Int(offset)))
    case .loadBTFID:
      throw Problem(
        "loads the address of a kernel variable by BTF id, which the pre-check does not support",
        hint: "read kernel variables with bpf_probe_read_kernel")
    case .load(let size, let dst, let src, let offset):
      try requireWritable(dst)
      if let pointer = state[src].pointer { try recordAccess(pointer.base, at: index) }
      let value = try load(size.bytes, from: src, offset: Int(offset), &state)
      state[dst] = value
    case .store(let size, let dst, let offset, let src):
      let value = try read(src, state)
      if let pointer = state[dst].pointer { try recordAccess(pointer.base, at: index) }
      try store(value, size: size.bytes, to: dst, offset: Int(offset), &state)
    case .storeImmediate(let size, let dst, let offset, let immediate):
      if let pointer = state[dst].pointer { try recordAccess(pointer.base, at: index) }
      try store(
        .constant(UInt64(bitPattern: Int64(immediate))), size: size.bytes, to: dst, offset: Int(offset),
        &state)
    case .atomic(let op, let size, let dst, let offset, let src):
      if let pointer = state[dst].pointer { try recordAccess(pointer.base, at: index) }
      try atomic(op, size.bytes, dst, Int(offset), src, &state)
    case .jump(let offset):
      return [(flow.target(of: index, offset: offset), state)]
    case .jumpIf(let condition, let dst, let operand, let offset):
      return try conditionalJump(index, condition, dst, operand, offset, is64: true, state)
    case .jumpIf32(let condition, let dst, let operand, let offset):
      return try conditionalJump(index, condition, dst, operand, offset, is64: false, state)
    case .call(let helperID):
      try call(helperID, at: index, &state)
    case .callKernelFunction:
      throw Problem(
        "calls a kernel function (kfunc), which the pre-check does not support",
        hint: "use a BPF helper instead")
    case .callLocal:
      throw Problem(
        "calls a BPF subprogram, which the pre-check does not support",
        hint: "inline the subprogram")
    case .exit:
      try exit(index, state)
      return []
    }
    return [(index + 1, state)]
  }

  // MARK: - Pointer kinds per instruction

  /// The kernel records the pointer type each load and store uses and refuses an
  /// instruction used with the context or a kernel pointer on one path and anything else on
  /// another, because it rewrites such accesses differently.
  private enum AccessedKind: Equatable {
    case context, kernel, other

    init(_ base: PointerBase) {
      switch base {
      case .context: self = .context
      case .kernel: self = .kernel
      default: self = .other
      }
    }

    var name: String {
      switch self {
      case .context: "the context"
      case .kernel: "a kernel pointer"
      case .other: "the stack or a map value"
      }
    }
  }

  private func recordAccess(_ base: PointerBase, at index: Int) throws(Problem) {
    let kind = AccessedKind(base)
    guard let previous = accessedKinds[index] else {
      accessedKinds[index] = kind
      return
    }
    guard previous == kind else {
      throw Problem(
        "accesses memory through \(kind.name) on one path and through \(previous.name) on another; the kernel needs each load or store to use one kind of pointer",
        hint: "use separate instructions for the context, kernel pointers and other memory")
    }
  }

  // MARK: - Registers

  private func requireWritable(_ register: Register) throws(Problem) {
    guard register != .fp else {
      throw Problem(
        "writes to r10, the frame pointer, which is read-only",
        hint: "copy r10 to another register and change that one")
    }
  }

  /// The value of `register`, which must have been set (and not released).
  private func read(_ register: Register, _ state: AbstractState) throws(Problem) -> Value {
    let value = state[register]
    switch value {
    case .uninitialized:
      throw Problem(
        "reads \(register) before anything was stored in it",
        hint: register.index >= 1 && register.index <= 5
          ? "helper calls clobber r1-r5: keep values needed after a call in r6-r9 or on the stack"
          : "set \(register) on every path before using it")
    case .released:
      throw Problem(
        "uses ring buffer memory in \(register) after it was submitted or discarded",
        hint: "write the whole record before calling bpf_ringbuf_submit")
    default:
      return value
    }
  }

  private func mapIndex(_ fd: Int32) throws(Problem) -> Int {
    guard fd >= 0, Int(fd) < maps.count else {
      throw Problem(
        "refers to map index \(fd), but only \(maps.count) map\(maps.count == 1 ? " is" : "s are") described",
        hint: "pass every map the program uses to the pre-check")
    }
    return Int(fd)
  }

  private func describe(_ value: Value) -> String {
    switch value {
    case .uninitialized: return "nothing"
    case .released: return "released ring buffer memory"
    case .scalar(let bounds, _, _):
      return bounds.constant == 0 ? "the number 0 (a null pointer)" : "a number, not a pointer"
    case .pointer(let pointer): return describe(pointer)
    }
  }

  /// Like `describe`, but numbers are shown with what is known about them.
  private func describeArgument(_ value: Value) -> String {
    guard case .scalar(let bounds, _, _) = value else { return describe(value) }
    if let constant = bounds.constant { return "the number \(Int64(bitPattern: constant))" }
    return bounds.isUnknown ? "a number that is not a known constant" : "a number in \(bounds)"
  }

  private func describe(_ pointer: Pointer) -> String {
    switch pointer.base {
    case .context: return "the context pointer"
    case .stack: return "a stack pointer"
    case .mapHandle(let map): return "the handle of map '\(maps[map].name)'"
    case .mapValue(let map):
      return pointer.mayBeNull
        ? "the result of a lookup in map '\(maps[map].name)', which may be null"
        : "a pointer into a value of map '\(maps[map].name)'"
    case .ringBuffer:
      return pointer.mayBeNull
        ? "the result of a ring buffer reservation, which may be null"
        : "ring buffer memory"
    case .kernel:
      return pointer.mayBeNull ? "a kernel pointer that may be null" : "a kernel pointer"
    }
  }

  // MARK: - Arithmetic

  private func arithmetic(
    _ op: ALUOperation, _ dst: Register, _ operand: Operand, is64: Bool, _ state: inout AbstractState
  ) throws(Problem) {
    try requireWritable(dst)
    let width = is64 ? 64 : 32
    if op == .mov {
      switch operand {
      case .immediate(let immediate):
        state[dst] = .constant(
          is64 ? UInt64(bitPattern: Int64(immediate)) : UInt64(UInt32(bitPattern: immediate)))
      case .register(let src):
        let value = state[src] == .released ? Value.released : try read(src, state)
        if !is64 {
          guard case .scalar(let bounds, _, let origin) = value else {
            throw Problem(
              "copies only the low 32 bits of \(describe(value)) in \(src)",
              hint: "copy pointers with 64-bit moves (r = r), not 32-bit ones (w = w)")
          }
          let low = bounds.low32
          state[dst] = .scalar(low, link: 0, origin: self.origin(low, .operation(.mov, is64: false, origin, nil)))
        } else if case .scalar(let bounds, let link, let origin) = value, bounds.constant == nil {
          // Copies of an unknown number are linked, so a later comparison narrows both.
          let shared = link == 0 ? freshID() : link
          state[src] = .scalar(bounds, link: shared, origin: origin)
          state[dst] = .scalar(bounds, link: shared, origin: origin)
        } else {
          state[dst] = value
        }
      }
      return
    }
    if op == .neg {
      guard operand == .immediate(0) else {
        throw Problem(
          "encodes neg with an operand; the kernel requires the operand fields to be zero",
          hint: "emit neg as .alu64(.neg, dst, .immediate(0))")
      }
      guard case .scalar(_, _, let origin) = try read(dst, state) else {
        throw Problem("negates \(describe(state[dst])) in \(dst)", hint: "only numbers can be negated")
      }
      // The pre-check does not follow negation: the result is any number.
      state[dst] = .scalar(.unknown, link: 0, origin: self.origin(.unknown, .operation(.neg, is64: is64, origin, nil)))
      return
    }
    let target = try read(dst, state)
    let source: Value
    switch operand {
    case .immediate(let immediate):
      // Immediates are sign-extended to 64 bits; 32-bit operations use the low half.
      source = .constant(UInt64(bitPattern: Int64(immediate)))
    case .register(let src):
      source = try read(src, state)
    }
    switch (target, source) {
    case (.scalar(let a, _, let x), .scalar(let b, _, let y)):
      let result = ScalarBounds.compute(op, a, b, is64: is64)
      state[dst] = .scalar(result, link: 0, origin: origin(result, .operation(op, is64: is64, x, y)))
    case (.pointer(let pointer), .scalar(let b, _, _)):
      guard is64 else {
        throw Problem(
          "does 32-bit arithmetic on \(describe(pointer)) in \(dst)",
          hint: "use 64-bit arithmetic (r += ...) on pointers")
      }
      guard op == .add || op == .sub else {
        throw Problem(
          "applies \(Self.operatorName(op)) to \(describe(pointer)) in \(dst); only adding and subtracting numbers is allowed on pointers",
          hint: "compute offsets as numbers first and add the result to the pointer")
      }
      state[dst] = .pointer(try move(pointer, in: dst, by: b, subtracting: op == .sub))
    case (.scalar(let a, _, _), .pointer(let pointer)) where op == .add && is64:
      state[dst] = .pointer(try move(pointer, in: dst, by: a, subtracting: false))
    default:
      let pointerValue = target.pointer != nil ? target : source
      throw Problem(
        "combines \(describe(pointerValue)) with \(op == .sub ? "another pointer" : "a \(width)-bit \(Self.operatorName(op))") in \(dst)",
        hint: "the only arithmetic allowed on pointers is adding or subtracting a number")
    }
  }

  /// Whether the kernel may split the number in `dst` into -1 and 0 before `&` or `|` with
  /// the constant `operand`: it does when its bounds are exactly -1...0, which the pre-check's
  /// own bounds show, or may know where they are wider, after an arithmetic right shift.
  private func forksOnSign(_ dst: Register, _ operand: Operand, is64: Bool, _ state: AbstractState) -> Bool {
    guard case .scalar(let bounds, _, let origin) = state[dst], bounds.constant == nil else { return false }
    switch operand {
    case .immediate: break
    case .register(let src):
      guard state[src].bounds?.constant != nil else { return false }
    }
    if is64, bounds.smin == -1, bounds.smax == 0 { return true }
    // A 32-bit operation looks at the low half's signed bounds, which are not followed here:
    // any value whose low half may be negative may be split.
    if !is64 { return bounds.umax > 0x7fff_ffff }
    guard bounds.smin < 0, bounds.smax >= 0, case .derived(let id) = origin, id > 0, id <= derivationList.count,
      case .operation(.arsh, _, _, _) = derivationList[id - 1]
    else { return false }
    return true
  }

  private static func operatorName(_ op: ALUOperation) -> String {
    switch op {
    case .add: "addition"
    case .sub: "subtraction"
    case .mul: "multiplication"
    case .div: "division"
    case .or: "bitwise or"
    case .and: "bitwise and"
    case .lsh: "left shift"
    case .rsh: "right shift"
    case .neg: "negation"
    case .mod: "remainder"
    case .xor: "exclusive or"
    case .mov: "move"
    case .arsh: "arithmetic right shift"
    }
  }

  /// `pointer ± bounds`, within the kernel's rules for pointer arithmetic.
  private func move(
    _ pointer: Pointer, in register: Register, by bounds: ScalarBounds, subtracting: Bool
  ) throws(Problem) -> Pointer {
    if pointer.mayBeNull {
      throw Problem(
        "does arithmetic on \(describe(pointer)) in \(register) before checking that it is not null",
        hint: "compare it with 0 first and only use it where it is not 0")
    }
    switch pointer.base {
    case .mapHandle:
      throw Problem(
        "does arithmetic on \(describe(pointer)) in \(register)",
        hint: "a map handle can only be passed to map helpers")
    case .stack where subtracting:
      throw Problem(
        "subtracts from a stack pointer in \(register); the kernel only allows adding to stack pointers",
        hint: "add a negative number instead (r += -8)")
    case .kernel where bounds.constant == nil:
      throw Problem(
        "adds a variable number to \(describe(pointer)) in \(register); kernel pointers can only move by constants",
        hint: "read through a variable offset with bpf_probe_read_kernel")
    default:
      break
    }
    let limit = Int64(Self.maximumPointerOffset)
    guard bounds.smin > -limit, bounds.smax < limit else {
      throw Problem(
        "adds a number that is not known to be small (\(bounds)) to \(describe(pointer)) in \(register)",
        hint: "bound the number first, for example: if r2 > 255 goto skip")
    }
    var moved = pointer
    if let constant = bounds.constant {
      // Known numbers move the constant part of the offset, as in the kernel.
      let delta = Int(Int64(bitPattern: constant))
      moved.fixed += subtracting ? -delta : delta
    } else {
      // Unknown ones add to the variable part, with the kernel's overflow rules: subtracting
      // an unknown number leaves an offset that may wrap around, so no access is possible.
      moved.variable = ScalarBounds.compute(subtracting ? .sub : .add, pointer.variable, bounds, is64: true)
    }
    guard abs(moved.fixed) < Self.maximumPointerOffset, moved.variable.smin > -limit else {
      throw Problem(
        "moves \(describe(pointer)) in \(register) too far (offset \(moved.offsetDescription))",
        hint: "keep pointer offsets small")
    }
    return moved
  }

  // MARK: - Memory

  private static func stackText(_ offset: Int) -> String { offset < 0 ? "fp\(offset)" : "fp+\(offset)" }

  /// Checks that `size` bytes at `offset` from `pointer` lie within a region of `length`
  /// bytes, for every offset the pointer may have, by the kernel's rule: the variable part of
  /// the offset must be known to be non-negative and below 2^29.
  private func checkRegion(
    _ pointer: Pointer, in register: Register, offset: Int, size: Int, length: Int, verb: String,
    object: String
  ) throws(Problem) {
    let variable = pointer.variable
    guard variable.smin >= 0, variable.umax < UInt64(Self.maximumPointerOffset) else {
      throw Problem(
        "\(verb) \(object) through \(register), which was moved by a number that may be negative or huge (\(variable)); the kernel needs variable offsets known to be in 0...\(Self.maximumPointerOffset - 1)",
        hint: "compare the index unsigned before adding it (if r1 > limit goto skip), which also rules out negative values")
    }
    let first = pointer.fixed + offset + Int(variable.smin)
    let last = pointer.fixed + offset + Int(variable.umax) + size
    guard first >= 0, last <= length else {
      let position = first == last - size ? "offset \(first)" : "offsets \(first)...\(last - size)"
      throw Problem(
        "\(verb) \(size) byte\(size == 1 ? "" : "s") at \(position) of \(object), which is \(length) byte\(length == 1 ? "" : "s") long",
        hint: variable == .constant(0)
          ? "keep accesses inside the object"
          : "bound the index so that every possible offset stays inside, for example: if r2 > \(max(0, length - size - pointer.fixed - offset)) goto skip")
    }
  }

  /// Checks a stack access at the constant offset of `pointer` plus `offset`; returns it.
  private func stackOffset(
    _ pointer: Pointer, in register: Register, offset: Int, size: Int, verb: String
  ) throws(Problem) -> Int {
    guard let base = pointer.constantOffset else {
      throw Problem(
        "\(verb) the stack at a variable offset (fp\(pointer.fixed + offset < 0 ? "" : "+")\(pointer.fixed + offset) plus a number in \(pointer.variable))",
        hint: "index stack buffers only with constants; copy variable-indexed data into a map value")
    }
    let start = base + offset
    guard start >= -AbstractState.stackSize, start + size <= 0 else {
      throw Problem(
        "\(verb) \(size) byte\(size == 1 ? "" : "s") at \(Self.stackText(start)), outside the \(AbstractState.stackSize)-byte stack (fp-512 up to fp)",
        hint: "use less stack space or keep large data in a map value")
    }
    guard start % size == 0 else {
      throw Problem(
        "\(verb) \(size) bytes at \(Self.stackText(start)), which is not a multiple of \(size); the kernel requires aligned stack accesses",
        hint: "align stack slots to their size")
    }
    return start
  }

  private func load(
    _ size: Int, from register: Register, offset: Int, _ state: inout AbstractState
  ) throws(Problem) -> Value {
    let base = try read(register, state)
    guard case .pointer(let pointer) = base else {
      throw Problem(
        "reads memory through \(register), which holds \(describe(base))",
        hint: "read kernel memory that is not the context, the stack or a map value with bpf_probe_read_kernel")
    }
    switch pointer.base {
    case .context:
      guard pointer.isUnmoved else {
        throw Problem(
          "reads the context through a pointer moved by \(pointer.offsetDescription); the kernel only allows reads at fixed offsets from r1 as it was at entry",
          hint: "put the field offset into the load instruction instead of adding it to the pointer")
      }
      return try loadContext(size, offset: offset)
    case .stack:
      let start = try stackOffset(pointer, in: register, offset: offset, size: size, verb: "reads")
      if let unset = state.firstUninitializedStackByte(offset: start, size: size) {
        throw Problem(
          "reads the stack at \(Self.stackText(unset)) before anything was written there",
          hint: "store a value in every stack byte before reading it")
      }
      let (slot, byte) = AbstractState.position(ofStackOffset: start)
      if case .spill(let saved) = state.stack[slot] {
        if size == 8 { return saved }
        if case .pointer = saved {
          throw Problem(
            "reads \(size) bytes of \(describe(saved)) saved on the stack at \(Self.stackText(-8 * (slot + 1)))",
            hint: "reload saved pointers with 8-byte loads")
        }
      }
      // What the kernel knows of the bytes depends only on what was written to the slot.
      let bounds = ScalarBounds.fitting(bytes: size)
      return .scalar(
        bounds, link: 0, origin: origin(bounds, .fill(slot: state.stackHistories[slot], offset: byte, size: size)))
    case .mapValue(let map):
      try requireChecked(pointer, register)
      try checkRegion(
        pointer, in: register, offset: offset, size: size, length: maps[map].valueSize, verb: "reads",
        object: "a value of map '\(maps[map].name)'")
      return .loaded(bytes: size)
    case .ringBuffer(let length, _):
      try requireChecked(pointer, register)
      try checkRegion(
        pointer, in: register, offset: offset, size: size, length: length, verb: "reads",
        object: "a \(length)-byte ring buffer reservation")
      return .loaded(bytes: size)
    case .kernel:
      try requireChecked(pointer, register)
      guard let constant = pointer.constantOffset else {
        throw Problem(
          "reads a kernel object through \(register) at a variable offset",
          hint: "kernel pointers can only be read at constant offsets")
      }
      let start = constant + offset
      guard start >= 0 else {
        throw Problem(
          "reads a kernel object at negative offset \(start) through \(register)",
          hint: "kernel pointers can only be read at or after the start of the object")
      }
      // The kernel checks the access against the object's BTF layout (btf_struct_walk); so
      // does the pre-check, where the caller gave the layout (the code generator always does).
      guard case .kernel(let argument) = pointer.base, let layout = kernelObjects[argument] else {
        return .loaded(bytes: size)
      }
      switch layout.access(offset: start, size: size) {
      case .number:
        return .loaded(bytes: size)
      case .pointer:
        // A pointer member read whole: a kernel pointer, which the generated code never
        // asks for (it reads pointers as numbers with bpf_probe_read_kernel).
        throw Problem(
          "reads the pointer member at offset \(start) of \(layout.name) through \(register), which the kernel types as a kernel pointer, not a number",
          hint: "read pointer members with bpf_probe_read_kernel")
      case .refused(let reason):
        throw Problem(
          "reads \(size) bytes at offset \(start) of \(layout.name) through \(register), which the kernel refuses: \(reason)",
          hint: "read whole fields at their BTF offsets; read pointer fields with bpf_probe_read_kernel")
      }
    case .mapHandle:
      throw Problem(
        "reads memory through \(register), which holds \(describe(pointer))",
        hint: "a map handle can only be passed to map helpers")
    }
  }

  private func requireChecked(_ pointer: Pointer, _ register: Register) throws(Problem) {
    guard pointer.mayBeNull else { return }
    switch pointer.base {
    case .mapValue:
      throw Problem(
        "dereferences a map value in \(register) without checking that the lookup found an entry",
        hint: "compare the lookup result with 0 and skip the access when it is 0")
    case .ringBuffer:
      throw Problem(
        "uses the ring buffer reservation in \(register) without checking that it succeeded",
        hint: "compare the reservation with 0 and skip writing the record when it is 0")
    default:
      throw Problem(
        "dereferences \(describe(pointer)) in \(register) without checking it against 0",
        hint: "compare the pointer with 0 first; the kernel marks some arguments as possibly null")
    }
  }

  private func loadContext(_ size: Int, offset: Int) throws(Problem) -> Value {
    switch context {
    case .tracing(let count, let pointers):
      guard offset >= 0, offset % 8 == 0, offset / 8 < count else {
        throw Problem(
          "reads the context at offset \(offset); tracing programs can only read their \(count) argument\(count == 1 ? "" : "s") at offsets 0, 8, ... \(max(0, count - 1) * 8)",
          hint: "read argument i with an 8-byte load at offset 8*i")
      }
      guard size == 8 else {
        throw Problem(
          "reads \(size) bytes of argument \(offset / 8) from the context; arguments are read as 8-byte values",
          hint: "load the whole argument with an 8-byte load, then narrow it")
      }
      if pointers.contains(offset / 8) {
        return .pointer(Pointer(.kernel(argument: offset / 8), mayBeNull: true, nullID: freshID()))
      }
      return .loaded(bytes: 8)
    case .kprobe:
      try checkContextRead(size, offset: offset, length: 168, maximumSize: 8, what: "struct pt_regs")
      return .loaded(bytes: size)
    case .rawTracepoint(let count):
      try checkContextRead(
        size, offset: offset, length: 8 * min(count, 12), maximumSize: 8,
        what: "the \(count) tracepoint argument\(count == 1 ? "" : "s")")
      return .loaded(bytes: size)
    case .tracepointRecord:
      // The kernel keeps the record's first 8 bytes (its common fields) from programs
      // (tp_prog_is_valid_access: off < sizeof(void *) is refused).
      try checkContextRead(
        size, offset: offset, from: 8, length: 2048, maximumSize: 8, what: "the tracepoint's record past its common fields")
      return .loaded(bytes: size)
    case .socketFilter:
      // The u32 fields of struct __sk_buff from `len` through `hash`; later ones are not
      // readable by socket filters.
      try checkContextRead(
        size, offset: offset, length: 0x48, maximumSize: 4, what: "the fields len...hash of struct __sk_buff")
      return .loaded(bytes: size)
    }
  }

  private func checkContextRead(
    _ size: Int, offset: Int, from start: Int = 0, length: Int, maximumSize: Int, what: String
  ) throws(Problem) {
    guard offset >= start, offset + size <= length else {
      throw Problem(
        "reads \(size) bytes of the context at offset \(offset); this program type may only read \(what) (offsets \(start)..<\(length))",
        hint: "check the field offset")
    }
    guard size <= maximumSize, offset % size == 0 else {
      throw Problem(
        "reads \(size) bytes of the context at offset \(offset); context reads must be aligned to their size\(maximumSize < 8 ? " and at most \(maximumSize) bytes" : "")",
        hint: "read whole, aligned fields")
    }
  }

  private func store(
    _ value: Value, size: Int, to register: Register, offset: Int, _ state: inout AbstractState
  ) throws(Problem) {
    let base = try read(register, state)
    guard case .pointer(let pointer) = base else {
      throw Problem(
        "writes memory through \(register), which holds \(describe(base))",
        hint: "only the stack, map values and ring buffer reservations can be written")
    }
    switch pointer.base {
    case .stack:
      let start = try stackOffset(pointer, in: register, offset: offset, size: size, verb: "writes")
      let contents: SlotContents
      switch value {
      case .scalar(_, _, let origin): contents = .number(origin)
      case .pointer(let pointer): contents = .pointer(pointer)
      default: contents = .other
      }
      if size == 8 {
        // A whole register saved keeps its type, so it can be restored. A number about
        // which nothing is known loses its links: the kernel may save it as plain bytes.
        var saved = value
        if case .scalar(let bounds, _, let origin) = value, bounds.isUnknown {
          saved = .scalar(bounds, link: 0, origin: origin)
        }
        state.stack[AbstractState.position(ofStackOffset: start).slot] = .spill(saved)
        recordStackWrite(
          &state, offset: start, size: size, contents: contents, shape: value.bounds != nil ? .number(nil) : contents)
      } else {
        if case .pointer(let saved) = value {
          throw Problem(
            "saves only \(size) bytes of \(describe(saved)) on the stack",
            hint: "save pointers with 8-byte stores")
        }
        state.markStackWritten(offset: start, size: size)
        // At the start of a slot the kernel saves the register, whatever its value; elsewhere
        // it marks the bytes "zero" or "misc" by the value.
        recordStackWrite(
          &state, offset: start, size: size, contents: contents,
          shape: start % 8 != 0 && value.bounds?.constant == 0 ? .zero : .number(nil))
      }
    case .mapValue(let map):
      try requireChecked(pointer, register)
      try checkStoredValue(value, size: size)
      try checkRegion(
        pointer, in: register, offset: offset, size: size, length: maps[map].valueSize, verb: "writes",
        object: "a value of map '\(maps[map].name)'")
    case .ringBuffer(let length, _):
      try requireChecked(pointer, register)
      try checkStoredValue(value, size: size)
      try checkRegion(
        pointer, in: register, offset: offset, size: size, length: length, verb: "writes",
        object: "a \(length)-byte ring buffer reservation")
    case .context:
      throw Problem(
        "writes to the context through \(register); the context is read-only for \(context.programTypeName) programs",
        hint: "copy the data to the stack or a map value and change it there")
    case .kernel:
      throw Problem(
        "writes to kernel memory through \(register); tracing programs may only read kernel objects",
        hint: "copy the data to the stack or a map value and change it there")
    case .mapHandle:
      throw Problem(
        "writes memory through \(register), which holds \(describe(pointer))",
        hint: "update map entries with bpf_map_update_elem")
    }
  }

  /// Values written into maps and ring buffers must be numbers, or the address of a kernel
  /// object (printing one is legitimate; the kernel allows it for root). Storing any other
  /// pointer there is almost certainly a mistake for storing what it points to.
  private func checkStoredValue(_ value: Value, size: Int) throws(Problem) {
    if case .pointer(let pointer) = value, !pointer.base.isKernel || size != 8 {
      throw Problem(
        "stores \(describe(pointer)) into memory outside the stack",
        hint: "store numbers only; copy the pointed-to data instead of the pointer")
    }
  }

  private func atomic(
    _ op: AtomicOperation, _ size: Int, _ register: Register, _ offset: Int, _ src: Register,
    _ state: inout AbstractState
  ) throws(Problem) {
    guard case .scalar = try read(src, state) else {
      throw Problem(
        "uses \(describe(state[src])) in \(src) as the operand of an atomic operation",
        hint: "atomic operations work on numbers")
    }
    if op == .compareExchange {
      guard case .scalar = try read(.r0, state) else {
        throw Problem(
          "compares against \(describe(state[.r0])) in r0 in an atomic compare-exchange",
          hint: "put the expected number in r0")
      }
    }
    let base = try read(register, state)
    guard case .pointer(let pointer) = base else {
      throw Problem(
        "does an atomic operation through \(register), which holds \(describe(base))",
        hint: "atomic operations need a pointer to the stack or a map value")
    }
    switch pointer.base {
    case .stack:
      let start = try stackOffset(pointer, in: register, offset: offset, size: size, verb: "updates")
      if let unset = state.firstUninitializedStackByte(offset: start, size: size) {
        throw Problem(
          "atomically updates the stack at \(Self.stackText(unset)) before anything was written there",
          hint: "initialise the counter before updating it")
      }
      if case .spill(let saved) = state.stack[AbstractState.position(ofStackOffset: start).slot],
        saved.pointer != nil
      {
        throw Problem(
          "does an atomic operation on \(describe(saved)) saved at \(Self.stackText(start))",
          hint: "keep atomic counters in slots that only ever hold numbers")
      }
      state.markStackWritten(offset: start, size: size)
      recordStackWrite(&state, offset: start, size: size, contents: .helperBytes, shape: .helperBytes)
    case .mapValue(let map):
      try requireChecked(pointer, register)
      try checkRegion(
        pointer, in: register, offset: offset, size: size, length: maps[map].valueSize, verb: "updates",
        object: "a value of map '\(maps[map].name)'")
      // Atomic accesses must be aligned on every pointer type.
      guard let constant = pointer.constantOffset, (constant + offset) % size == 0 else {
        throw Problem(
          "does an atomic operation at offset \(pointer.offsetDescription) + \(offset) of a map value, which is not known to be a multiple of \(size)",
          hint: "align atomic counters to their size")
      }
    default:
      throw Problem(
        "does an atomic operation on \(describe(pointer)) in \(register); only the stack and map values allow them",
        hint: "keep counters in a map value")
    }
    let result = uniqueNumber(.fitting(bytes: size))
    switch op {
    case .add, .or, .and, .xor:
      break
    case .fetchAdd, .fetchOr, .fetchAnd, .fetchXor, .exchange:
      try requireWritable(src)
      state[src] = result
    case .compareExchange:
      state[.r0] = result
    }
  }

  // MARK: - Jumps

  private func conditionalJump(
    _ index: Int, _ condition: JumpCondition, _ dst: Register, _ operand: Operand, _ offset: Int16,
    is64: Bool, _ state: AbstractState
  ) throws(Problem) -> [(index: Int, state: AbstractState)] {
    let target = flow.target(of: index, offset: offset)
    let next = index + 1
    let left = try read(dst, state)
    let right: Value
    switch operand {
    case .immediate(let immediate): right = .constant(UInt64(bitPattern: Int64(immediate)))
    case .register(let src): right = try read(src, state)
    }

    /// Both ways are possible: on each, the kernel knows something new about the numbers
    /// compared (whether or not the pre-check follows it), so they get new origins.
    func compared(_ notTaken: AbstractState, _ taken: AbstractState) -> [(index: Int, state: AbstractState)] {
      guard case .scalar(_, _, let x) = left, case .scalar(_, _, let y) = right else { return [] }
      var notTaken = notTaken
      var taken = taken
      for (state, outcome) in [(0, false), (1, true)] {
        var updated = state == 0 ? notTaken : taken
        markCompared(dst, condition, is64: is64, against: y, taken: outcome, from: x, &updated)
        if case .register(let src) = operand {
          markCompared(src, condition.swapped, is64: is64, against: x, taken: outcome, from: y, &updated)
        }
        if state == 0 { notTaken = updated } else { taken = updated }
      }
      return [(next, notTaken), (target, taken)]
    }

    switch (left, right) {
    case (.scalar(let a, _, _), .scalar(let b, _, _)) where condition == .set:
      // Decided only for constants. Otherwise the kernel recomputes the bounds of the
      // unknown operands from their known bits on both branches, which can lose what was
      // known before (a lower bound, for instance), so they are forgotten here too.
      let decided =
        is64
        ? b.constant.flatMap { a.decides(.set, $0) }
        : b.constant.flatMap { a.decides32(.set, UInt32(truncatingIfNeeded: $0)) }
      if let decided { return [(decided ? target : next, state)] }
      var forgotten = state
      forgetBounds(dst, &forgotten)
      if case .register(let src) = operand { forgetBounds(src, &forgotten) }
      return compared(forgotten, forgotten)

    case (.scalar(let a, _, _), .scalar(let b, _, _)):
      guard is64 else {
        // 32-bit comparisons are decided only for constants and never narrow bounds: the
        // kernel tracks the low halves separately, which is not modelled here.
        if let c = b.constant, let decided = a.decides32(condition, UInt32(truncatingIfNeeded: c)) {
          return [(decided ? target : next, state)]
        }
        return compared(state, state)
      }
      var taken = state
      var notTaken = state
      var takenPossible = true
      var notTakenPossible = true
      if let c = b.constant {
        takenPossible = narrow(dst, condition, c, &taken)
        notTakenPossible = narrowNegated(dst, condition, c, &notTaken)
      } else if let c = a.constant, case .register(let src) = operand {
        takenPossible = narrow(src, condition.swapped, c, &taken)
        notTakenPossible = narrowNegated(src, condition.swapped, c, &notTaken)
      }
      if notTakenPossible, takenPossible { return compared(notTaken, taken) }
      var successors: [(index: Int, state: AbstractState)] = []
      if notTakenPossible { successors.append((next, notTaken)) }
      if takenPossible { successors.append((target, taken)) }
      return successors

    case (.pointer(let pointer), .scalar(let b, _, _)) where b.constant == 0 && (condition == .eq || condition == .ne):
      guard is64 else {
        throw Problem(
          "compares only the low 32 bits of \(describe(pointer)) in \(dst) with 0",
          hint: "null-check pointers with 64-bit comparisons (if r == 0)")
      }
      if case .register(let src) = operand, pointer.mayBeNull {
        // The kernel recognises null checks only against the immediate 0.
        throw Problem(
          "null-checks \(describe(pointer)) in \(dst) against \(src) instead of the immediate 0",
          hint: "write the check as if \(dst) == 0")
      }
      guard pointer.mayBeNull else {
        // Not null; the kernel may or may not know that, so both ways are checked.
        return [(next, state), (target, state)]
      }
      let isNull = nullCheck(pointer, isNull: true, state)
      let isNotNull = nullCheck(pointer, isNull: false, state)
      return condition == .eq
        ? [(next, isNotNull), (target, isNull)]
        : [(next, isNull), (target, isNotNull)]

    default:
      let pointerValue = left.pointer != nil ? left : right
      throw Problem(
        "compares \(describe(pointerValue)) with something other than the constant 0",
        hint: "pointers can only be tested for null (if r == 0 / if r != 0)")
    }
  }

  /// Gives the number in `register` (which had origin `old`), its linked copies, and the
  /// numbers that are it plus a constant (the kernel links those too), the origins of numbers
  /// on one side of a comparison.
  private func markCompared(
    _ register: Register, _ condition: JumpCondition, is64: Bool, against other: Origin, taken: Bool,
    from old: Origin, _ state: inout AbstractState
  ) {
    guard case .scalar(let bounds, let link, _) = state[register] else { return }
    let new = origin(bounds, .narrowed(old, condition, is64: is64, other, taken: taken))
    var replacements: [Origin: Origin] = [:]
    func noteOffsetCopy(_ value: Value) {
      guard case .scalar(let valueBounds, _, let valueOrigin) = value, case .derived(let id) = valueOrigin,
        id > 0, id <= derivationList.count,
        case .operation(.add, true, old, let addend?) = derivationList[id - 1], case .constant = addend
      else { return }
      replacements[valueOrigin] = origin(valueBounds, .operation(.add, is64: true, new, addend))
    }
    for value in state.registers { noteOffsetCopy(value) }
    for slot in state.stack {
      if case .spill(let value) = slot { noteOffsetCopy(value) }
    }
    state[register] = .scalar(bounds, link: link, origin: new)
    state.updateAllValues { value in
      guard case .scalar(let valueBounds, let valueLink, let valueOrigin) = value else { return value }
      if link != 0, valueLink == link { return .scalar(valueBounds, link: valueLink, origin: new) }
      if let replacement = replacements[valueOrigin] {
        return .scalar(valueBounds, link: valueLink, origin: replacement)
      }
      return value
    }
  }

  /// Makes a non-constant number in `register`, and its linked copies, any number.
  private func forgetBounds(_ register: Register, _ state: inout AbstractState) {
    guard case .scalar(let bounds, let link, let origin) = state[register], bounds.constant == nil else { return }
    if link == 0 {
      state[register] = .scalar(.unknown, link: 0, origin: origin)
    } else {
      state.updateAllValues { value in
        if case .scalar(_, let other, let origin) = value, other == link { return .scalar(.unknown, link: link, origin: origin) }
        return value
      }
    }
  }

  /// Narrows `register` to the values where `register <condition> value`; false when none.
  private func narrow(
    _ register: Register, _ condition: JumpCondition, _ value: UInt64, _ state: inout AbstractState
  ) -> Bool {
    guard case .scalar(let bounds, let link, let origin) = state[register] else { return true }
    guard let narrowed = bounds.assuming(condition, value) else { return false }
    if link == 0 {
      state[register] = .scalar(narrowed, link: 0, origin: origin)
    } else {
      state.updateAllValues { value in
        if case .scalar(_, let other, let origin) = value, other == link {
          return .scalar(narrowed, link: link, origin: origin)
        }
        return value
      }
    }
    return true
  }

  private func narrowNegated(
    _ register: Register, _ condition: JumpCondition, _ value: UInt64, _ state: inout AbstractState
  ) -> Bool {
    guard let negated = condition.negated else {
      // `set` has no interval negation; only a decided outcome removes the branch.
      guard case .scalar(let bounds, _, _) = state[register] else { return true }
      return bounds.decides(.set, value) != true
    }
    return narrow(register, negated, value, &state)
  }

  /// The state on one side of a null check of `pointer`: every copy becomes 0 (and a
  /// failed reservation needs no release), or every copy becomes non-null.
  private func nullCheck(_ pointer: Pointer, isNull: Bool, _ incoming: AbstractState) -> AbstractState {
    var state = incoming
    let id = pointer.nullID
    state.updateAllValues { value in
      guard case .pointer(var copy) = value, copy.mayBeNull, copy.nullID == id else { return value }
      if isNull { return .constant(0) }
      copy.mayBeNull = false
      return .pointer(copy)
    }
    if isNull, let reference = pointer.reference {
      state.references[reference] = nil
    }
    return state
  }

  // MARK: - Calls

  private func call(_ helperID: Int32, at index: Int, _ state: inout AbstractState) throws(Problem) {
    guard let helper = HelperFunction(rawValue: helperID) else {
      throw Problem(
        "calls helper #\(helperID), which the pre-check does not know",
        hint: "add the helper and its argument rules to HelperFunction and the pre-check")
    }
    let signature: HelperSignature
    switch HelperSignature.of(helper, in: context) {
    case .success(let found):
      signature = found
    case .failure(.notForProgramType):
      throw Problem(
        "calls bpf_\(helper.name), which \(context.programTypeName) programs cannot use",
        hint: helper == .probeRead || helper == .probeReadString
          ? "use bpf_probe_read_kernel or bpf_probe_read_user (and their _str forms)"
          : "leave this builtin out of probes of this type")
    case .failure(.needsUnsupportedMap):
      throw Problem(
        "calls bpf_\(helper.name), which needs a kind of map the pre-check does not model",
        hint: "use the ring buffer helpers")
    case .failure(.onlySomeAttachTypes):
      throw Problem(
        "calls bpf_\(helper.name), which the kernel allows in fentry/fexit programs but not in tp_btf ones, and the pre-check cannot tell which this is",
        hint: "use a kprobe to get the function address")
    }

    var map: (index: Int, description: MapDescription)?
    // The memory argument waiting for its size: the register, pointer and whether written.
    var pendingMemory: (register: Register, pointer: Pointer, writes: Bool)?
    var writesAfterCall: [(pointer: Pointer, size: Int)] = []
    var release: Int?
    var allocationSize = 0
    var keyIsConstantEntry = false

    for (position, kind) in signature.arguments.enumerated() {
      let register = Register(UInt8(position + 1))
      let value = try read(register, state)
      let argument = "argument \(position + 1) (\(register)) of bpf_\(helper.name)"
      switch kind {
      case .map(let kinds):
        guard case .pointer(let pointer) = value, case .mapHandle(let index) = pointer.base else {
          throw Problem(
            "passes \(describe(value)) as \(argument), which must be a map",
            hint: "load the map with ld_imm64 right before the call")
        }
        guard kinds.contains(maps[index].kind) else {
          throw Problem(
            "passes map '\(maps[index].name)' (\(maps[index].kind)) as \(argument), which does not accept that kind of map",
            hint: kinds == [.ringBuffer]
              ? "pass the ring buffer map" : "ring buffers only work with the bpf_ringbuf_* helpers")
        }
        map = (index, maps[index])
      case .mapKey, .mapValue:
        // Every signature with a key or value has a map argument first.
        let map = map!.description
        let size = kind == .mapKey ? map.keySize : map.valueSize
        let what = kind == .mapKey ? "key" : "value"
        let pointer = try memoryPointer(value, argument: argument)
        try checkMemory(
          pointer, in: register, size: size, mustBeInitialized: true,
          description: "the \(size)-byte \(what) of map '\(map.name)'", state)
        if kind == .mapKey { keyIsConstantEntry = constantKey(pointer, map, state) }
      case .readableMemory, .writableMemory:
        let pointer = try memoryPointer(value, argument: argument)
        pendingMemory = (register, pointer, kind == .writableMemory)
      case .size:
        guard let memory = pendingMemory else { preconditionFailure("size without memory") }
        pendingMemory = nil
        guard case .scalar(let bounds, _, _) = value else {
          throw Problem(
            "passes \(describe(value)) as the size in \(argument)", hint: "pass the buffer length as a number")
        }
        guard bounds.umin >= 1, bounds.umax < UInt64(Self.maximumPointerOffset) else {
          throw Problem(
            "passes a size that may be \(bounds.umin == 0 ? "0" : "very large") (\(bounds)) as \(argument)",
            hint: "bound the size to 1 or more and at most the buffer length, e.g. if r2 == 0 goto skip; if r2 > 64 goto skip")
        }
        let constantSize = bounds.constant.map(Int.init)
        // With a variable size the kernel cannot tell which bytes the helper writes, so
        // the whole range must already be initialised, as the kernel requires without root.
        try checkMemory(
          memory.pointer, in: memory.register, size: Int(bounds.umax),
          mustBeInitialized: !memory.writes || constantSize == nil,
          description: "the memory in \(memory.register)", state)
        if memory.writes, let constantSize {
          writesAfterCall.append((memory.pointer, constantSize))
        }
      case .constantAllocationSize:
        guard case .scalar(let bounds, _, _) = value, let size = bounds.constant, size > 0,
          size < UInt64(Self.maximumPointerOffset)
        else {
          throw Problem(
            "passes \(describeArgument(value)) as \(argument); the size must be a positive constant",
            hint: "reserve a fixed-size record: mov r2, <size> right before the call")
        }
        allocationSize = Int(size)
      case .zero:
        guard value.bounds?.constant == 0 else {
          throw Problem("passes \(describeArgument(value)) as \(argument), which must be 0",
            hint: "set \(register) = 0 before the call")
        }
      case .ringBufferFlags:
        guard let flags = value.bounds?.constant, flags <= 2 else {
          throw Problem(
            "passes \(describeArgument(value)) as \(argument), which must be the constant 0, 1 or 2",
            hint: "set \(register) = 0 before the call")
        }
      case .anything:
        break
      case .context:
        guard case .pointer(let pointer) = value, pointer.base == .context, pointer.isUnmoved else {
          throw Problem(
            "passes \(describe(value)) as \(argument), which must be the context pointer as it was at entry",
            hint: "keep r1 from entry in r6-r9 and pass that")
        }
      case .releasedRingBuffer:
        guard case .pointer(let pointer) = value, case .ringBuffer(_, let reference) = pointer.base else {
          throw Problem(
            "passes \(describe(value)) as \(argument), which must be a ring buffer reservation",
            hint: "pass the pointer bpf_ringbuf_reserve returned")
        }
        guard !pointer.mayBeNull else {
          throw Problem(
            "passes the ring buffer reservation in \(register) to bpf_\(helper.name) without checking that it succeeded",
            hint: "compare the reservation with 0 and only submit it when it is not 0")
        }
        guard pointer.isUnmoved else {
          throw Problem(
            "passes ring buffer memory moved by \(pointer.offsetDescription) bytes to bpf_\(helper.name); it needs the pointer bpf_ringbuf_reserve returned",
            hint: "keep the start of the record in its own register")
        }
        release = reference
      case .kernelObject(let structName):
        guard case .pointer(let pointer) = value, case .kernel(let argument) = pointer.base else {
          throw Problem(
            "passes \(describe(value)) as \(argument), which must be the \(structName) argument of the program",
            hint: "pass the argument as loaded from the context")
        }
        guard kernelObjects[argument]?.name == structName else {
          throw Problem(
            "passes \(describe(pointer)) as \(argument), which must point to a \(structName)",
            hint: "pass the \(structName) argument")
        }
        guard !pointer.mayBeNull else {
          throw Problem(
            "passes the kernel pointer in \(register) to bpf_\(helper.name) without checking that it is not null",
            hint: "compare it with 0 first")
        }
        guard pointer.isUnmoved else {
          throw Problem(
            "passes a kernel pointer moved by \(pointer.offsetDescription) bytes to bpf_\(helper.name)",
            hint: "pass the pointer as loaded from the context")
        }
      }
    }

    // The call happens: written memory becomes initialised, a released reservation dies
    // everywhere, r1-r5 are clobbered and r0 gets the result.
    for (pointer, size) in writesAfterCall where pointer.base == .stack {
      state.markStackWritten(offset: pointer.fixed, size: size)
      recordStackWrite(&state, offset: pointer.fixed, size: size, contents: .helperBytes, shape: .helperBytes)
    }
    if let release {
      state.references[release] = nil
      state.updateAllValues { value in
        if case .pointer(let pointer) = value, pointer.reference == release { return .released }
        return value
      }
    }
    for register in 1...5 { state.registers[register] = .uninitialized }
    switch signature.result {
    case .number:
      state[.r0] = uniqueNumber(.unknown)
    case .none:
      state[.r0] = .uninitialized
    case .mapValueOrNull:
      var result = Pointer(.mapValue(map: map!.index), mayBeNull: true, nullID: freshID())
      // Kernels since 6.14 know such a lookup finds its entry, and type the result as not
      // null; older ones do not. Both ways are checked, and the result never counts as the
      // same as an ordinary lookup's.
      result.foundForSure = helper == .mapLookupElement && keyIsConstantEntry
      state[.r0] = .pointer(result)
    case .ringBufferOrNull:
      let reference = freshID()
      state.references[reference] = index
      state[.r0] = .pointer(
        Pointer(.ringBuffer(size: allocationSize, reference: reference), mayBeNull: true, nullID: freshID()))
    }
  }

  /// Whether `key` (a lookup key in the stack) is a constant inside array map `map`, stored
  /// whole (a spill of exactly the key's size at the start of a slot): the kernel's test for
  /// eliding the lookup's null check.
  private func constantKey(_ key: Pointer, _ map: MapDescription, _ state: AbstractState) -> Bool {
    guard map.kind == .array || map.kind == .perCPUArray, key.base == .stack, let start = key.constantOffset,
      start < 0, start % 8 == 0
    else { return false }
    let (slot, _) = AbstractState.position(ofStackOffset: start)
    let history = state.stackHistories[slot]
    guard history > 0, history <= derivationList.count else { return false }
    let constant: UInt64
    switch derivationList[history - 1] {
    case .spill(.number(.constant(let value))) where map.keySize == 8: constant = value
    case .partial(_, 0, let size, .number(.constant(let value))) where size == map.keySize: constant = value
    default: return false
    }
    return constant < UInt64(map.maxEntries)
  }

  private func memoryPointer(_ value: Value, argument: String) throws(Problem) -> Pointer {
    guard case .pointer(let pointer) = value else {
      throw Problem(
        "passes \(describe(value)) as \(argument), which must point to memory",
        hint: "pass a pointer to the stack, a map value or a ring buffer reservation")
    }
    return pointer
  }

  /// Checks that a helper may access `size` bytes (at least `minimumSize`) at `pointer`.
  private func checkMemory(
    _ pointer: Pointer, in register: Register, size: Int, mustBeInitialized: Bool,
    description: String, _ state: AbstractState
  ) throws(Problem) {
    switch pointer.base {
    case .stack:
      guard let start = pointer.constantOffset else {
        throw Problem(
          "passes a stack pointer with a variable offset in \(register) to a helper",
          hint: "pass stack buffers at constant offsets")
      }
      guard start >= -AbstractState.stackSize, start + size <= 0 else {
        throw Problem(
          "passes \(Self.stackText(start)) as \(description), but \(size) bytes from there do not fit in the stack (fp-512 up to fp)",
          hint: "make the stack buffer large enough")
      }
      if mustBeInitialized, let unset = state.firstUninitializedStackByte(offset: start, size: size) {
        throw Problem(
          "passes \(description) at \(Self.stackText(start)), but the stack at \(Self.stackText(unset)) was never written",
          hint: "initialise every byte of the buffer before the call")
      }
    case .mapValue(let map):
      try requireChecked(pointer, register)
      try checkRegion(
        pointer, in: register, offset: 0, size: size, length: maps[map].valueSize, verb: "lets a helper access",
        object: "a value of map '\(maps[map].name)'")
    case .ringBuffer(let length, _):
      try requireChecked(pointer, register)
      try checkRegion(
        pointer, in: register, offset: 0, size: size, length: length, verb: "lets a helper access",
        object: "a \(length)-byte ring buffer reservation")
    case .context, .kernel, .mapHandle:
      throw Problem(
        "passes \(describe(pointer)) in \(register) as \(description)",
        hint: "pass a pointer to the stack, a map value or a ring buffer reservation")
    }
  }

  // MARK: - Exit

  private func exit(_ index: Int, _ state: AbstractState) throws(Problem) {
    if let (_, madeAt) = state.references.min(by: { $0.value < $1.value }) {
      throw Problem(
        "leaves a ring buffer reservation (made at instruction \(flow.slotOfIndex[madeAt])) neither submitted nor discarded on a path that reaches exit at instruction \(flow.slotOfIndex[index])",
        hint: "call bpf_ringbuf_submit or bpf_ringbuf_discard on every path after a successful reservation")
    }
    let result = state[.r0]
    switch result {
    case .uninitialized:
      throw Problem(
        "exits without setting r0, the return value",
        hint: "set r0 (for example r0 = 0) before exit; helper calls without a result leave it unset")
    case .scalar(let bounds, _, _):
      if case .tracing = context, bounds.constant != 0 {
        throw Problem(
          "may return \(bounds) in r0; fentry/fexit programs must return 0, and the pre-check cannot tell them from tp_btf ones",
          hint: "set r0 = 0 before exit")
      }
    default:
      _ = try read(.r0, state)
      throw Problem(
        "returns \(describe(result)) in r0; programs must return a number",
        hint: "set r0 = 0 before exit")
    }
  }

  // MARK: - Encoding rules

  /// Operand rules the kernel checks on each instruction, independent of state.
  static func encodingProblem(_ instruction: Instruction) -> Problem? {
    switch instruction {
    case .alu64(let op, _, let operand), .alu32(let op, _, let operand):
      guard case .immediate(let immediate) = operand else {
        return op == .neg
          ? Problem("encodes neg with a source register; neg takes no operand", hint: "use .immediate(0)") : nil
      }
      let width: Int32 = if case .alu64 = instruction { 64 } else { 32 }
      switch op {
      case .lsh where immediate < 0 || immediate >= width,
        .rsh where immediate < 0 || immediate >= width,
        .arsh where immediate < 0 || immediate >= width:
        return Problem(
          "shifts by \(immediate), outside 0...\(width - 1)", hint: "shift by less than the operand width")
      case .div where immediate == 0, .mod where immediate == 0:
        return Problem("divides by the constant 0", hint: "divide by a nonzero constant")
      case .neg where immediate != 0:
        return Problem("encodes neg with a nonzero immediate; neg takes no operand", hint: "use .immediate(0)")
      default:
        return nil
      }
    case .endian(_, _, let bits):
      return [16, 32, 64].contains(bits)
        ? nil : Problem("byte-swaps \(bits) bits; only 16, 32 and 64 are possible", hint: "use a width of 16, 32 or 64")
    case .atomic(_, let size, _, _, _):
      return size == .word || size == .double
        ? nil
        : Problem(
          "does an atomic operation on \(size.bytes) byte(s); only 4 and 8 are possible",
          hint: "use 4- or 8-byte counters")
    default:
      return nil
    }
  }
}
