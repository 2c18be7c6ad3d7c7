import BPF

/// One verifier pre-check example: a program, where it runs, and the expected verdict.
///
/// The cases are plain data (no test framework), so the same list can be replayed against
/// the kernel's own verifier: every case expected to pass must also load there.
struct VerifierCase: Sendable, CustomStringConvertible {
  var name: String
  var context: ProgramContext
  var instructions: [Instruction]
  /// nil when the program must be accepted; otherwise text the first rejection must contain.
  var rejection: String?
  var maps: [MapDescription] = VerifierCase.standardMaps

  var description: String { name }

  static let events = Int32(0)
  static let counts = Int32(1)
  static let config = Int32(2)
  static let perCPU = Int32(3)
  static let recent = Int32(4)

  static let standardMaps: [MapDescription] = [
    MapDescription(name: "events", kind: .ringBuffer, keySize: 0, valueSize: 0, maxEntries: 4096),
    MapDescription(name: "counts", kind: .hash, keySize: 8, valueSize: 8, maxEntries: 1024),
    MapDescription(name: "config", kind: .array, keySize: 4, valueSize: 16, maxEntries: 1),
    MapDescription(name: "scratch", kind: .perCPUArray, keySize: 4, valueSize: 64, maxEntries: 4),
    MapDescription(name: "recent", kind: .lruHash, keySize: 4, valueSize: 32, maxEntries: 128),
  ]

  /// tp_btf:sched_switch(bool preempt, struct task_struct *prev, struct task_struct *next,
  /// unsigned int prev_state), so the cases can be loaded into a real kernel.
  static let schedSwitch = ProgramContext.tracing(argumentCount: 4, kernelPointerArguments: [1, 2])
}

/// Builds instructions with labels.
func assemble(_ body: (inout Assembler) -> Void) -> [Instruction] {
  var assembler = Assembler()
  body(&assembler)
  return try! assembler.finish().instructions
}

private let returnZero: [Instruction] = [.mov(.r0, 0), .exit]

/// `r2 = fp-8` with an 8-byte key stored there, `r1 = map`, then `bpf_map_lookup_elem`.
private func lookup(_ map: Int32, keyBytes: Int = 8, storeKey: Bool = true) -> [Instruction] {
  var code: [Instruction] = []
  if storeKey { code.append(.storeImmediate(.double, .fp, offset: -8, 7)) }
  code += [
    .mov(.r2, .fp), .add(.r2, -8), .loadMapFD(.r1, fd: map), .call(helper: HelperFunction.mapLookupElement.rawValue),
  ]
  _ = keyBytes
  return code
}

/// Reserves `size` bytes in the ring buffer; r0 holds the reservation or null.
private func reserve(_ size: Int32, flags: Int32 = 0) -> [Instruction] {
  [.loadMapFD(.r1, fd: VerifierCase.events), .mov(.r2, size), .mov(.r3, flags),
   .call(helper: HelperFunction.ringbufReserve.rawValue)]
}

private let submitR6: [Instruction] = [
  .mov(.r1, .r6), .mov(.r2, 0), .call(helper: HelperFunction.ringbufSubmit.rawValue),
]

private func call(_ helper: HelperFunction) -> Instruction { .call(helper: helper.rawValue) }

/// Lookup in `map`, and skip to `exit` with r0 = 0 when nothing was found; the value
/// pointer is in r0 (and r6) after the check.
private func checkedLookup(_ map: Int32, _ a: inout Assembler, body: (inout Assembler) -> Void) {
  let out = a.newLabel()
  a.emit(lookup(map))
  a.emit(.mov(.r6, .r0))
  a.jump(if: .eq, .r0, .immediate(0), to: out)
  body(&a)
  a.bind(out)
  a.emit(returnZero)
}

let verifierCases: [VerifierCase] = [
  // MARK: Registers
  VerifierCase(
    name: "reading an unset register", context: .kprobe,
    instructions: [.mov(.r0, .r2), .exit],
    rejection: "reads r2 before anything was stored in it"),
  VerifierCase(
    name: "reading a set register", context: .kprobe,
    instructions: [.mov(.r2, 1), .mov(.r0, .r2), .exit]),
  VerifierCase(
    name: "helper calls clobber r1-r5", context: .kprobe,
    instructions: [.mov(.r2, 5), call(.ktimeGetNanoseconds), .mov(.r0, .r2), .exit],
    rejection: "reads r2 before anything was stored in it"),
  VerifierCase(
    name: "r6-r9 survive helper calls", context: .kprobe,
    instructions: [.mov(.r6, 5), call(.ktimeGetNanoseconds), .mov(.r0, .r6), .exit]),
  VerifierCase(
    name: "writing r10", context: .kprobe,
    instructions: [.add(.fp, 8)] + returnZero,
    rejection: "writes to r10, the frame pointer"),
  VerifierCase(
    name: "copying r10", context: .kprobe,
    instructions: [.mov(.r1, .fp), .add(.r1, 8)] + returnZero),

  // MARK: Exit
  VerifierCase(
    name: "exit without r0", context: .kprobe,
    instructions: [.exit],
    rejection: "exits without setting r0"),
  VerifierCase(
    name: "exit with r0", context: .kprobe,
    instructions: returnZero),
  VerifierCase(
    name: "returning a pointer", context: .kprobe,
    instructions: [.mov(.r0, .fp), .exit],
    rejection: "returns a stack pointer in r0"),
  VerifierCase(
    name: "kprobe may return any number", context: .kprobe,
    instructions: [call(.ktimeGetNanoseconds), .exit]),
  VerifierCase(
    name: "tracing programs return 0", context: VerifierCase.schedSwitch,
    instructions: [.mov(.r0, 1), .exit],
    rejection: "fentry/fexit programs must return 0"),
  VerifierCase(
    name: "tracing program returning 0", context: VerifierCase.schedSwitch,
    instructions: returnZero),

  // MARK: Control flow
  VerifierCase(
    name: "jump past the end", context: .kprobe,
    instructions: [.mov(.r0, 0), .jump(offset: 5), .exit],
    rejection: "outside the program"),
  VerifierCase(
    name: "jump to the last instruction", context: .kprobe,
    instructions: [.mov(.r0, 0), .jumpIf(.eq, .r1, .immediate(0), offset: 0), .exit]),
  VerifierCase(
    name: "jump into ld_imm64", context: .kprobe,
    instructions: [
      .mov(.r0, 0), .jumpIf(.eq, .r0, .immediate(0), offset: 1), .loadImmediate64(.r0, 1), .exit,
    ],
    rejection: "the second half of the two-slot ld_imm64 at instruction 2"),
  VerifierCase(
    name: "jump over ld_imm64", context: .kprobe,
    instructions: [
      .mov(.r0, 0), .jumpIf(.eq, .r0, .immediate(0), offset: 2), .loadImmediate64(.r0, 1), .exit,
    ]),
  VerifierCase(
    name: "unreachable code", context: .kprobe,
    instructions: [.mov(.r0, 0), .exit, .mov(.r0, 1), .exit],
    rejection: "instructions 2...3 are unreachable"),
  VerifierCase(
    name: "statically reachable but never taken branch", context: .kprobe,
    instructions: assemble { a in
      // r1 is 0, so the kernel never follows the jump and never sees r5 read.
      let never = a.newLabel()
      a.emit(.mov(.r1, 0))
      a.jump(if: .ne, .r1, .immediate(0), to: never)
      a.emit(returnZero)
      a.bind(never)
      a.emit([.mov(.r0, .r5), .exit])
    }),
  VerifierCase(
    name: "loop", context: .kprobe,
    instructions: [.mov(.r0, 0), .add(.r0, 1), .jumpIf(.lt, .r0, .immediate(10), offset: -2), .exit],
    rejection: "loops are not supported"),
  VerifierCase(
    name: "backward jump without a loop", context: .kprobe,
    instructions: [.mov(.r0, 0), .jump(offset: 1), .exit, .jump(offset: -2)]),
  VerifierCase(
    name: "falling off the end", context: .kprobe,
    instructions: [.mov(.r0, 0)],
    rejection: "continue past the last instruction"),

  // MARK: Stack
  VerifierCase(
    name: "reading unwritten stack", context: .kprobe,
    instructions: [.load(.double, .r1, .fp, offset: -16)] + returnZero,
    rejection: "reads the stack at fp-16 before anything was written there"),
  VerifierCase(
    name: "reading written stack", context: .kprobe,
    instructions: [.storeImmediate(.double, .fp, offset: -16, 3), .load(.double, .r1, .fp, offset: -16)]
      + returnZero),
  VerifierCase(
    name: "reading a partly written slot", context: .kprobe,
    instructions: [.storeImmediate(.word, .fp, offset: -16, 3), .load(.double, .r1, .fp, offset: -16)]
      + returnZero,
    rejection: "reads the stack at fp-12 before anything was written there"),
  VerifierCase(
    name: "stack below its bottom", context: .kprobe,
    instructions: [.storeImmediate(.double, .fp, offset: -520, 0)] + returnZero,
    rejection: "fp-520, outside the 512-byte stack"),
  VerifierCase(
    name: "stack at its bottom", context: .kprobe,
    instructions: [.storeImmediate(.double, .fp, offset: -512, 0)] + returnZero),
  VerifierCase(
    name: "stack above the frame pointer", context: .kprobe,
    instructions: [.storeImmediate(.word, .fp, offset: 0, 0)] + returnZero,
    rejection: "outside the 512-byte stack"),
  VerifierCase(
    name: "misaligned stack access", context: .kprobe,
    instructions: [.storeImmediate(.word, .fp, offset: -6, 0)] + returnZero,
    rejection: "not a multiple of 4"),
  VerifierCase(
    name: "pointer saved and restored", context: .kprobe,
    instructions: [
      .store(.double, .fp, offset: -8, .r1), .load(.double, .r6, .fp, offset: -8),
      .load(.double, .r0, .r6, offset: 0), .exit,
    ]),
  VerifierCase(
    name: "part of a pointer saved", context: .kprobe,
    instructions: [.store(.word, .fp, offset: -8, .r1)] + returnZero,
    rejection: "saves only 4 bytes of the context pointer"),
  VerifierCase(
    name: "variable stack offset", context: .kprobe,
    instructions: assemble { a in
      let out = a.newLabel()
      a.emit([.storeImmediate(.double, .fp, offset: -16, 0), .storeImmediate(.double, .fp, offset: -8, 0)])
      a.emit(.load(.double, .r2, .r1, offset: 0))
      a.jump(if: .gt, .r2, .immediate(8), to: out)
      a.emit([.mov(.r3, .fp), .add(.r3, -16), .add(.r3, .r2), .load(.byte, .r0, .r3, offset: 0)])
      a.bind(out)
      a.emit(returnZero)
    },
    rejection: "reads the stack at a variable offset"),

  // MARK: Maps
  VerifierCase(
    name: "map value used without a null check", context: .kprobe,
    instructions: lookup(VerifierCase.counts) + [.load(.double, .r1, .r0, offset: 0)] + returnZero,
    rejection: "dereferences a map value in r0 without checking that the lookup found an entry"),
  VerifierCase(
    name: "map value used after a null check", context: .kprobe,
    instructions: assemble { a in
      checkedLookup(VerifierCase.counts, &a) { a in a.emit(.load(.double, .r1, .r0, offset: 0)) }
    }),
  VerifierCase(
    name: "copy of a map value checked through the original", context: .kprobe,
    instructions: assemble { a in
      checkedLookup(VerifierCase.counts, &a) { a in
        a.emit([.mov(.r1, 1), .atomic(.add, .double, .r6, offset: 0, .r1)])
      }
    }),
  VerifierCase(
    name: "saved map value checked through the original", context: .kprobe,
    instructions: assemble { a in
      let out = a.newLabel()
      a.emit(lookup(VerifierCase.counts))
      a.emit(.store(.double, .fp, offset: -16, .r0))
      a.jump(if: .eq, .r0, .immediate(0), to: out)
      a.emit([.load(.double, .r1, .fp, offset: -16), .storeImmediate(.double, .r1, offset: 0, 1)])
      a.bind(out)
      a.emit(returnZero)
    }),
  VerifierCase(
    name: "arithmetic on a lookup result before the check", context: .kprobe,
    instructions: lookup(VerifierCase.counts) + [.add(.r0, 4)] + returnZero,
    rejection: "does arithmetic on the result of a lookup in map 'counts', which may be null"),
  VerifierCase(
    name: "map value read past its end", context: .kprobe,
    instructions: assemble { a in
      checkedLookup(VerifierCase.counts, &a) { a in a.emit(.load(.double, .r1, .r0, offset: 4)) }
    },
    rejection: "reads 8 bytes at offset 4 of a value of map 'counts', which is 8 bytes long"),
  VerifierCase(
    name: "map value read before its start", context: .kprobe,
    instructions: assemble { a in
      checkedLookup(VerifierCase.counts, &a) { a in a.emit(.load(.byte, .r1, .r0, offset: -1)) }
    },
    rejection: "reads 1 byte at offset -1 of a value of map 'counts'"),
  VerifierCase(
    name: "unbounded index into a map value", context: .kprobe,
    instructions: assemble { a in
      checkedLookup(VerifierCase.recent, &a) { a in
        a.emit([.load(.word, .r1, .r0, offset: 0), .add(.r0, .r1), .load(.byte, .r1, .r0, offset: 0)])
      }
    },
    rejection: "adds a number that is not known to be small (0...4294967295)"),
  VerifierCase(
    name: "index bounded too loosely", context: .kprobe,
    instructions: assemble { a in
      checkedLookup(VerifierCase.recent, &a) { a in
        let skip = a.newLabel()
        a.emit(.load(.word, .r1, .r0, offset: 0))
        a.jump(if: .gt, .r1, .immediate(32), to: skip)
        a.emit([.add(.r0, .r1), .load(.word, .r1, .r0, offset: 0)])
        a.bind(skip)
      }
    },
    rejection: "reads 4 bytes at offsets 0...32 of a value of map 'recent', which is 32 bytes long"),
  VerifierCase(
    name: "index bounded by a comparison", context: .kprobe,
    instructions: assemble { a in
      checkedLookup(VerifierCase.recent, &a) { a in
        let skip = a.newLabel()
        a.emit(.load(.word, .r1, .r0, offset: 0))
        a.jump(if: .gt, .r1, .immediate(28), to: skip)
        a.emit([.add(.r0, .r1), .load(.word, .r1, .r0, offset: 0)])
        a.bind(skip)
      }
    }),
  VerifierCase(
    name: "index bounded through a copy", context: .kprobe,
    instructions: assemble { a in
      checkedLookup(VerifierCase.recent, &a) { a in
        let skip = a.newLabel()
        a.emit([.load(.word, .r1, .r0, offset: 0), .mov(.r2, .r1)])
        a.jump(if: .ge, .r2, .immediate(29), to: skip)
        a.emit([.add(.r0, .r1), .load(.word, .r1, .r0, offset: 0)])
        a.bind(skip)
      }
    }),
  VerifierCase(
    name: "index bounded by a mask", context: .kprobe,
    instructions: assemble { a in
      checkedLookup(VerifierCase.recent, &a) { a in
        a.emit([
          .load(.word, .r1, .r0, offset: 0), .alu64(.and, .r1, .immediate(15)), .add(.r0, .r1),
          .load(.double, .r1, .r0, offset: 8),
        ])
      }
    }),
  VerifierCase(
    name: "index that may be negative", context: .kprobe,
    instructions: assemble { a in
      checkedLookup(VerifierCase.recent, &a) { a in
        let skip = a.newLabel()
        a.emit(.load(.double, .r1, .r0, offset: 0))
        a.jump(if: .sgt, .r1, .immediate(28), to: skip)
        a.jump(if: .slt, .r1, .immediate(-8), to: skip)
        a.emit([.add(.r0, .r1), .load(.word, .r1, .r0, offset: 0)])
        a.bind(skip)
      }
    },
    rejection: "moved by a number that may be negative or huge (signed -8...28)"),
  VerifierCase(
    name: "storing a pointer into a map value", context: .kprobe,
    instructions: assemble { a in
      checkedLookup(VerifierCase.counts, &a) { a in a.emit(.store(.double, .r0, offset: 0, .fp)) }
    },
    rejection: "stores a stack pointer into memory outside the stack"),
  VerifierCase(
    name: "lookup key never written", context: .kprobe,
    instructions: lookup(VerifierCase.counts, storeKey: false) + returnZero,
    rejection: "passes the 8-byte key of map 'counts' at fp-8, but the stack at fp-8 was never written"),
  VerifierCase(
    name: "lookup key too large for the stack", context: .kprobe,
    instructions: [
      .storeImmediate(.word, .fp, offset: -4, 0), .mov(.r2, .fp), .add(.r2, -4),
      .loadMapFD(.r1, fd: VerifierCase.counts), call(.mapLookupElement),
    ] + returnZero,
    rejection: "passes fp-4 as the 8-byte key of map 'counts', but 8 bytes from there do not fit"),
  VerifierCase(
    name: "lookup with the context as map", context: .kprobe,
    instructions: [.storeImmediate(.double, .fp, offset: -8, 0), .mov(.r2, .fp), .add(.r2, -8), call(.mapLookupElement)]
      + returnZero,
    rejection: "passes the context pointer as argument 1 (r1) of bpf_map_lookup_elem, which must be a map"),
  VerifierCase(
    name: "lookup in a ring buffer", context: .kprobe,
    instructions: lookup(VerifierCase.events) + returnZero,
    rejection: "passes map 'events' (ringBuffer) as argument 1 (r1) of bpf_map_lookup_elem"),
  VerifierCase(
    name: "map update from the stack", context: .kprobe,
    instructions: [
      .storeImmediate(.double, .fp, offset: -8, 1), .storeImmediate(.double, .fp, offset: -16, 2),
      .loadMapFD(.r1, fd: VerifierCase.counts), .mov(.r2, .fp), .add(.r2, -8), .mov(.r3, .fp),
      .add(.r3, -16), .mov(.r4, 0), call(.mapUpdateElement),
    ] + returnZero),
  VerifierCase(
    name: "map update with an unset flags register", context: .kprobe,
    instructions: [
      .storeImmediate(.double, .fp, offset: -8, 1), .storeImmediate(.double, .fp, offset: -16, 2),
      .loadMapFD(.r1, fd: VerifierCase.counts), .mov(.r2, .fp), .add(.r2, -8), .mov(.r3, .fp),
      .add(.r3, -16), call(.mapUpdateElement),
    ] + returnZero,
    rejection: "reads r4 before anything was stored in it"),
  VerifierCase(
    name: "map index out of range", context: .kprobe,
    instructions: [.loadMapFD(.r1, fd: 9)] + returnZero,
    rejection: "refers to map index 9, but only 5 maps are described"),
  VerifierCase(
    name: "direct value address of a one-entry array", context: .kprobe,
    instructions: [.loadMapValue(.r1, fd: VerifierCase.config, offset: 8), .load(.double, .r0, .r1, offset: 0), .exit]),
  VerifierCase(
    name: "direct value address of a hash map", context: .kprobe,
    instructions: [.loadMapValue(.r1, fd: VerifierCase.counts, offset: 0)] + returnZero,
    rejection: "only works for array maps with one entry"),
  VerifierCase(
    name: "atomic add to a map value", context: .kprobe,
    instructions: assemble { a in
      checkedLookup(VerifierCase.counts, &a) { a in
        a.emit([.mov(.r1, 1), .atomic(.add, .double, .r0, offset: 0, .r1)])
      }
    }),
  VerifierCase(
    name: "atomic fetch-add on the stack", context: .kprobe,
    instructions: [
      .storeImmediate(.double, .fp, offset: -8, 0), .mov(.r1, 1),
      .atomic(.fetchAdd, .double, .fp, offset: -8, .r1), .mov(.r0, .r1), .exit,
    ]),
  VerifierCase(
    name: "atomic add to the context", context: .kprobe,
    instructions: [.mov(.r2, 1), .atomic(.add, .double, .r1, offset: 0, .r2)] + returnZero,
    rejection: "does an atomic operation on the context pointer"),
  VerifierCase(
    name: "per-CPU array value bounds", context: .kprobe,
    instructions: assemble { a in
      let out = a.newLabel()
      a.emit([
        .storeImmediate(.word, .fp, offset: -4, 0), .mov(.r2, .fp), .add(.r2, -4),
        .loadMapFD(.r1, fd: VerifierCase.perCPU), call(.mapLookupElement),
      ])
      a.jump(if: .eq, .r0, .immediate(0), to: out)
      a.emit(.storeImmediate(.double, .r0, offset: 56, 1))
      a.bind(out)
      a.emit(returnZero)
    }),

  // MARK: Context
  VerifierCase(
    name: "writing the kprobe context", context: .kprobe,
    instructions: [.storeImmediate(.double, .r1, offset: 0, 0)] + returnZero,
    rejection: "writes to the context through r1; the context is read-only for kprobe programs"),
  VerifierCase(
    name: "reading pt_regs", context: .kprobe,
    instructions: [.load(.double, .r0, .r1, offset: 160), .load(.word, .r2, .r1, offset: 4), .exit]),
  VerifierCase(
    name: "reading past pt_regs", context: .kprobe,
    instructions: [.load(.double, .r0, .r1, offset: 168), .exit],
    rejection: "may only read struct pt_regs (offsets 0..<168)"),
  VerifierCase(
    name: "misaligned pt_regs read", context: .kprobe,
    instructions: [.load(.word, .r0, .r1, offset: 2), .exit],
    rejection: "context reads must be aligned to their size"),
  VerifierCase(
    name: "reading through a moved context pointer", context: .kprobe,
    instructions: [.add(.r1, 8), .load(.double, .r0, .r1, offset: 0), .exit],
    rejection: "reads the context through a pointer moved by 8"),
  VerifierCase(
    name: "raw tracepoint arguments", context: .rawTracepoint(argumentCount: 2),
    instructions: [.load(.double, .r0, .r1, offset: 8), .exit]),
  VerifierCase(
    name: "raw tracepoint argument past the count", context: .rawTracepoint(argumentCount: 2),
    instructions: [.load(.double, .r0, .r1, offset: 16), .exit],
    rejection: "may only read the 2 tracepoint arguments"),
  VerifierCase(
    name: "socket filter fields", context: .socketFilter,
    instructions: [.load(.word, .r0, .r1, offset: 0), .load(.half, .r2, .r1, offset: 68), .exit]),
  VerifierCase(
    name: "socket filter 8-byte read", context: .socketFilter,
    instructions: [.load(.double, .r0, .r1, offset: 0), .exit],
    rejection: "at most 4 bytes"),
  VerifierCase(
    name: "socket filter tc_classid", context: .socketFilter,
    instructions: [.load(.word, .r0, .r1, offset: 72), .exit],
    rejection: "may only read the fields len...hash of struct __sk_buff"),
  VerifierCase(
    name: "tracing argument read", context: VerifierCase.schedSwitch,
    instructions: [.load(.double, .r2, .r1, offset: 24)] + returnZero),
  VerifierCase(
    name: "tracing argument past the count", context: VerifierCase.schedSwitch,
    instructions: [.load(.double, .r2, .r1, offset: 32)] + returnZero,
    rejection: "tracing programs can only read their 4 arguments"),
  VerifierCase(
    name: "tracing argument read narrowly", context: VerifierCase.schedSwitch,
    instructions: [.load(.word, .r2, .r1, offset: 8)] + returnZero,
    rejection: "arguments are read as 8-byte values"),

  // MARK: Kernel pointers
  VerifierCase(
    name: "kernel pointer read without a null check", context: VerifierCase.schedSwitch,
    instructions: [.load(.double, .r2, .r1, offset: 8), .load(.word, .r3, .r2, offset: 16)] + returnZero,
    rejection: "dereferences a kernel pointer that may be null in r2 without checking it against 0"),
  VerifierCase(
    name: "kernel pointer read after a null check", context: VerifierCase.schedSwitch,
    instructions: assemble { a in
      let out = a.newLabel()
      a.emit(.load(.double, .r2, .r1, offset: 8))
      a.jump(if: .eq, .r2, .immediate(0), to: out)
      a.emit([.load(.word, .r3, .r2, offset: 16), .add(.r2, 8), .load(.double, .r3, .r2, offset: 0)])
      a.bind(out)
      a.emit(returnZero)
    }),
  VerifierCase(
    name: "kernel pointer written", context: VerifierCase.schedSwitch,
    instructions: assemble { a in
      let out = a.newLabel()
      a.emit(.load(.double, .r2, .r1, offset: 8))
      a.jump(if: .eq, .r2, .immediate(0), to: out)
      a.emit(.storeImmediate(.word, .r2, offset: 16, 0))
      a.bind(out)
      a.emit(returnZero)
    },
    rejection: "writes to kernel memory through r2"),
  VerifierCase(
    name: "kernel pointer read at a negative offset", context: VerifierCase.schedSwitch,
    instructions: assemble { a in
      let out = a.newLabel()
      a.emit(.load(.double, .r2, .r1, offset: 8))
      a.jump(if: .eq, .r2, .immediate(0), to: out)
      a.emit(.load(.word, .r3, .r2, offset: -8))
      a.bind(out)
      a.emit(returnZero)
    },
    rejection: "negative offset -8"),
  VerifierCase(
    name: "kernel pointer value stored in a reservation", context: VerifierCase.schedSwitch,
    instructions: assemble { a in
      let out = a.newLabel()
      a.emit(.load(.double, .r7, .r1, offset: 16))
      a.emit(reserve(16))
      a.jump(if: .eq, .r0, .immediate(0), to: out)
      a.emit([.store(.double, .r0, offset: 8, .r7), .mov(.r1, .r0), .mov(.r2, 0), call(.ringbufSubmit)])
      a.bind(out)
      a.emit(returnZero)
    }),
  VerifierCase(
    name: "half a kernel pointer stored in a reservation", context: VerifierCase.schedSwitch,
    instructions: assemble { a in
      let out = a.newLabel()
      a.emit(.load(.double, .r7, .r1, offset: 16))
      a.emit(reserve(16))
      a.jump(if: .eq, .r0, .immediate(0), to: out)
      a.emit([.store(.word, .r0, offset: 8, .r7), .mov(.r1, .r0), .mov(.r2, 0), call(.ringbufSubmit)])
      a.bind(out)
      a.emit(returnZero)
    },
    rejection: "stores a kernel pointer that may be null into memory outside the stack"),
  VerifierCase(
    name: "kernel pointer passed to probe_read_kernel", context: VerifierCase.schedSwitch,
    instructions: [
      .load(.double, .r3, .r1, offset: 16), .mov(.r1, .fp), .add(.r1, -16), .mov(.r2, 16),
      call(.probeReadKernel), .load(.double, .r1, .fp, offset: -16),
    ] + returnZero),

  // MARK: Pointer arithmetic and comparisons
  VerifierCase(
    name: "multiplying a pointer", context: .kprobe,
    instructions: [.mov(.r2, .fp), .alu64(.mul, .r2, .immediate(2))] + returnZero,
    rejection: "applies multiplication to a stack pointer in r2"),
  VerifierCase(
    name: "32-bit arithmetic on a pointer", context: .kprobe,
    instructions: [.mov(.r2, .fp), .alu32(.add, .r2, .immediate(2))] + returnZero,
    rejection: "does 32-bit arithmetic on a stack pointer"),
  VerifierCase(
    name: "32-bit copy of a pointer", context: .kprobe,
    instructions: [.alu32(.mov, .r2, .register(.fp))] + returnZero,
    rejection: "copies only the low 32 bits of a stack pointer"),
  VerifierCase(
    name: "comparing a pointer with a number", context: .kprobe,
    instructions: [.mov(.r0, 0), .jumpIf(.gt, .r1, .immediate(5), offset: 0), .exit],
    rejection: "compares the context pointer with something other than the constant 0"),
  VerifierCase(
    name: "null check against a register", context: .kprobe,
    instructions: assemble { a in
      let out = a.newLabel()
      a.emit(lookup(VerifierCase.counts))
      a.emit(.mov(.r7, 0))
      a.jump(if: .eq, .r0, .register(.r7), to: out)
      a.bind(out)
      a.emit(returnZero)
    },
    rejection: "instead of the immediate 0"),
  VerifierCase(
    name: "32-bit null check", context: .kprobe,
    instructions: assemble { a in
      let out = a.newLabel()
      a.emit(lookup(VerifierCase.counts))
      a.jump(if: .eq, .r0, .immediate(0), to: out, jump32: true)
      a.bind(out)
      a.emit(returnZero)
    },
    rejection: "compares only the low 32 bits"),
  VerifierCase(
    name: "shift by the operand width", context: .kprobe,
    instructions: [.mov(.r0, 1), .alu64(.lsh, .r0, .immediate(64)), .exit],
    rejection: "shifts by 64, outside 0...63"),
  VerifierCase(
    name: "32-bit shift by 32", context: .kprobe,
    instructions: [.mov(.r0, 1), .alu32(.lsh, .r0, .immediate(32)), .exit],
    rejection: "shifts by 32, outside 0...31"),
  VerifierCase(
    name: "division by constant zero", context: .kprobe,
    instructions: [.mov(.r0, 1), .alu64(.div, .r0, .immediate(0)), .exit],
    rejection: "divides by the constant 0"),
  VerifierCase(
    name: "division by a register", context: .kprobe,
    instructions: [.mov(.r0, 1), .mov(.r2, 0), .alu64(.div, .r0, .register(.r2)), .exit]),
  VerifierCase(
    name: "byte swap width", context: .kprobe,
    instructions: [.mov(.r0, 1), .endian(.big, .r0, bits: 24), .exit],
    rejection: "byte-swaps 24 bits"),
  VerifierCase(
    name: "division result is not tracked", context: .kprobe,
    instructions: [
      .storeImmediate(.double, .fp, offset: -16, 0), .storeImmediate(.double, .fp, offset: -8, 0),
      .mov(.r2, 32), .alu64(.div, .r2, .immediate(2)), .mov(.r1, .fp), .add(.r1, -16),
      .mov(.r3, 0), call(.probeReadKernel),
    ] + returnZero,
    rejection: "passes a size that may be 0 (any value)"),

  VerifierCase(
    name: "subtracting from a stack pointer", context: .kprobe,
    instructions: [.mov(.r1, .fp), .alu64(.sub, .r1, .immediate(8)), .storeImmediate(.double, .r1, offset: 0, 0)]
      + returnZero,
    rejection: "subtracts from a stack pointer in r1"),
  VerifierCase(
    name: "adding a negative number to a stack pointer", context: .kprobe,
    instructions: [.mov(.r1, .fp), .add(.r1, -8), .storeImmediate(.double, .r1, offset: 0, 0)] + returnZero),
  VerifierCase(
    name: "one store used for the context and the stack", context: .kprobe,
    instructions: assemble { a in
      let store = a.newLabel()
      a.emit([.load(.double, .r2, .r1, offset: 0), .mov(.r3, .r1)])
      a.jump(if: .eq, .r2, .immediate(0), to: store)
      a.emit(.mov(.r3, .fp))
      a.bind(store)
      a.emit(.load(.double, .r0, .r3, offset: -8))
      a.emit(.exit)
    },
    rejection: "accesses memory through"),
  VerifierCase(
    name: "one store used for the stack and a map value", context: .kprobe,
    instructions: assemble { a in
      let out = a.newLabel()
      let store = a.newLabel()
      a.emit([.load(.double, .r7, .r1, offset: 0), .storeImmediate(.double, .fp, offset: -8, 0), .mov(.r6, .fp), .add(.r6, -8)])
      a.emit(lookup(VerifierCase.counts))
      a.jump(if: .eq, .r0, .immediate(0), to: out)
      a.jump(if: .eq, .r7, .immediate(0), to: store)
      a.emit(.mov(.r6, .r0))
      a.bind(store)
      a.emit(.storeImmediate(.double, .r6, offset: 0, 1))
      a.bind(out)
      a.emit(returnZero)
    }),
  VerifierCase(
    name: "bits tested with jset are forgotten", context: .kprobe,
    instructions: assemble { a in
      // r0 > 64 before the jset, but the kernel forgets that on both branches, so the
      // r0 == 0 branch (reading an unset r9) is possible for it.
      let out = a.newLabel()
      let never = a.newLabel()
      a.emit(call(.getCurrentPIDTGID))
      a.jump(if: .sle, .r0, .immediate(64), to: out)
      a.emit(.mov(.r8, 32))
      a.jump(if: .set, .r8, .register(.r0), to: out)
      a.jump(if: .eq, .r0, .immediate(0), to: never)
      a.jump(to: out)
      a.bind(never)
      a.emit(.mov(.r0, .r9))
      a.bind(out)
      a.emit(returnZero)
    },
    rejection: "reads r9 before anything was stored in it"),
  VerifierCase(
    name: "bounds survive a comparison", context: .kprobe,
    instructions: assemble { a in
      let out = a.newLabel()
      let never = a.newLabel()
      a.emit(call(.getCurrentPIDTGID))
      a.jump(if: .sle, .r0, .immediate(64), to: out)
      a.jump(if: .eq, .r0, .immediate(0), to: never)
      a.jump(to: out)
      a.bind(never)
      a.emit(.mov(.r0, .r9))
      a.bind(out)
      a.emit(returnZero)
    }),
  VerifierCase(
    name: "32-bit remainder is not tracked", context: .kprobe,
    instructions: assemble { a in
      // The kernel forgets all 64 bits after w %= ..., so the branch is possible.
      let never = a.newLabel()
      a.emit([.mov(.r6, 31), .alu32(.mod, .r6, .immediate(256))])
      a.jump(if: .sgt, .r6, .immediate(Int32.min), to: never)
      a.emit(.mov(.r0, .r5))
      a.bind(never)
      a.emit(returnZero)
    },
    rejection: "reads r5 before anything was stored in it"),
  VerifierCase(
    name: "32-bit addition is tracked", context: .kprobe,
    instructions: assemble { a in
      let never = a.newLabel()
      a.emit([.mov(.r6, 31), .alu32(.add, .r6, .immediate(256))])
      a.jump(if: .sgt, .r6, .immediate(Int32.min), to: never)
      a.emit(.mov(.r0, .r5))
      a.bind(never)
      a.emit(returnZero)
    }),
  VerifierCase(
    name: "constant offsets may go below the start before an index is added", context: .kprobe,
    instructions: assemble { a in
      checkedLookup(VerifierCase.recent, &a) { a in
        let skip = a.newLabel()
        a.emit([.load(.word, .r1, .r0, offset: 0), .add(.r0, -4)])
        a.jump(if: .gt, .r1, .immediate(16), to: skip)
        a.jump(if: .lt, .r1, .immediate(4), to: skip)
        a.emit([.add(.r0, .r1), .load(.word, .r1, .r0, offset: 0)])
        a.bind(skip)
      }
    }),
  VerifierCase(
    name: "index subtracted from a map value pointer", context: .kprobe,
    instructions: assemble { a in
      checkedLookup(VerifierCase.recent, &a) { a in
        let skip = a.newLabel()
        a.emit([.load(.word, .r1, .r0, offset: 0), .add(.r0, 16)])
        a.jump(if: .gt, .r1, .immediate(8), to: skip)
        a.emit([.alu64(.sub, .r0, .register(.r1)), .load(.word, .r1, .r0, offset: 0)])
        a.bind(skip)
      }
    },
    rejection: "moved by a number that may be negative or huge"),

  // MARK: Helpers with memory arguments
  VerifierCase(
    name: "probe_read_kernel into unwritten stack", context: .kprobe,
    instructions: [
      .mov(.r1, .fp), .add(.r1, -16), .mov(.r2, 16), .mov(.r3, 0), call(.probeReadKernel),
      .load(.double, .r0, .fp, offset: -8), .exit,
    ]),
  VerifierCase(
    name: "probe_read_kernel of size 0", context: .kprobe,
    instructions: [.mov(.r1, .fp), .add(.r1, -16), .mov(.r2, 0), .mov(.r3, 0), call(.probeReadKernel)]
      + returnZero,
    rejection: "passes a size that may be 0"),
  VerifierCase(
    name: "probe_read_kernel past the stack", context: .kprobe,
    instructions: [.mov(.r1, .fp), .add(.r1, -8), .mov(.r2, 16), .mov(.r3, 0), call(.probeReadKernel)]
      + returnZero,
    rejection: "passes fp-8 as the memory in r1, but 16 bytes from there do not fit in the stack"),
  VerifierCase(
    name: "probe_read_kernel with a variable size into unwritten stack", context: .kprobe,
    instructions: assemble { a in
      let out = a.newLabel()
      a.emit(.load(.double, .r2, .r1, offset: 0))
      a.jump(if: .eq, .r2, .immediate(0), to: out)
      a.jump(if: .gt, .r2, .immediate(16), to: out)
      a.emit([.mov(.r1, .fp), .add(.r1, -16), .mov(.r3, 0), call(.probeReadKernel)])
      a.bind(out)
      a.emit(returnZero)
    },
    rejection: "but the stack at fp-16 was never written"),
  VerifierCase(
    name: "probe_read_kernel with a bounded size", context: .kprobe,
    instructions: assemble { a in
      let out = a.newLabel()
      a.emit([.storeImmediate(.double, .fp, offset: -16, 0), .storeImmediate(.double, .fp, offset: -8, 0)])
      a.emit(.load(.double, .r2, .r1, offset: 0))
      a.jump(if: .eq, .r2, .immediate(0), to: out)
      a.jump(if: .gt, .r2, .immediate(16), to: out)
      a.emit([.mov(.r1, .fp), .add(.r1, -16), .mov(.r3, 0), call(.probeReadKernel)])
      a.bind(out)
      a.emit(returnZero)
    }),
  VerifierCase(
    name: "probe_read_kernel with a size bounded too loosely", context: .kprobe,
    instructions: assemble { a in
      let out = a.newLabel()
      a.emit([.storeImmediate(.double, .fp, offset: -16, 0), .storeImmediate(.double, .fp, offset: -8, 0)])
      a.emit(.load(.double, .r2, .r1, offset: 0))
      a.jump(if: .eq, .r2, .immediate(0), to: out)
      a.jump(if: .gt, .r2, .immediate(17), to: out)
      a.emit([.mov(.r1, .fp), .add(.r1, -16), .mov(.r3, 0), call(.probeReadKernel)])
      a.bind(out)
      a.emit(returnZero)
    },
    rejection: "17 bytes from there do not fit in the stack"),
  VerifierCase(
    name: "get_current_comm into a map value", context: .kprobe,
    instructions: assemble { a in
      checkedLookup(VerifierCase.recent, &a) { a in
        a.emit([.mov(.r1, .r0), .add(.r1, 16), .mov(.r2, 16), call(.getCurrentComm)])
      }
    }),
  VerifierCase(
    name: "get_current_comm past a map value", context: .kprobe,
    instructions: assemble { a in
      checkedLookup(VerifierCase.recent, &a) { a in
        a.emit([.mov(.r1, .r0), .add(.r1, 20), .mov(.r2, 16), call(.getCurrentComm)])
      }
    },
    rejection: "lets a helper access 16 bytes at offset 20 of a value of map 'recent', which is 32 bytes long"),
  VerifierCase(
    name: "trace_printk with a stack format", context: .kprobe,
    instructions: [
      .storeImmediate(.double, .fp, offset: -8, 0x0a_6968), .mov(.r1, .fp), .add(.r1, -8), .mov(.r2, 8),
      .mov(.r3, 0), .mov(.r4, 0), .mov(.r5, 0), call(.tracePrintk),
    ] + returnZero),
  VerifierCase(
    name: "helper a socket filter cannot call", context: .socketFilter,
    instructions: [
      .mov(.r1, .fp), .add(.r1, -8), .mov(.r2, 8), .mov(.r3, 0), call(.probeRead),
    ] + returnZero,
    rejection: "calls bpf_probe_read, which socket filter programs cannot use"),
  VerifierCase(
    name: "helper every program type can call", context: .socketFilter,
    instructions: [call(.getCurrentPIDTGID), call(.ktimeGetBootNanoseconds), .exit]),
  VerifierCase(
    name: "netns cookie of a socket filter", context: .socketFilter,
    instructions: [call(.getNetnsCookie), .exit]),
  VerifierCase(
    name: "function address in a kprobe", context: .kprobe,
    instructions: [call(.getFuncIP), .exit]),
  VerifierCase(
    name: "function address in a tracing program", context: VerifierCase.schedSwitch,
    instructions: [call(.getFuncIP)] + returnZero,
    rejection: "calls bpf_get_func_ip, which the kernel allows in fentry/fexit programs but not in tp_btf ones"),
  VerifierCase(
    name: "unknown helper", context: .kprobe,
    instructions: [.call(helper: 9999)] + returnZero,
    rejection: "calls helper #9999"),

  // MARK: Ring buffer
  VerifierCase(
    name: "reservation submitted", context: .kprobe,
    instructions: assemble { a in
      let out = a.newLabel()
      a.emit(reserve(16))
      a.emit(.mov(.r6, .r0))
      a.jump(if: .eq, .r6, .immediate(0), to: out)
      a.emit([.storeImmediate(.double, .r6, offset: 8, 1), call(.ktimeGetNanoseconds), .store(.double, .r6, offset: 0, .r0)])
      a.emit(submitR6)
      a.bind(out)
      a.emit(returnZero)
    }),
  VerifierCase(
    name: "reservation leaked", context: .kprobe,
    instructions: assemble { a in
      let out = a.newLabel()
      a.emit(reserve(16))
      a.emit(.mov(.r6, .r0))
      a.jump(if: .eq, .r6, .immediate(0), to: out)
      a.emit(.storeImmediate(.double, .r6, offset: 8, 1))
      a.bind(out)
      a.emit(returnZero)
    },
    rejection: "leaves a ring buffer reservation (made at instruction 4) neither submitted nor discarded on a path that reaches exit at instruction 9"),
  VerifierCase(
    // Nothing holds the reservation any more, so the states of the 2^24 paths after it differ
    // only in what each wrote to the stack: they must merge, or the check runs out of steps
    // ("too many paths") instead of naming the leak.
    name: "reservation leaked before many branches", context: .kprobe,
    instructions: assemble { a in
      let out = a.newLabel()
      a.emit(.mov(.r6, .r1))
      a.emit(reserve(16))
      a.jump(if: .eq, .r0, .immediate(0), to: out)
      for branch in 1...24 {
        let skip = a.newLabel()
        a.emit(.load(.double, .r2, .r6, offset: Int16(8 * (branch % 16))))
        a.jump(if: .eq, .r2, .immediate(0), to: skip)
        a.emit(.storeImmediate(.double, .fp, offset: Int16(-8 * branch), Int32(branch)))
        a.bind(skip)
      }
      a.bind(out)
      a.emit(returnZero)
    },
    rejection: "neither submitted nor discarded"),
  VerifierCase(
    name: "reservation leaked on one path", context: .kprobe,
    instructions: assemble { a in
      let out = a.newLabel()
      let skip = a.newLabel()
      a.emit(.load(.double, .r7, .r1, offset: 0))
      a.emit(reserve(16))
      a.emit(.mov(.r6, .r0))
      a.jump(if: .eq, .r6, .immediate(0), to: out)
      a.jump(if: .eq, .r7, .immediate(0), to: skip)
      a.emit(submitR6)
      a.bind(skip)
      a.bind(out)
      a.emit(returnZero)
    },
    rejection: "neither submitted nor discarded"),
  VerifierCase(
    name: "reservation discarded on the other path", context: .kprobe,
    instructions: assemble { a in
      let out = a.newLabel()
      let discard = a.newLabel()
      a.emit(.load(.double, .r7, .r1, offset: 0))
      a.emit(reserve(16))
      a.emit(.mov(.r6, .r0))
      a.jump(if: .eq, .r6, .immediate(0), to: out)
      a.jump(if: .eq, .r7, .immediate(0), to: discard)
      a.emit(submitR6)
      a.emit(returnZero)
      a.bind(discard)
      a.emit([.mov(.r1, .r6), .mov(.r2, 0), call(.ringbufDiscard)])
      a.bind(out)
      a.emit(returnZero)
    }),
  VerifierCase(
    name: "reservation used without a null check", context: .kprobe,
    instructions: reserve(16) + [.storeImmediate(.double, .r0, offset: 0, 1)] + returnZero,
    rejection: "uses the ring buffer reservation in r0 without checking that it succeeded"),
  VerifierCase(
    name: "reservation submitted without a null check", context: .kprobe,
    instructions: reserve(16) + [.mov(.r6, .r0)] + submitR6 + returnZero,
    rejection: "passes the ring buffer reservation in r1 to bpf_ringbuf_submit without checking that it succeeded"),
  VerifierCase(
    name: "reservation used after submit", context: .kprobe,
    instructions: assemble { a in
      let out = a.newLabel()
      a.emit(reserve(16))
      a.emit(.mov(.r6, .r0))
      a.jump(if: .eq, .r6, .immediate(0), to: out)
      a.emit(submitR6)
      a.emit(.storeImmediate(.double, .r6, offset: 0, 1))
      a.bind(out)
      a.emit(returnZero)
    },
    rejection: "uses ring buffer memory in r6 after it was submitted or discarded"),
  VerifierCase(
    name: "submit leaves r0 unset", context: .kprobe,
    instructions: assemble { a in
      let out = a.newLabel()
      a.emit(reserve(16))
      a.emit(.mov(.r6, .r0))
      a.jump(if: .eq, .r6, .immediate(0), to: out)
      a.emit(submitR6)
      a.emit(.exit)
      a.bind(out)
      a.emit(returnZero)
    },
    rejection: "exits without setting r0"),
  VerifierCase(
    name: "reservation size not constant", context: .kprobe,
    instructions: [.load(.double, .r2, .r1, offset: 0), .loadMapFD(.r1, fd: VerifierCase.events), .mov(.r3, 0), call(.ringbufReserve)]
      + returnZero,
    rejection: "passes a number that is not a known constant as argument 2 (r2) of bpf_ringbuf_reserve"),
  VerifierCase(
    name: "reservation flags not zero", context: .kprobe,
    instructions: reserve(16, flags: 1) + returnZero,
    rejection: "passes the number 1 as argument 3 (r3) of bpf_ringbuf_reserve, which must be 0"),
  VerifierCase(
    name: "reservation written past its end", context: .kprobe,
    instructions: assemble { a in
      let out = a.newLabel()
      a.emit(reserve(16))
      a.emit(.mov(.r6, .r0))
      a.jump(if: .eq, .r6, .immediate(0), to: out)
      a.emit(.storeImmediate(.double, .r6, offset: 16, 1))
      a.emit(submitR6)
      a.bind(out)
      a.emit(returnZero)
    },
    rejection: "writes 8 bytes at offset 16 of a 16-byte ring buffer reservation"),
  VerifierCase(
    name: "moved reservation submitted", context: .kprobe,
    instructions: assemble { a in
      let out = a.newLabel()
      a.emit(reserve(16))
      a.emit(.mov(.r6, .r0))
      a.jump(if: .eq, .r6, .immediate(0), to: out)
      a.emit([.add(.r6, 8)])
      a.emit(submitR6)
      a.bind(out)
      a.emit(returnZero)
    },
    rejection: "passes ring buffer memory moved by 8 bytes to bpf_ringbuf_submit"),
  VerifierCase(
    name: "probe_read_kernel into a reservation", context: VerifierCase.schedSwitch,
    instructions: assemble { a in
      let out = a.newLabel()
      a.emit(.load(.double, .r7, .r1, offset: 8))
      a.emit(reserve(32))
      a.emit(.mov(.r6, .r0))
      a.jump(if: .eq, .r6, .immediate(0), to: out)
      a.emit([.mov(.r1, .r6), .add(.r1, 16), .mov(.r2, 16), .mov(.r3, .r7), call(.probeReadKernelString)])
      a.emit(submitR6)
      a.bind(out)
      a.emit(returnZero)
    }),
  VerifierCase(
    name: "ring buffer output from the stack", context: .kprobe,
    instructions: [
      .storeImmediate(.double, .fp, offset: -8, 1), .loadMapFD(.r1, fd: VerifierCase.events), .mov(.r2, .fp),
      .add(.r2, -8), .mov(.r3, 8), .mov(.r4, 0), call(.ringbufOutput),
    ] + returnZero),
  VerifierCase(
    name: "ring buffer output to a hash map", context: .kprobe,
    instructions: [
      .storeImmediate(.double, .fp, offset: -8, 1), .loadMapFD(.r1, fd: VerifierCase.counts), .mov(.r2, .fp),
      .add(.r2, -8), .mov(.r3, 8), .mov(.r4, 0), call(.ringbufOutput),
    ] + returnZero,
    rejection: "passes map 'counts' (hash) as argument 1 (r1) of bpf_ringbuf_output"),
]

/// `count` independent if/else diamonds in a row: 2^count paths, which only state pruning
/// makes tractable.
func diamonds(_ count: Int) -> [Instruction] {
  assemble { a in
    a.emit([.mov(.r6, .r1), .mov(.r7, 0)])
    for index in 0..<count {
      let otherwise = a.newLabel()
      let join = a.newLabel()
      a.emit(.load(.double, .r2, .r6, offset: Int16(8 * (index % 21))))
      a.jump(if: .gt, .r2, .immediate(Int32(index)), to: otherwise)
      a.emit(.mov(.r3, 1))
      a.jump(to: join)
      a.bind(otherwise)
      a.emit(.mov(.r3, 2))
      a.bind(join)
      a.emit(.add(.r7, .r3))
    }
    a.emit([.mov(.r0, 0), .exit])
  }
}
