internal import CLibBPF
import Glibc

/// Reads a perf event array map (one ring per CPU) with libbpf's perf buffer, calling
/// `handler` for each sample's raw data and counting the samples the kernel had to drop
/// because a ring was full. The bytes are valid only while the handler runs.
public final class PerfBufferReader: @unchecked Sendable {
  private final class Context {
    let handler: (UnsafeRawBufferPointer) -> Void
    var lost: UInt64 = 0
    /// Samples handled by the current `consume`.
    var handled = 0
    init(handler: @escaping (UnsafeRawBufferPointer) -> Void) { self.handler = handler }
  }

  private let buffer: OpaquePointer
  private let context: Unmanaged<Context>

  /// `pagesPerCPU` must be a power of two.
  public init(map: MapHandle, pagesPerCPU: Int, handler: @escaping (UnsafeRawBufferPointer) -> Void)
    throws(SystemError)
  {
    let context = Unmanaged.passRetained(Context(handler: handler))
    let sample: perf_buffer_sample_fn = { ctx, _, data, size in
      guard let ctx, let data else { return }
      let context = Unmanaged<Context>.fromOpaque(ctx).takeUnretainedValue()
      context.handled += 1
      context.handler(UnsafeRawBufferPointer(start: UnsafeRawPointer(data), count: Int(size)))
    }
    let lost: perf_buffer_lost_fn = { ctx, _, count in
      guard let ctx else { return }
      Unmanaged<Context>.fromOpaque(ctx).takeUnretainedValue().lost &+= count
    }
    guard let pb = perf_buffer__new(map.rawDescriptor, pagesPerCPU, sample, lost, context.toOpaque(), nil) else {
      let code = swt_errno()
      context.release()
      throw SystemError("open perf buffer", code: code)
    }
    self.buffer = pb
    self.context = context
  }

  deinit {
    perf_buffer__free(buffer)
    context.release()
  }

  /// Samples the kernel dropped because a CPU's ring was full.
  public var lostSamples: UInt64 { context.takeUnretainedValue().lost }

  /// The epoll descriptor that is readable while samples wait: poll(2) it together with
  /// other descriptors, then `consume`.
  public var readyDescriptor: Int32 { perf_buffer__epoll_fd(buffer) }

  /// Handles the samples waiting now, without blocking; returns how many. Each ring is read
  /// up to where the kernel had written when the call started, so the call ends even under
  /// load.
  @discardableResult
  public func consume() -> Int {
    let context = self.context.takeUnretainedValue()
    context.handled = 0
    // libbpf returns 0 or an error, not a count; an error means a ring's header is
    // unreadable, and the samples handled before it are still counted.
    _ = perf_buffer__consume(buffer)
    return context.handled
  }
}
