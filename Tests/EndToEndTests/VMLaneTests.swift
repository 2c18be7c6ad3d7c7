// The VM lane as a test: scripts/vm/run.sh boots a stock Debian kernel under qemu and runs
// swtrace's function backends there (kprobe, kretprobe, fentry, fexit, kprobe.multi), which
// the machine running the tests may not have. See scripts/vm/run.sh for what it does.

import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
  import Glibc
#endif

@Suite("VM lane: function backends under qemu", .serialized)
struct VMLaneTests {
  /// The scenarios run.sh must report as passed: the function backends on loopback (a-k), and
  /// a marked datagram through a WireGuard tunnel between two namespaces (scripts/vm/wireguard.sh),
  /// the documentation's examples that need a function backend (docs), and -w's captures over
  /// kprobes and fentry (pcap-kprobe, pcap-fentry), whose files VMLaneTests reads with tshark,
  /// and tools/tcpsynbl.bt with kprobes' arg0..arg5 over TCP handshakes (tcpsynbl, kprobe-args).
  static let requiredScenarios = [
    "a", "b", "c", "c2", "c3", "d", "d2", "e", "f", "g", "h", "i", "j", "k",
    "wireguard-mark-lost", "wireguard-track", "wireguard-drop", "docs", "pcap-kprobe", "pcap-fentry",
    "tcpsynbl", "kprobe-args",
  ]

  static let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

  /// Why the lane does not run here, or nil. It runs only with SWTRACE_VMTEST=1, which
  /// `make test` (and so CI) sets for a run of this suite alone after the others: a release
  /// build plus ~2 minutes of emulated kernel is too long for every `swift test`.
  static var skipReason: String? {
    let setting = ProcessInfo.processInfo.environment["SWTRACE_VMTEST"] ?? ""
    if setting != "1" { return "set SWTRACE_VMTEST=1 to boot the VM lane (or run: make vmtest)" }
    if geteuid() != 0 { return "not root: the lane installs qemu with apt-get and needs SO_MARK in the guest" }
    return nil
  }

  @Test(
    "every scenario passes in the VM",
    .requires("needs SWTRACE_VMTEST=1 (make test sets it) and root") { VMLaneTests.skipReason })
  func lane() throws {
    let script = Self.repositoryRoot.appendingPathComponent("scripts/vm/run.sh").path
    var environment = ProcessInfo.processInfo.environment
    environment["VM_BENCH"] = nil
    environment["VM_ONLY"] = nil
    // run.sh's own VM timeout is 1200 s; the build and the kernel download come before it.
    let result = try ProcessRunner.run(script, [], timeout: 1800, environment: environment)
    print(result.stdout.split(separator: "\n").filter { $0.hasPrefix("VM") }.joined(separator: "\n"))
    #expect(result.status == 0, "\(result)")
    for scenario in Self.requiredScenarios {
      #expect(result.stdout.contains("VMTEST PASS (\(scenario))"), "scenario (\(scenario)) did not pass:\n\(result)")
    }
    #expect(!result.stdout.contains("VMTEST FAIL"), "\(result)")
    #expect(result.stdout.contains("VMTEST DONE"), "\(result)")
    try compareDocumentationExamples(result.stdout)
    try checkCaptures(result.stdout)
  }

  /// The pcapng files the guest wrote with -w (scenarios pcap-kprobe and pcap-fentry), sent
  /// back as base64 lines, read by tshark here: a packet per event, each comment naming its
  /// probe and the mark, and each of the three datagrams (100-byte payloads from
  /// swtrace-pktgen, to the sink's port 9999 on loopback) whole in Ethernet frames where the
  /// MAC header is there (loopback's receive side) and in bare IP packets where only the IP
  /// layer has run.
  func checkCaptures(_ console: String) throws {
    let scratch = try ScratchDirectory("vm-pcap")
    defer { scratch.remove() }
    for name in ["pcap-kprobe", "pcap-fentry"] {
      let prefix = "VMPCAP \(name) "
      let encoded = console.split(separator: "\n").filter { $0.hasPrefix(prefix) }.map { $0.dropFirst(prefix.count) }
        .filter { $0 != "begin" && $0 != "end" }.joined()
      guard let bytes = Data(base64Encoded: encoded), !bytes.isEmpty else {
        Issue.record("\(name): the VM sent no capture file back")
        continue
      }
      let file = scratch.path("\(name).pcapng")
      try bytes.write(to: URL(fileURLWithPath: file))
      guard Tshark.missing == nil else { try skip(Tshark.missing!) }
      let packets = try Tshark.packets(file)
      // "N events, N packets" as the guest counted them.
      let said = console.split(separator: "\n").first { $0.hasPrefix("VMTEST PASS (\(name))") }
      let events = said.flatMap { $0.split(separator: ":").last?.split(separator: " ").first }.flatMap { Int($0) }
      #expect(events == packets.count, "\(name): \(packets.count) packets in the file, the guest said: \(said ?? "nothing")")
      for packet in packets {
        let probe = packet["frame.interface_name"] ?? "?"
        let comment = packet["frame.comment"] ?? ""
        #expect(comment.hasPrefix("probe=\(probe) ") && comment.contains(" mark=0xdead"), "\(name): \(packet)")
        // Loopback's packets are Ethernet frames or bare IP at every probe: none is left as
        // bytes swtrace cannot name (link type user 0, 147).
        #expect(["1", "7"].contains(packet["frame.encap_type"] ?? ""), "\(name): \(packet)")
        // The ports where the kernel has written the UDP header: a function the sender enters
        // before (udp_send_skb fills the header in its body) holds zeros there, and so does
        // its packet; a written header's length is at least 8.
        if let port = packet["udp.dstport"], packet["udp.length"] != "0" { #expect(port == "9999", "\(name): \(packet)") }
      }
      for encapsulation in ["1", "7"] {
        for sequence in 0..<3 {
          let whole = packets.filter {
            $0["frame.encap_type"] == encapsulation && $0.bytes("data.data") == PacketCaptureTests.payload(sequence: sequence, size: 100)
              && $0.integer("frame.len") == (encapsulation == "1" ? 142 : 128)
          }
          #expect(!whole.isEmpty, "\(name): datagram \(sequence) never whole in link type \(encapsulation):\n\(firstFew(packets, 10))")
        }
      }
    }
  }

  /// The documentation's blocks marked `doctest: vm` ran in the guest (scenario docs, from
  /// scripts/vm/doc-examples.sh): each command must exit 0 and print what the docs show.
  func compareDocumentationExamples(_ console: String) throws {
    let blocks = try DocumentationTests.allBlocks().filter { $0.marking == .vm }
    let results = DocumentedCommands.vmResults(console)
    for (identifier, block) in zip(DocumentedCommands.vmIdentifiers(blocks), blocks) {
      for (index, command) in block.commands.enumerated() {
        guard let got = results["\(identifier) \(index)"] else {
          Issue.record("\(block.file):\(command.line): the VM lane printed nothing for `\(command.text)`")
          continue
        }
        #expect(got.status == 0, "\(block.file):\(command.line): `\(command.text)` exited \(got.status) in the VM:\n\(got.output.joined(separator: "\n"))")
        #expect(
          DocumentedOutput.matches(expected: command.expected, actual: got.output),
          "\(block.file):\(command.line): `\(command.text)` printed other than the documentation shows.\n--- shown ---\n\(command.expected.joined(separator: "\n"))\n--- printed in the VM ---\n\(got.output.joined(separator: "\n"))\n---")
      }
    }
  }
}
