// DescriptorOutput against the kernel's pipes and devices: what a reader that leaves, a
// reader that never came back and a full device do to an output. The expectations are the
// kernel's (EPIPE, POLLERR on a pipe without readers, ENOSPC from /dev/full); no BPF, no root.

import Glibc
import Runtime
import Testing

@Suite("DescriptorOutput: pipes whose reader leaves, full devices")
struct DescriptorOutputTests {
  /// A pipe's two ends, read end first.
  func makePipe() throws -> (read: Int32, write: Int32) {
    var ends: [Int32] = [-1, -1]
    try #require(pipe(&ends) == 0, "pipe: errno \(errno)")
    // Close-on-exec at once: a process another test starts must not hold the read end (the
    // pipe would keep a reader). (pipe2 is not visible from Swift's Glibc.)
    for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
    return (ends[0], ends[1])
  }

  @Test("a write into a pipe whose reader left closes the output, with no failure and nothing lost")
  func writeAfterReaderLeft() throws {
    let (readEnd, writeEnd) = try makePipe()
    defer { close(writeEnd) }
    let output = DescriptorOutput(descriptor: writeEnd)
    output.writeLine("first", events: 1)
    output.flush()
    #expect(!output.isClosed && output.writtenEvents == 1)
    close(readEnd)
    output.writeLine("second", events: 1)
    output.flush()
    #expect(output.isClosed && output.failure == nil && output.lostEvents == 0)
  }

  @Test("with nothing to write, the pipe says its reader left (POLLERR), and readerLeft closes the output")
  func readerLeftWithoutWriting() throws {
    let (readEnd, writeEnd) = try makePipe()
    defer { close(writeEnd) }
    let output = DescriptorOutput(descriptor: writeEnd)
    let watched = try #require(output.pipeDescriptor, "a pipe is watched for its reader")
    #expect(output.waitingDescriptor == nil)
    var ready = pollfd(fd: watched, events: 0, revents: 0)
    #expect(poll(&ready, 1, 0) == 0, "a pipe with a reader reports nothing")
    close(readEnd)
    ready.revents = 0
    #expect(poll(&ready, 1, 0) == 1 && ready.revents & Int16(POLLERR) != 0, "POLLERR once the reader left")
    output.readerLeft()
    #expect(output.isClosed && output.failure == nil)
    // Nothing is written after that, and nothing counted as lost.
    output.writeLine("after", events: 1)
    output.flush()
    #expect(output.writtenEvents == 0 && output.lostEvents == 0)
  }

  @Test("/dev/full is not watched as a pipe, and a write to it fails with its reason and the event lost")
  func notPipes() throws {
    let full = open("/dev/full", O_WRONLY | O_CLOEXEC)
    try #require(full >= 0, "open /dev/full: errno \(errno)")
    defer { close(full) }
    let output = DescriptorOutput(descriptor: full)
    #expect(output.pipeDescriptor == nil)
    output.writeLine("event", events: 1)
    output.flush()
    #expect(output.isClosed && output.lostEvents == 1)
    #expect(output.failure?.hasSuffix(String(cString: strerror(ENOSPC))) == true, "\(output.failure ?? "no failure")")
  }
}
