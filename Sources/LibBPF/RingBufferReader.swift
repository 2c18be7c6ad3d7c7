internal import CLibBPF
import Glibc

/// Reads a BPF ring buffer map with libbpf's consumer, calling `handler` for each record. The
/// record's bytes are valid only while the handler runs: whatever it keeps, it copies. The
/// handler returns false to stop handing over records for this call (the record it was given
/// is consumed all the same), as when the output it writes to has no room.
public final class RingBufferReader: @unchecked Sendable {
  private final class Context {
    let handler: (UnsafeRawBufferPointer) -> Bool
    /// Records the current call may hand over before returning to its caller.
    var budget = Int.max
    var handled = 0
    init(handler: @escaping (UnsafeRawBufferPointer) -> Bool) { self.handler = handler }
  }

  /// What the callback returns to make libbpf stop early; the record it was given is consumed.
  private static let budgetSpent = -ECANCELED

  private let ringBuffer: OpaquePointer
  private let context: Unmanaged<Context>

  public init(map: MapHandle, handler: @escaping (UnsafeRawBufferPointer) -> Bool) throws(SystemError) {
    let context = Unmanaged.passRetained(Context(handler: handler))
    let callback: ring_buffer_sample_fn = { ctx, data, size in
      guard let ctx, let data else { return 0 }
      let context = Unmanaged<Context>.fromOpaque(ctx).takeUnretainedValue()
      let goOn = context.handler(UnsafeRawBufferPointer(start: UnsafeRawPointer(data), count: size))
      context.handled += 1
      return !goOn || context.handled >= context.budget ? RingBufferReader.budgetSpent : 0
    }
    guard let rb = ring_buffer__new(map.rawDescriptor, callback, context.toOpaque(), nil) else {
      let code = swt_errno()
      context.release()
      throw SystemError("open ring buffer", code: code)
    }
    self.ringBuffer = rb
    self.context = context
  }

  deinit {
    ring_buffer__free(ringBuffer)
    context.release()
  }

  /// Waits up to `timeoutMilliseconds` for records and handles those available, at most
  /// `maxRecords`; returns how many. The bound matters: libbpf keeps consuming for as long as
  /// new records arrive, so when the kernel writes faster than the handler reads, an unbounded
  /// poll never returns, and the caller's loop cannot notice a signal, a deadline or a closed
  /// output until the traffic stops.
  @discardableResult
  public func poll(timeoutMilliseconds: Int32, maxRecords: Int = 16384) throws(SystemError) -> Int {
    let context = self.context.takeUnretainedValue()
    context.handled = 0
    context.budget = maxRecords
    defer { context.budget = .max }
    let n = ring_buffer__poll(ringBuffer, timeoutMilliseconds)
    if n == Self.budgetSpent { return context.handled }
    if n < 0 {
      if -n == EINTR { return 0 }
      throw SystemError("poll ring buffer", code: -n)
    }
    return Int(n)
  }

  /// Handles the records available now, at most `maxRecords`, without waiting; returns how
  /// many. Bounded for the same reason as `poll`.
  @discardableResult
  public func consume(maxRecords: Int = 16384) -> Int {
    let context = self.context.takeUnretainedValue()
    context.handled = 0
    context.budget = maxRecords
    defer { context.budget = .max }
    let n = ring_buffer__consume(ringBuffer)
    if n == Self.budgetSpent { return context.handled }
    return n < 0 ? context.handled : Int(n)
  }

  /// The epoll descriptor that is readable while records wait: poll(2) it together with
  /// other descriptors, then `consume`.
  public var readyDescriptor: Int32 { ring_buffer__epoll_fd(ringBuffer) }
}
