// Tests of the traffic generator itself: the e2e tests rely on it sending exactly what
// it claims, and on it never sending anywhere but loopback and the test namespaces.

import Foundation
import Testing

@Suite("swtrace-pktgen", .serialized)
struct PktgenTests {
  @Test("refuses destinations outside 127.0.0.0/8 and 10.200.0.0/16")
  func refusesForeignDestinations() throws {
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    let refused = ["8.8.8.8", "192.168.1.1", "10.0.0.1", "10.199.255.255", "10.201.0.1", "172.16.0.1", "0.0.0.0"]
    for destination in refused {
      for arguments in [
        ["udp", "--dst", destination, "--port", "9", "--count", "1"],
        ["icmp", "--dst", destination, "--count", "1"],
      ] {
        let result = try ProcessRunner.run(pktgen, arguments, timeout: 10)
        #expect(result.status == 2, "\(result)")
        #expect(result.stderr.contains("refusing --dst \(destination)"), "\(result)")
        #expect(result.stdout.isEmpty, "nothing may be sent: \(result)")
      }
    }
    // Host names are not resolved (they could lead anywhere), and sources are checked too.
    let byName = try ProcessRunner.run(pktgen, ["udp", "--dst", "localhost", "--port", "9", "--count", "1"], timeout: 10)
    #expect(byName.status == 2, "\(byName)")
    let foreignSource = try ProcessRunner.run(
      pktgen, ["udp", "--dst", "127.0.0.1", "--src", "192.168.0.1", "--port", "9", "--count", "1"], timeout: 10)
    #expect(foreignSource.status == 2, "\(foreignSource)")
  }

  @Test("rejects malformed arguments with status 2")
  func rejectsBadUsage() throws {
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    let bad: [[String]] = [
      [],
      ["flood"],
      ["udp", "--dst", "127.0.0.1", "--port", "9"],  // no --count
      ["udp", "--dst", "127.0.0.1", "--port", "9", "--count", "0"],
      ["udp", "--dst", "127.0.0.1", "--port", "70000", "--count", "1"],
      ["udp", "--dst", "127.0.0.1", "--port", "9", "--count", "1", "--sizes", "100-50"],
      ["udp", "--dst", "127.0.0.1", "--port", "9", "--count", "1", "--sizes", "70000"],
      ["udp", "--dst", "127.0.0.1", "--port", "9", "--count", "1", "--mark", "0xnothex"],
      ["udp", "--dst", "127.0.0.1", "--port", "9", "--count", "1", "--max-seconds", "0"],
      ["udp", "--dst", "127.0.0.1", "--port", "9", "--count", "1", "--bogus", "1"],
      ["sink", "--count", "1"],  // no --port
    ]
    for arguments in bad {
      let result = try ProcessRunner.run(pktgen, arguments, timeout: 10)
      #expect(result.status == 2, "\(result)")
      #expect(!result.stderr.isEmpty, "\(result)")
    }
  }

  @Test("--rate and --max-seconds bound a send loop on loopback")
  func rateAndTimeBound() throws {
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    // 1000 datagrams at 200/s would take 5 s; --max-seconds 0.5 stops it after ~100.
    let result = try ProcessRunner.run(
      pktgen,
      ["udp", "--dst", "127.0.0.1", "--port", "9", "--count", "1000", "--rate", "200", "--max-seconds", "0.5"],
      timeout: 10)
    #expect(result.status == 1, "stopping early is a shortfall: \(result)")
    #expect(result.seconds < 3, "\(result)")
    let sent = result.stdoutLines.last.flatMap { line in line.hasPrefix("sent ") ? Int(line.dropFirst(5)) : nil }
    #expect(sent != nil && (80...120).contains(sent!), "expected about 100 sent at 200/s for 0.5 s: \(result)")
  }

  @Test("UDP datagrams cross the veth and are counted by a sink in the other namespace", .needsNetwork)
  func udpReachesSinkAcrossVeth() throws {
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    let pair = try NetworkNamespacePair(subnet: 11)
    defer { pair.remove() }

    let sizes = [10, 20, 30, 1400]
    let count = 40
    let sink = try RunningSink(pktgen: pktgen, namespace: pair.namespaceB, port: 9100, count: count, maxSeconds: 20)
    let send = try pair.run(
        in: pair.namespaceA,
        [
          pktgen, "udp", "--dst", pair.addressB, "--port", "9100", "--count", "\(count)",
          "--sizes", sizes.map(String.init).joined(separator: ","), "--mark", "0x5157", "--src", pair.addressA,
          "--max-seconds", "10",
        ],
      timeout: 20)
    #expect(send.status == 0, "\(send)")
    #expect(send.stdoutLines == ["sent \(count)"], "\(send)")

    let (sinkResult, received, bytes) = sink.finish(timeout: 25)
    #expect(sinkResult.status == 0, "\(sinkResult)")
    #expect(received == count, "\(sinkResult)")
    #expect(bytes == (0..<count).map { sizes[$0 % sizes.count] }.reduce(0, +), "\(sinkResult)")
  }

  @Test("ICMP echo requests get replies across the veth; a silent address gets none", .needsNetwork)
  func icmpEchoAcrossVeth() throws {
    let pktgen = try TestEnvironment.binary("swtrace-pktgen")
    let pair = try NetworkNamespacePair(subnet: 12)
    defer { pair.remove() }

    // A generous per-reply timeout: on a loaded machine the first reply waits for ARP on a
    // veth that has only just come up.
    let ping = try pair.run(
      in: pair.namespaceA,
      [pktgen, "icmp", "--dst", pair.addressB, "--count", "3", "--id", "0x4242", "--timeout", "5"], timeout: 30)
    #expect(ping.status == 0, "\(ping)")
    #expect(ping.stdoutLines == ["reply seq=1", "reply seq=2", "reply seq=3", "sent 3 received 3"], "\(ping)")

    // Nobody has .9 on the link: one request, no reply, status 1, within the timeout.
    let silent = try pair.run(
      in: pair.namespaceA, [pktgen, "icmp", "--dst", "10.200.12.9", "--count", "1", "--timeout", "0.3"], timeout: 20)
    #expect(silent.status == 1, "\(silent)")
    #expect(silent.stdoutLines == ["sent 1 received 0"], "\(silent)")
  }

  @Test("the namespace pair is removed again", .needsNetwork)
  func namespacePairCleansUp() throws {
    var names: [String] = []
    do {
      let pair = try NetworkNamespacePair(subnet: 13)
      names = [pair.namespaceA, pair.namespaceB]
      let listed = try ProcessRunner.run("ip", ["netns", "list"], timeout: 10)
      for name in names { #expect(listed.stdout.contains(name), "\(listed)") }
      let link = try ProcessRunner.run("ip", ["-n", pair.namespaceA, "-br", "addr", "show", "dev", pair.vethA], timeout: 10)
      #expect(link.stdout.contains("10.200.13.1/24") && link.stdout.contains("UP"), "\(link)")
    }  // deinit removes it
    let after = try ProcessRunner.run("ip", ["netns", "list"], timeout: 10)
    for name in names { #expect(!after.stdout.contains(name), "\(name) left behind: \(after)") }
  }
}
