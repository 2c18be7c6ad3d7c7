import BPF
import Sema

/// Packet captures (`-w`) and kernel stacks (`kstack`): the code paths of issue 21, apart from
/// the rest of code generation.
///
/// A capture fills a ring buffer record laid out by `CaptureLayout`: the header, the comment's
/// values and the skb fields, stored the way a print stores its values. From those fields the
/// program chooses where the capture starts (the MAC header when it is set, at or before
/// `skb->data` and at most `CaptureLayout.prefixCapacity` bytes before it; else the network
/// header under the same conditions; else `data` itself), copies the bytes from there to
/// `data` into the record, and then the packet from `data` on, up to `--snaplen` bytes in all:
///
/// - tracing programs (tp_btf, fentry, fexit) hand the skb to `bpf_skb_output`, which copies
///   linear and paged data alike (the kernel's `skb_copy_bits`) after the record into a perf
///   ring; the ring buffer record was only the buffer for it and is discarded;
/// - kprobes see the skb as a plain address, so they copy what is linear with
///   `bpf_probe_read_kernel` into the record, after its fixed part, and submit it.
///
/// Registers: r8 holds the record; the program's code between helper calls keeps what it
/// computed in the record, not in registers, since every call clobbers r1-r5.
extension ProgramBuilder {
  /// `BPF_F_CURRENT_CPU`: write to this CPU's ring of the perf event array.
  static let currentCPU: Int32 = -1

  mutating func capture(_ capture: PacketCapture, layout: CaptureLayout) throws(CodeGenError) {
    let values = capture.comment(at: attachPoint.qualifiedName).map(\.value) + capture.geometry.values
    try prefetchSharedReads(values)
    let snaplen = auxiliary.snaplen
    let size = layout.metaSize + (isTracing ? 0 : snaplen)
    try emitRecord(size: size, lossCounter: LossCounter.packets, discarding: isTracing) { builder throws(CodeGenError) in
      builder.asm.emit(.call(helper: HelperFunction.ktimeGetNanoseconds.rawValue))
      builder.asm.emit(.store(.double, Self.record, offset: Int16(EventHeader.timestampOffset), .r0))
      builder.asm.emit(.call(helper: HelperFunction.getSMPProcessorID.rawValue))
      builder.asm.emit(.store(.word, Self.record, offset: Int16(EventHeader.cpuOffset), .r0))
      builder.storeHeaderTail(layoutID: layout.id | captureLayoutFlag, probeID: builder.probeID)
      // The comment names the packet by its skb, with or without -f paths.
      builder.asm.emit(.store(.double, Self.record, offset: Int16(EventHeader.skbOffset), Self.skb))
      let fields =
        layout.comment + [layout.length, layout.pagedLength, layout.macHeader, layout.networkHeader, layout.head, layout.data]
        + (layout.deviceType.map { [$0] } ?? [])
      for (value, field) in zip(values, fields) {
        builder.asm.currentRange = value.range
        try builder.store(value, into: field)
      }
      builder.asm.currentRange = layout.range
      builder.temps.spillAll(&builder.frame, &builder.asm)
      builder.copyPrefix(layout, snaplen: snaplen)
      if builder.isTracing {
        builder.outputPacket(layout, snaplen: snaplen)
      } else {
        builder.copyLinearData(layout, snaplen: snaplen)
      }
    }
  }

  /// Chooses the capture's start and copies the bytes from there to `data` into the record.
  private mutating func copyPrefix(_ layout: CaptureLayout, snaplen: Int) {
    let record = Self.record
    let capacity = Int32(min(layout.prefixCapacity, snaplen))
    // r1 = data - head: where the skb's data starts in its buffer.
    asm.emit(.load(.double, .r1, record, offset: Int16(layout.data.offset)))
    asm.emit(.load(.double, .r2, record, offset: Int16(layout.head.offset)))
    asm.emit(.alu64(.sub, .r1, .register(.r2)))
    // r3 = the start, `data` unless a header qualifies.
    asm.emit(.mov(.r3, .r1))
    let chosen = asm.newLabel()
    let tryNetwork = asm.newLabel()
    header(layout.macHeader, unset: 0xffff, capacity: layout.prefixCapacity, otherwise: tryNetwork, chosen: chosen)
    asm.bind(tryNetwork)
    // A network header at offset 0 was never set (alloc_skb zeroes it).
    header(layout.networkHeader, unset: 0, capacity: layout.prefixCapacity, otherwise: chosen, chosen: chosen)
    asm.bind(chosen)
    asm.emit(.store(.word, record, offset: Int16(layout.startOffset), .r3))
    // r4 = the prefix's length: at most its capacity (and the snap length) by construction,
    // said again so the verifier knows it.
    asm.emit(.mov(.r4, .r1))
    asm.emit(.alu64(.sub, .r4, .register(.r3)))
    let fits = asm.newLabel()
    asm.jump(if: .le, .r4, .immediate(capacity), to: fits)
    asm.emit(.mov(.r4, capacity))
    asm.bind(fits)
    asm.emit(.store(.word, record, offset: Int16(layout.prefixLengthOffset), .r4))
    let done = asm.newLabel()
    asm.jump(if: .eq, .r4, .immediate(0), to: done)
    // bpf_probe_read_kernel(record + prefix, length, head + start)
    asm.emit(.mov(.r2, .r4))
    asm.emit(.load(.double, .r4, record, offset: Int16(layout.head.offset)))
    asm.emit(.alu64(.add, .r3, .register(.r4)))
    asm.emit(.mov(.r1, record))
    asm.emit(.add(.r1, Int32(layout.prefixOffset)))
    asm.emit(.call(helper: HelperFunction.probeReadKernel.rawValue))
    // A failed read leaves zeros: say that no prefix was copied.
    asm.jump(if: .sge, .r0, .immediate(0), to: done)
    asm.emit(.storeImmediate(.word, record, offset: Int16(layout.prefixLengthOffset), 0))
    asm.bind(done)
  }

  /// r3 = the header offset in `field` when it is set, at or before `data` (r1) and at most
  /// `capacity` bytes before it; otherwise jumps to `otherwise` with r3 unchanged.
  private mutating func header(_ field: EventField, unset: Int32, capacity: Int, otherwise: Label, chosen: Label) {
    asm.emit(.load(.half, .r2, Self.record, offset: Int16(field.offset)))
    asm.jump(if: .eq, .r2, .immediate(unset), to: otherwise)
    asm.jump(if: .gt, .r2, .register(.r1), to: otherwise)
    asm.emit(.mov(.r4, .r1))
    asm.emit(.alu64(.sub, .r4, .register(.r2)))
    asm.jump(if: .gt, .r4, .immediate(Int32(capacity)), to: otherwise)
    asm.emit(.mov(.r3, .r2))
    asm.jump(to: chosen)
  }

  /// r2 = what the snap length leaves after the prefix. The prefix's length is read back
  /// from the record, so it is bounded again for the verifier: r2 is then known to lie
  /// between the snap length less the prefix's capacity and the snap length.
  private mutating func remainingSnapLength(_ layout: CaptureLayout, snaplen: Int) {
    let capacity = Int32(min(layout.prefixCapacity, snaplen))
    asm.emit(.load(.word, .r4, Self.record, offset: Int16(layout.prefixLengthOffset)))
    let bounded = asm.newLabel()
    asm.jump(if: .le, .r4, .immediate(capacity), to: bounded)
    asm.emit(.mov(.r4, capacity))
    asm.bind(bounded)
    asm.emit(.mov(.r2, Int32(snaplen)))
    asm.emit(.alu64(.sub, .r2, .register(.r4)))
  }

  /// r3 = min(r3, r2), stored as the captured length; r2 is at most the snap length, and so
  /// is r3 after, which a comparison with the constant first makes known to the verifier.
  private mutating func capLength(_ layout: CaptureLayout, snaplen: Int) {
    let withinSnap = asm.newLabel()
    asm.jump(if: .le, .r3, .immediate(Int32(snaplen)), to: withinSnap)
    asm.emit(.mov(.r3, Int32(snaplen)))
    asm.bind(withinSnap)
    let fits = asm.newLabel()
    asm.jump(if: .le, .r3, .register(.r2), to: fits)
    asm.emit(.mov(.r3, .r2))
    asm.bind(fits)
    asm.emit(.store(.word, Self.record, offset: Int16(layout.capturedOffset), .r3))
  }

  /// Tracing programs: `bpf_skb_output(skb, packets, BPF_F_CURRENT_CPU | length << 32,
  /// record, metaSize)`, for min(skb->len, what the snap length leaves) bytes from `data`.
  private mutating func outputPacket(_ layout: CaptureLayout, snaplen: Int) {
    remainingSnapLength(layout, snaplen: snaplen)
    asm.emit(.load(.word, .r3, Self.record, offset: Int16(layout.length.offset)))
    capLength(layout, snaplen: snaplen)
    asm.emit(.alu64(.lsh, .r3, .immediate(32)))
    // A 32-bit move zero-extends: the low half all ones, the high half clear.
    asm.emit(.alu32(.mov, .r4, .immediate(Self.currentCPU)))
    asm.emit(.alu64(.or, .r3, .register(.r4)))
    asm.emit(.mov(.r1, Self.skb))
    asm.emit(.loadMapFD(.r2, fd: auxiliary.packets!))
    asm.emit(.mov(.r4, Self.record))
    asm.emit(.mov(.r5, Int32(layout.metaSize)))
    asm.emit(.call(helper: HelperFunction.skbOutput.rawValue))
    let written = asm.newLabel()
    asm.jump(if: .sge, .r0, .immediate(0), to: written)
    incrementCounter(in: StandardMap.lost, index: LossCounter.packets)
    asm.bind(written)
  }

  /// kprobes: min(linear bytes from `data`, what the snap length leaves) copied after the
  /// record's fixed part.
  private mutating func copyLinearData(_ layout: CaptureLayout, snaplen: Int) {
    remainingSnapLength(layout, snaplen: snaplen)
    // Linear bytes from data: len - data_len.
    asm.emit(.load(.word, .r3, Self.record, offset: Int16(layout.length.offset)))
    asm.emit(.load(.word, .r5, Self.record, offset: Int16(layout.pagedLength.offset)))
    asm.emit(.alu64(.sub, .r3, .register(.r5)))
    capLength(layout, snaplen: snaplen)
    let done = asm.newLabel()
    asm.jump(if: .eq, .r3, .immediate(0), to: done)
    asm.emit(.mov(.r2, .r3))
    asm.emit(.load(.double, .r3, Self.record, offset: Int16(layout.data.offset)))
    asm.emit(.mov(.r1, Self.record))
    asm.emit(.add(.r1, Int32(layout.metaSize)))
    asm.emit(.call(helper: HelperFunction.probeReadKernel.rawValue))
    asm.jump(if: .sge, .r0, .immediate(0), to: done)
    asm.emit(.storeImmediate(.word, Self.record, offset: Int16(layout.capturedOffset), 0))
    asm.bind(done)
  }

  /// `kstack`: `bpf_get_stackid(ctx, stacks, 0)`, an id into the stack map or a negative error.
  mutating func stackID() -> Temp {
    temps.spillAll(&frame, &asm)
    asm.emit(.mov(.r1, Self.context))
    asm.emit(.loadMapFD(.r2, fd: auxiliary.stacks!))
    asm.emit(.mov(.r3, 0))
    asm.emit(.call(helper: HelperFunction.getStackID.rawValue))
    let (temp, register) = temps.allocate(&frame, &asm)
    asm.emit(.mov(register, .r0))
    return temp
  }
}
