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

  /// Everything the pipe holds now, read without waiting.
  func readAll(_ readEnd: Int32) -> [UInt8] {
    _ = fcntl(readEnd, F_SETFL, fcntl(readEnd, F_GETFL) | O_NONBLOCK)
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
      let count = chunk.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
      guard count > 0 else { break }
      bytes += chunk[..<count]
    }
    return bytes
  }

  /// Event line `index`: 100 bytes with its newline, so that a pipe of 64 KiB (not a
  /// multiple of 100) fills partway through one.
  func eventLine(_ index: Int) -> String {
    let start = "event \(index) "
    return start + String(repeating: "x", count: 99 - start.utf8.count)
  }

  /// Appends event lines into a pipe nobody reads until the output holds bytes the pipe had
  /// no room for; returns how many were appended.
  func fill(_ output: DescriptorOutput) -> Int {
    var appended = 0
    while output.pendingBytes == 0 || appended < 1000 {
      output.writeLine(eventLine(appended), events: 1)
      appended += 1
      output.flush()
    }
    return appended
  }

  @Test("abandoned partway through a line (a stalled reader), the output keeps that line's rest: the line written after it starts a line of its own")
  func abandonKeepsTheCutLinesRest() throws {
    let (readEnd, writeEnd) = try makePipe()
    defer { close(readEnd) }
    let output = DescriptorOutput(descriptor: writeEnd)
    let appended = fill(output)
    let written = Int(output.writtenEvents)
    output.abandon()
    // A pipe takes what fits of a write beyond PIPE_BUF: it holds the first part of a line
    // (64,032 bytes on 6.18: 640 lines and 32 bytes of the next), whose rest is kept.
    try #require(written > 0 && (1..<100).contains(output.pendingBytes), "\(written) written, \(output.pendingBytes) kept")
    #expect(Int(output.lostEvents) == appended - written, "the cut line counts as lost until its rest is written")
    output.writeLine("@n: 42")
    // The reader comes back: it gets the rest of the cut line, then the map line.
    var received = readAll(readEnd)
    #expect(output.drain(until: .now + .seconds(10), stall: nil))
    output.finish()
    close(writeEnd)
    received += readAll(readEnd)
    let text = String(decoding: received, as: UTF8.self)
    #expect(text.hasSuffix("\n"))
    let lines = text.split(separator: "\n").map(String.init)
    let events = lines.filter { $0.hasPrefix("event ") }
    #expect(events == (0..<events.count).map(eventLine), "every event line whole, in order")
    #expect(lines == events + ["@n: 42"], "nothing but whole event lines and the map line: \(lines.suffix(3))")
    #expect(Int(output.writtenEvents) == events.count && events.count == written + 1)
    #expect(Int(output.writtenEvents + output.lostEvents) == appended && !output.endsCut)
  }

  @Test("a cut line whose rest the reader never takes ends the output: nothing follows it, finish() says it is cut, its event is lost")
  func cutLineNeverCompleted() throws {
    let (readEnd, writeEnd) = try makePipe()
    defer { close(readEnd) }
    let output = DescriptorOutput(descriptor: writeEnd)
    let appended = fill(output)
    output.abandon()
    output.writeLine("@n: 42")
    #expect(!output.drain(until: .now + .milliseconds(100), stall: nil), "the pipe is still full")
    output.abandon()
    output.finish()
    close(writeEnd)
    #expect(output.endsCut)
    let text = String(decoding: readAll(readEnd), as: UTF8.self)
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let cut = lines.removeLast()
    #expect(lines == (0..<lines.count).map(eventLine), "every line before the cut one whole")
    #expect(!cut.isEmpty && eventLine(lines.count).hasPrefix(cut) && !text.contains("@n"), "the cut line last: \(cut)")
    #expect(Int(output.writtenEvents) == lines.count && Int(output.writtenEvents + output.lostEvents) == appended)
  }
}
