internal import CLibBPF
import Glibc

/// The bytes of one ring buffer record, valid only while the handler runs: reads copy out.
public struct EventBytes {
  private let base: UnsafeRawPointer
  public let count: Int

  fileprivate init(base: UnsafeRawPointer, count: Int) {
    self.base = base
    self.count = count
  }

  public func load<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
    guard offset >= 0, offset + MemoryLayout<T>.size <= count else { return 0 }
    return T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
  }

  public func bytes(at offset: Int, count length: Int) -> [UInt8] {
    guard offset >= 0, length >= 0, offset + length <= count else { return [] }
    return Array(UnsafeRawBufferPointer(start: base + offset, count: length))
  }
}

/// Reads a BPF ring buffer map with libbpf's consumer, calling `handler` for each record.
public final class RingBufferReader: @unchecked Sendable {
  private final class Context {
    let handler: (EventBytes) -> Void
    /// Records handled since the current poll or consume began.
    var handledInBatch = 0
    init(handler: @escaping (EventBytes) -> Void) { self.handler = handler }
  }

  /// Records handled per poll at most. libbpf's consumer keeps reading while records keep
  /// coming, so a producer faster than the handler would keep a poll going for as long as the
  /// traffic lasts; returning to the caller after a batch lets it flush output and notice a
  /// closed pipe, a signal or a deadline in time.
  static let batchLimit = 4096
  /// What the callback returns to end a batch: libbpf has then consumed the record and
  /// returns this value from the poll.
  private static let endOfBatch: Int32 = -EAGAIN

  private let ringBuffer: OpaquePointer
  private let context: Unmanaged<Context>

  public init(map: MapHandle, handler: @escaping (EventBytes) -> Void) throws(SystemError) {
    let context = Unmanaged.passRetained(Context(handler: handler))
    let callback: ring_buffer_sample_fn = { ctx, data, size in
      guard let ctx, let data else { return 0 }
      let context = Unmanaged<Context>.fromOpaque(ctx).takeUnretainedValue()
      context.handler(EventBytes(base: UnsafeRawPointer(data), count: size))
      context.handledInBatch += 1
      return context.handledInBatch >= RingBufferReader.batchLimit ? -EAGAIN : 0
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
  /// `batchLimit`; returns how many.
  @discardableResult
  public func poll(timeoutMilliseconds: Int32) throws(SystemError) -> Int {
    context.takeUnretainedValue().handledInBatch = 0
    let n = ring_buffer__poll(ringBuffer, timeoutMilliseconds)
    if n == Self.endOfBatch { return Self.batchLimit }
    if n < 0 {
      if -n == EINTR { return 0 }
      throw SystemError("poll ring buffer", code: -n)
    }
    return Int(n)
  }

  /// Handles every record available now without waiting (batch after batch).
  @discardableResult
  public func drain() -> Int {
    var total = 0
    while true {
      context.takeUnretainedValue().handledInBatch = 0
      let n = ring_buffer__consume(ringBuffer)
      if n == Self.endOfBatch {
        total += Self.batchLimit
        continue
      }
      return total + (n < 0 ? 0 : Int(n))
    }
  }
}
