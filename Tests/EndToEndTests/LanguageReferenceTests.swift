// bpftrace's language constructs (issue 20), checked against bpftrace 0.17 itself: the same
// program text run by both at once over the same TCP connections between two namespaces
// (10.200.130-139.x), and their lines compared. Where bpftrace 0.17 lacks a construct (for
// over a range), the expected values come from the arithmetic of the loop, written out.

import Foundation
import Testing

@Suite("bpftrace's constructs, compared with bpftrace", .serialized)
struct LanguageReferenceTests {
  /// swtrace alone with `arguments`, running `traffic` (a shell script) once attached.
  static func swtrace(_ arguments: [String], traffic: String, scratch: ScratchDirectory) throws -> ProcessResult {
    try traffic.write(toFile: scratch.path("traffic.sh"), atomically: true, encoding: .utf8)
    return try ProcessRunner.run(
      try TestEnvironment.binary("swtrace"), ["-c", "/bin/sh " + scratch.path("traffic.sh")] + arguments, timeout: 120)
  }

  /// Operators, compound assignment, ++/--, ?:, a bounded while with break and continue,
  /// return, enum constants (TCP_CLOSE, SKB_DROP_REASON_NO_SOCKET), 1e6 and 1_000_000,
  /// ntop, bswap, uint16, comm/uid/gid, a lookup table filled in BEGIN and read and
  /// incremented in the kernel, print(@m, N) and clear in END.
  static let operatorsProgram = """
    BEGIN { @a[1] = 5; @a[2] = 7; @a[3] = 1; }
    tracepoint:sock:inet_sock_set_state / args->protocol == 6 && args->dport == 9130 /
    {
      $x = args->newstate == TCP_CLOSE ? 1 : 2;
      $n = 0;
      $n += 3; $n++; $n--; $n *= 5; $n -= 1; $n /= 2; $n %= 5; $n <<= 3; $n >>= 1; $n |= 1; $n &= 0xff; $n ^= 2;
      $j = 0;
      while ($j < 5) { $j++; if ($j == 3) { continue } if ($j == 4) { break } $n += $j; }
      printf("%s:%d -> %s:%d %d->%d x=%d n=%d j=%d a=%d\\n", ntop(args->saddr), args->sport, ntop(args->daddr), args->dport, args->oldstate, args->newstate, $x, $n, $j, @a[2]);
      @a[2]++;
      if ($x == 1) { return; }
      printf("%d %d %d %d %s uid=%d gid=%d\\n", bswap((uint16)args->dport), 1e6, 1_000_000, SKB_DROP_REASON_NO_SOCKET, comm, uid, gid);
    }
    END { print(@a, 2); clear(@a); }
    """

  @Test("operators, while, return, enum constants and BEGIN's lookup table print what bpftrace prints", .needsBpftrace)
  func operatorsAndControlFlow() throws {
    let pair = try NetworkNamespacePair(subnet: 130)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("lang-ops")
    defer { scratch.remove() }
    let run = try BpftraceReference.run(
      program: Self.operatorsProgram, traffic: tcpExchangeScript(pair: pair, port: 9130, count: 2), scratch: scratch)
    try #require(run.bpftrace.status == 0, "\(run)")
    // Two connections: the client's socket goes CLOSE->SYN_SENT->ESTABLISHED->FIN_WAIT1->
    // FIN_WAIT2->CLOSE (5 transitions with dport 9130), each with its two lines but the last.
    let transitions = run.bpftraceLines.filter { $0.contains(" -> \(pair.addressB):9130 ") }
    #expect(transitions.count >= 10, "\(run)")
    #expect(run.bpftraceLines.contains { $0.hasPrefix("43555 1000000 1000000 3 ") }, "\(run)")
    #expect(run.swtraceLines == run.bpftraceLines, "\(run)")
  }

  @Test("for over a constant range, with break and continue, sums what the loop's arithmetic says", .needsTracing)
  func forRange() throws {
    let pair = try NetworkNamespacePair(subnet: 131)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("lang-for")
    defer { scratch.remove() }
    // Per event: squares of 0..4 (30); 0..9 skipping odd numbers and stopping at 8 (0+2+4+6 = 12);
    // a nested loop counting 3 x 4 = 12.
    let spec = """
      tracepoint:sock:inet_sock_set_state / args.protocol == 6 && args.dport == 9131 && args.newstate == TCP_SYN_SENT /
      {
        $s = 0;
        for ($i : 0..5) { $s += $i * $i; }
        $e = 0;
        for ($k : 0..10) { if ($k % 2 == 1) { continue } if ($k == 8) { break } $e += $k; }
        $c = 0;
        for ($p : 0..3) { for ($q : 10..14) { $c++; } }
        printf("s=%d e=%d c=%d\\n", $s, $e, $c);
      }
      """
    let result = try Self.swtrace(["-e", spec], traffic: tcpExchangeScript(pair: pair, port: 9131, count: 3), scratch: scratch)
    try #require(result.status == 0, "\(result)")
    // One line per SYN_SENT: three connections, and a refused attempt when the client is
    // faster than the server's listen().
    #expect(result.stdoutLines.count >= 3, "\(result)")
    #expect(result.stdoutLines.allSatisfy { $0 == "s=30 e=12 c=12" }, "\(result)")
  }

  @Test("str() of a __data_loc field, cgroup, uid, gid, sizeof, strftime, nsecs and elapsed print what bpftrace prints", .needsBpftrace)
  func builtins() throws {
    let pair = try NetworkNamespacePair(subnet: 132)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("lang-builtins")
    defer { scratch.remove() }
    let program = """
      tracepoint:net:net_dev_queue / str(args->name) == "\(pair.vethA)" /
      {
        printf("%s len=%d uid=%d gid=%d cg=%d sz=%d y=%s t=%d e=%d\\n", str(args->name), args->len, uid, gid, cgroup,
          sizeof(struct sock), strftime("%Y", nsecs), nsecs > 1000, elapsed > 0);
      }
      """
    let run = try BpftraceReference.run(
      program: program, traffic: tcpExchangeScript(pair: pair, port: 9132), scratch: scratch)
    try #require(run.bpftrace.status == 0, "\(run)")
    #expect(run.bpftraceLines.count >= 4, "a TCP exchange queues at least SYN, data, ACK and FIN on \(pair.vethA): \(run)")
    #expect(run.bpftraceLines.allSatisfy { $0.hasPrefix(pair.vethA + " len=") }, "\(run)")
    // bpftrace attaches before swtrace and detaches after it: the veth's own packets as it
    // comes up (IPv6 neighbour discovery) may reach bpftrace alone. What swtrace saw is one
    // stretch of what bpftrace saw, with the TCP exchange in it (SYN, data, FIN and ACKs).
    let seen = run.swtraceLines
    #expect(seen.count >= 4, "\(run)")
    let stretch = (0...max(0, run.bpftraceLines.count - seen.count)).contains {
      Array(run.bpftraceLines.dropFirst($0).prefix(seen.count)) == seen
    }
    #expect(stretch, "\(run)")
  }

  @Test("sizeof and offsetof are what the kernel's BTF says (bpftool's raw dump)", .needsTracing)
  func sizeofAndOffsetof() throws {
    let dump = try ProcessRunner.run("bpftool", ["btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "raw"], timeout: 60)
    try #require(dump.status == 0, "\(dump)")
    // [N] STRUCT 'sock' size=S vlen=V, then its members, one per line: 'name' type_id=T bits_offset=B
    let lines = dump.stdoutLines
    let start = try #require(lines.firstIndex { $0.contains("] STRUCT 'sock' size=") }, "no struct sock in BTF")
    let size = try #require(lines[start].split(separator: " ").first { $0.hasPrefix("size=") }.flatMap { Int($0.dropFirst(5)) })
    let member = try #require(
      lines[(start + 1)...].prefix { $0.hasPrefix("\t") }.first { $0.contains("'sk_mark' ") }, "no sk_mark in struct sock")
    let bits = try #require(member.split(separator: " ").first { $0.hasPrefix("bits_offset=") }.flatMap { Int($0.dropFirst(12)) })
    let pair = try NetworkNamespacePair(subnet: 133)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("lang-sizeof")
    defer { scratch.remove() }
    let spec = """
      tracepoint:sock:inet_sock_set_state / args.dport == 9133 && args.newstate == TCP_SYN_SENT /
      { printf("%d %d\\n", sizeof(struct sock), offsetof(struct sock, sk_mark)); }
      """
    let result = try Self.swtrace(["-e", spec], traffic: tcpExchangeScript(pair: pair, port: 9133), scratch: scratch)
    try #require(result.status == 0, "\(result)")
    #expect(!result.stdoutLines.isEmpty && result.stdoutLines.allSatisfy { $0 == "\(size) \(bits / 8)" }, "\(result)")
  }

  @Test("positional parameters: $1 as a number in the filter, $2 as a string, $# their count", .needsTracing)
  func positionalParameters() throws {
    let pair = try NetworkNamespacePair(subnet: 138)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("lang-positional")
    defer { scratch.remove() }
    let spec = #"tracepoint:sock:inet_sock_set_state /args.dport == $1 && args.oldstate == TCP_SYN_SENT && args.newstate == TCP_ESTABLISHED/ { printf("%s %d %d\n", $2, $#, args.dport) }"#
    let result = try Self.swtrace(["-e", spec, "9138", "hello"], traffic: tcpExchangeScript(pair: pair, port: 9138), scratch: scratch)
    try #require(result.status == 0, "\(result)")
    #expect(result.stdoutLines == ["hello 2 9138"], "\(result)")
  }

  // A map with keys: bpftrace's clear() of a key-less map leaves it printing as 0, swtrace's
  // empties it (grammar/README.md, where swtrace differs).
  @Test("END's printf does not suppress the maps: those END left print after it, as bpftrace prints them", .needsBpftrace)
  func endThenMaps() throws {
    let pair = try NetworkNamespacePair(subnet: 139)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("lang-end")
    defer { scratch.remove() }
    let program = """
      tracepoint:sock:inet_sock_set_state / args->dport == 9139 / { @transitions[args->dport] = count(); @cleared[args->sport] = count(); }
      END { printf("end of %s\\n", "trace"); clear(@cleared); }
      """
    let run = try BpftraceReference.run(
      program: program, traffic: tcpExchangeScript(pair: pair, port: 9139), scratch: scratch)
    try #require(run.bpftrace.status == 0, "\(run)")
    #expect(run.bpftraceLines.first == "end of trace" && run.bpftraceLines.count == 2, "\(run)")
    #expect(run.bpftraceLines.last?.hasPrefix("@transitions[9139]: ") == true, "\(run)")
    #expect(run.swtraceLines == run.bpftraceLines, "\(run)")
  }

  @Test("ppid is the connecting process's parent, has_key sees BEGIN's table, buf/%r prints the address bytes", .needsTracing)
  func ppidHasKeyAndBuffers() throws {
    let pair = try NetworkNamespacePair(subnet: 131)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("lang-misc")
    defer { scratch.remove() }
    // The client says who it is: its pid and its parent's, as the kernel tells Python.
    let client = """
      import os, socket, time
      open("\(scratch.path("client.txt"))", "w").write("%d %d" % (os.getpid(), os.getppid()))
      for attempt in range(50):
          try:
              c = socket.create_connection(("\(pair.addressB)", 9141), timeout=5); break
          except ConnectionRefusedError:
              time.sleep(0.05)
      c.sendall(b"x"); c.recv(1); c.close()
      """
    let server = """
      import socket
      s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
      s.bind(("\(pair.addressB)", 9141)); s.listen(1); s.settimeout(5)
      a, _ = s.accept(); a.settimeout(5); a.sendall(a.recv(1)); a.close(); s.close()
      """
    let traffic = """
      \(pair.shellCommand(in: pair.namespaceB, ["timeout", "20", "python3", "-c", server])) &
      sleep 0.3
      \(pair.shellCommand(in: pair.namespaceA, ["timeout", "20", "python3", "-c", client]))
      wait
      """
    let spec = """
      BEGIN { @known[9141] = 1 }
      tracepoint:sock:inet_sock_set_state /args.dport == 9141 && args.newstate == TCP_SYN_SENT/ {
        printf("%d %d %d %d %r\\n", pid, ppid, has_key(@known, args.dport), has_key(@known, 1), buf(args.daddr, 4));
      }
      END { clear(@known) }
      """
    let result = try Self.swtrace(["-e", spec], traffic: traffic, scratch: scratch)
    try #require(result.status == 0, "\(result)")
    let ids = try #require(scratch.read("client.txt"), "the client did not run: \(result)")
    // 10.200.131.2 is 0a c8 83 02; none of its bytes is printable ASCII.
    #expect(result.stdoutLines == ["\(ids) 1 0 \\x0a\\xc8\\x83\\x02"], "\(result)")
  }

  /// Constructs bpftrace 0.17 has no tracepoint counterpart for (func) or prints from its own
  /// clock (time, interval): checked against what the test knows. The veth's kind is "veth",
  /// as `ip link add ... type veth` made it; func is the tracepoint the packets passed; the
  /// time END prints lies between the clock readings taken around the run; interval:hz:20
  /// ticks at most 20 times a second of the run (a printf each: an interval clause
  /// cannot aggregate).
  @Test("func, str() of a char *, zero(), time() and interval:hz give what the traffic and the clock say", .needsTracing)
  func builtinsAgainstTheTraffic() throws {
    let pair = try NetworkNamespacePair(subnet: 133)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("lang-func")
    defer { scratch.remove() }
    let spec = """
      tracepoint:net:net_dev_queue, tracepoint:net:net_dev_xmit
      / str(((struct sk_buff *)args.skbaddr)->dev->name) == "\(pair.vethA)" /
      {
        @seen[func] = count();
        printf("%s %s\\n", func, str(((struct sk_buff *)args.skbaddr)->dev->rtnl_link_ops->kind));
      }
      interval:hz:20 { printf("tick\\n"); }
      END { time("at %Y-%m-%d %H:%M:%S\\n"); zero(@seen); }
      """
    let before = Date()
    let result = try Self.swtrace(
      ["-e", spec], traffic: tcpExchangeScript(pair: pair, port: 9142) + "\nsleep 1\n", scratch: scratch)
    let after = Date()
    try #require(result.status == 0, "\(result)")
    let lines = result.stdoutLines
    // A TCP exchange queues and transmits at least SYN, data, ACK and FIN on vethA.
    let events = lines.filter { $0.hasPrefix("net_dev_") }
    #expect(events.filter { $0 == "net_dev_queue veth" }.count >= 4, "\(result)")
    #expect(events.filter { $0 == "net_dev_xmit veth" }.count >= 4, "\(result)")
    #expect(events.allSatisfy { $0 == "net_dev_queue veth" || $0 == "net_dev_xmit veth" }, "\(result)")
    // zero() keeps the keys, with 0.
    #expect(lines.contains("@seen[net_dev_queue]: 0") && lines.contains("@seen[net_dev_xmit]: 0"), "\(result)")
    let stamp = try #require(lines.first { $0.hasPrefix("at ") }, "\(result)")
    let format = DateFormatter()
    format.locale = Locale(identifier: "en_US_POSIX")
    format.timeZone = TimeZone.current
    format.dateFormat = "'at 'yyyy-MM-dd HH:mm:ss"
    let printed = try #require(format.date(from: stamp), "\(stamp)")
    #expect(printed >= before.addingTimeInterval(-1) && printed <= after, "\(stamp) not within \(before)...\(after)")
    let ticks = lines.filter { $0 == "tick" }.count
    #expect(ticks >= 1 && Double(ticks) <= 20 * result.seconds + 1, "\(ticks) ticks in \(result.seconds) s")
  }

  /// A histogram's rows as (label, count): bpftrace and swtrace pad the columns differently.
  static func histogramRows(_ lines: [String]) -> [String] {
    lines.filter { $0.hasPrefix("[") || $0.hasPrefix("(") }.map { line in
      let end = line.firstIndex { $0 == "]" || $0 == ")" }.map { line.index(after: $0) } ?? line.endIndex
      let count = line[end...].split(separator: " ").first ?? ""
      return "\(line[..<end]) \(count)"
    }
  }

  /// The states a client socket passes through, less one (SYN_SENT 2, ESTABLISHED 1, then
  /// FIN_WAIT1 4, FIN_WAIT2 5 or CLOSE_WAIT 8, LAST_ACK 9, and CLOSE 7), fall in the buckets
  /// [0], [1] and some of [2, 4), [4, 8), [8, 16), labelled as bpftrace labels them.
  @Test("hist's buckets and their labels are bpftrace's, [0] and [1] included", .needsBpftrace)
  func histogramLabels() throws {
    let pair = try NetworkNamespacePair(subnet: 132)
    defer { pair.remove() }
    let scratch = try ScratchDirectory("lang-hist")
    defer { scratch.remove() }
    let program = """
      tracepoint:sock:inet_sock_set_state / args->dport == 9143 / { @h = hist(args->newstate - 1); }
      """
    let run = try BpftraceReference.run(
      program: program, traffic: tcpExchangeScript(pair: pair, port: 9143, count: 2), scratch: scratch)
    try #require(run.bpftrace.status == 0, "\(run)")
    let expected = Self.histogramRows(run.bpftraceLines)
    // Which side closes first is the connection's own race: an active close passes FIN_WAIT1
    // and FIN_WAIT2 ([2, 4), [4, 8)), a passive one CLOSE_WAIT and LAST_ACK ([4, 8), [8, 16)).
    // ESTABLISHED and SYN_SENT are always there, and are the labels this test is about.
    let labels = expected.map { $0.split(separator: " ").dropLast().joined(separator: " ") }
    #expect(labels.starts(with: ["[0]", "[1]"]), "\(run)")
    #expect(Set(labels).isSubset(of: ["[0]", "[1]", "[2, 4)", "[4, 8)", "[8, 16)"]), "\(run)")
    #expect(Self.histogramRows(run.swtraceLines) == expected, "\(run)")
  }
}
