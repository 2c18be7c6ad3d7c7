internal import CLibBPF
import Glibc

/// Reads a BPF ring buffer map, calling `handler` for each record. The record's bytes are
/// valid only while the handler runs: whatever it keeps, it copies. The handler returns false
/// to stop handing over records for this call (the record it was given is consumed all the
/// same), as when the output it writes to has no room.
///
/// The consumer is swtrace's own rather than libbpf's `ring_buffer`: libbpf maps the data
/// area twice in a row, so that a record that wraps around its end reads as one, and the
/// kernel fills the whole mapping at mmap time, so an 8 MiB buffer cost 16 MiB of resident
/// memory from the start (measured: 40 MiB peak against 24 for a spec without one). Here the
/// data is mapped once and the rare record that wraps is copied whole into a buffer first.
/// The protocol is the kernel's (kernel/bpf/ringbuf.c): a consumer page swtrace writes, a
/// producer page and the data it reads; each record is an 8-byte header (length, with a busy
/// and a discard bit) and its bytes, 8-byte aligned.
public final class RingBufferReader: @unchecked Sendable {
  private let handler: (UnsafeRawBufferPointer) -> Bool
  /// Keeps the map's descriptor open while it is mapped and polled.
  private let map: MapHandle
  private let pageSize: Int
  private let dataSize: Int
  /// The consumer position (the first page, writable).
  private let consumerPage: UnsafeMutableRawPointer
  /// The producer position, followed one page later by the data.
  private let producerArea: UnsafeMutableRawPointer
  private var data: UnsafeRawPointer { UnsafeRawPointer(producerArea) + pageSize }
  /// Where a record that wraps around the end of the data is put together.
  private var wrapped: UnsafeMutableRawBufferPointer?

  /// Header bits (uapi linux/bpf.h): the producer has reserved but not yet submitted the
  /// record, or discarded it.
  private static let busyBit: UInt32 = 1 << 31
  private static let discardBit: UInt32 = 1 << 30
  private static let headerSize = 8

  public init(map: MapHandle, handler: @escaping (UnsafeRawBufferPointer) -> Bool) throws(SystemError) {
    let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
    let dataSize = map.maxEntries
    guard map.type == .ringBuffer, dataSize > 0, dataSize % pageSize == 0, dataSize & (dataSize - 1) == 0 else {
      throw SystemError("read ring buffer \(map.maxEntries) bytes", code: EINVAL)
    }
    guard let consumer = mmap(nil, pageSize, PROT_READ | PROT_WRITE, MAP_SHARED, map.rawDescriptor, 0),
      consumer != MAP_FAILED
    else { throw SystemError("map the ring buffer's consumer page", code: errno) }
    guard
      let producer = mmap(nil, pageSize + dataSize, PROT_READ, MAP_SHARED, map.rawDescriptor, off_t(pageSize)),
      producer != MAP_FAILED
    else {
      let code = errno
      munmap(consumer, pageSize)
      throw SystemError("map the ring buffer (\(dataSize) bytes)", code: code)
    }
    self.handler = handler
    self.map = map
    self.pageSize = pageSize
    self.dataSize = dataSize
    self.consumerPage = consumer
    self.producerArea = producer
  }

  deinit {
    munmap(consumerPage, pageSize)
    munmap(producerArea, pageSize + dataSize)
    wrapped?.deallocate()
  }

  /// Handles the records available now, at most `maxRecords`, without waiting; returns how
  /// many. The bound matters: when the kernel writes faster than the handler reads, the
  /// records never run out, and the caller's loop could not notice a signal, a deadline or a
  /// closed output until the traffic stops.
  @discardableResult
  public func consume(maxRecords: Int = 16384) -> Int {
    var handled = 0
    let mask = UInt(dataSize - 1)
    var consumer = swt_load_acquire_ulong(consumerPage)
    while handled < maxRecords {
      let producer = swt_load_acquire_ulong(producerArea)
      guard consumer < producer else { break }
      while consumer < producer {
        let header = swt_load_acquire_u32(data + Int(consumer & mask))
        // Reserved and not yet submitted: it and everything after it wait for the next call.
        if header & Self.busyBit != 0 { return handled }
        let length = Int(header & ~(Self.busyBit | Self.discardBit))
        let start = consumer &+ UInt(Self.headerSize)
        consumer &+= UInt((length + Self.headerSize + 7) & ~7)
        var goOn = true
        if header & Self.discardBit == 0 {
          goOn = handler(record(at: Int(start & mask), length: length))
          handled += 1
        }
        // Handed back at once: the kernel can write into the space while the rest is read.
        swt_store_release_ulong(consumerPage, consumer)
        if !goOn || handled >= maxRecords { return handled }
      }
    }
    return handled
  }

  /// The record's bytes: in place, or put together when they wrap around the end of the data.
  private func record(at offset: Int, length: Int) -> UnsafeRawBufferPointer {
    if offset + length <= dataSize { return UnsafeRawBufferPointer(start: data + offset, count: length) }
    if (wrapped?.count ?? 0) < length {
      wrapped?.deallocate()
      wrapped = .allocate(byteCount: length, alignment: 8)
    }
    let whole = wrapped!
    let head = dataSize - offset
    whole.baseAddress!.copyMemory(from: data + offset, byteCount: head)
    (whole.baseAddress! + head).copyMemory(from: data, byteCount: length - head)
    return UnsafeRawBufferPointer(start: whole.baseAddress, count: length)
  }

  /// Readable (poll(2)) while records wait: the map's own descriptor, which the kernel wakes
  /// when a program submits with a wake-up.
  public var readyDescriptor: Int32 { map.rawDescriptor }
}
