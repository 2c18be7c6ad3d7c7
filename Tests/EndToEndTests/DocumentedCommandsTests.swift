// The doc-test's own machinery (Support/DocumentedCommands.swift): if it parsed blocks wrong
// or compared outputs too leniently, DocumentationTests would pass on documentation that lies.

import Foundation
import Testing

@Suite("doc-test machinery: blocks, markings, output comparison")
struct DocumentedCommandsTests {
  static let markdown = """
    # Title

    Text with `code`.

        # swtrace -e 'skb:* { print(len) }' \\
            -c 'true'
        first line
        second line
        $ echo done
        done

    - a list item
      continued here, not code

    <!-- doctest: not run: needs a cluster -->

        $ kubectl apply -f x.yaml

    ```swtrace
    skb:* { print(len) }
    ```

    <!-- doctest: vm -->
    ```
    # swtrace -l 'kprobe:ip_rcv'
    kprobe:ip_rcv (struct sk_buff * skb)
    ```
    """

  @Test("Markdown: prompts, continuation lines, output, markings; language fences are not commands")
  func markdownBlocks() throws {
    let blocks = try DocumentedCommands.markdownBlocks(Self.markdown, file: "X.md")
    try #require(blocks.count == 3, "\(blocks)")
    #expect(blocks[0].marking == .run)
    #expect(blocks[0].commands.count == 2)
    #expect(blocks[0].commands[0].text == "swtrace -e 'skb:* { print(len) }' \\\n    -c 'true'")
    #expect(blocks[0].commands[0].expected == ["first line", "second line"])
    #expect(blocks[0].commands[0].prompt == "#" && blocks[0].commands[1].prompt == "$")
    #expect(blocks[0].commands[1].expected == ["done"])
    #expect(blocks[0].line == 5 && blocks[0].commands[1].line == 9)
    #expect(blocks[1].marking == .notRun("needs a cluster"))
    #expect(blocks[2].marking == .vm)
    #expect(blocks[2].commands[0].expected == ["kprobe:ip_rcv (struct sk_buff * skb)"])
  }

  @Test("Markdown: a code block that is neither commands nor a language fails, naming its line")
  func unmarkedCodeBlockFails() {
    let text = "Some text.\n\n    make run\n"
    #expect(throws: DocumentationError.self) { try DocumentedCommands.markdownBlocks(text, file: "X.md") }
    let fenced = "```\nls\n```\n"
    #expect(throws: DocumentationError.self) { try DocumentedCommands.markdownBlocks(fenced, file: "X.md") }
    #expect(throws: DocumentationError.self) {
      try DocumentedCommands.markdownBlocks("<!-- doctest: sometimes -->\n\n    # ls\n", file: "X.md")
    }
  }

  @Test("spec headers: blocks of `//   # ` lines, prose and usage lines are not blocks")
  func specBlocks() throws {
    let spec = """
      #!/usr/bin/env swtrace
      // What is it?
      //
      // Run it: `swtrace specs/x.spec`.
      //   # ip netns add demo-a
      //   # swtrace -c 'true' specs/x.spec
      //   Samples: 0 Lost: 0
      //   # ip netns del demo-a
      // More prose.
      // doctest: not run: why
      //   # swtrace -d 5 specs/x.spec
      skb:* { print(len) }
      """
    let blocks = try DocumentedCommands.specBlocks(spec, file: "specs/x.spec")
    try #require(blocks.count == 2, "\(blocks)")
    #expect(blocks[0].commands.map(\.text) == ["ip netns add demo-a", "swtrace -c 'true' specs/x.spec", "ip netns del demo-a"])
    #expect(blocks[0].commands[1].expected == ["Samples: 0 Lost: 0"])
    #expect(blocks[0].namespaces == ["demo-a"])
    #expect(blocks[1].marking == .notRun("why"))
  }

  @Test("help screens: one block per described example, commands continued over lines, no output")
  func helpBlocks() {
    let help = """
      OVERVIEW: x

      Examples (as root):
        First:
          swtrace -e 'a' \\
            -c 'b'
        Second:
          xz -dkc a > b
          swtrace check b

      USAGE: swtrace
      """
    let blocks = DocumentedCommands.helpBlocks(help, file: "swtrace --help")
    #expect(blocks.map { $0.commands.map(\.text) } == [["swtrace -e 'a' \\\n      -c 'b'"], ["xz -dkc a > b", "swtrace check b"]])
    #expect(blocks.allSatisfy { $0.commands.allSatisfy { !$0.showsOutput } })
  }

  @Test("output: what varies is normalised, values and counts are not")
  func comparison() {
    let shown = [
      "1777969630681 1 net_dev_queue (len: 106 netns: 4026532174)",
      "@where[SKB_DROP_REASON_NO_SOCKET, __udp4_lib_rcv+0x4bc]: 3",
      #"{"probe": "x", "ts": 12, "cpu": 0, "wall_ts": 99, "host": "vm", "values": {"len": 106}}"#,
      "packet skb 0xffff88810a4ffb00 at 1862773269027 (1 hop):",
      "  +0.0us cpu 1 net_dev_queue (len: 106)",
    ]
    let printed = [
      "2000000000001 3 net_dev_queue (len: 106 netns: 4026532999)",
      "@where[SKB_DROP_REASON_NO_SOCKET, __udp4_lib_rcv+0x4c0]: 3",
      #"{"probe": "x", "ts": 987654, "cpu": 1, "wall_ts": 1234, "host": "node-7", "values": {"len": 106}}"#,
      "packet skb 0xffff888100000000 at 5 (1 hop):",
      "  +12.5us (+12.5us) cpu 0 net_dev_queue (len: 106)",
    ]
    #expect(DocumentedOutput.matches(expected: shown, actual: printed))
    // A length, a count, a name or a line more or less is a difference.
    var changed = printed
    changed[0] = changed[0].replacingOccurrences(of: "len: 106", with: "len: 107")
    #expect(!DocumentedOutput.matches(expected: shown, actual: changed))
    changed = printed
    changed[1] = changed[1].replacingOccurrences(of: "]: 3", with: "]: 4")
    #expect(!DocumentedOutput.matches(expected: shown, actual: changed))
    changed = printed
    changed[1] = changed[1].replacingOccurrences(of: "NO_SOCKET", with: "NETFILTER_DROP")
    #expect(!DocumentedOutput.matches(expected: shown, actual: changed))
    #expect(!DocumentedOutput.matches(expected: shown, actual: printed.dropLast()))
    #expect(!DocumentedOutput.matches(expected: shown, actual: printed + ["Samples: 1 Lost: 0"]))
    #expect(!DocumentedOutput.matches(expected: [], actual: ["unexpected"]))
  }

  @Test("output: `...` stands for any number of lines, none included")
  func wildcard() {
    let shown = ["start", "...", "@n: 5", "...", "end"]
    #expect(DocumentedOutput.matches(expected: shown, actual: ["start", "@n: 5", "end"]))
    #expect(DocumentedOutput.matches(expected: shown, actual: ["start", "a", "b", "@n: 5", "c", "end"]))
    #expect(!DocumentedOutput.matches(expected: shown, actual: ["start", "@n: 6", "end"]))
    #expect(!DocumentedOutput.matches(expected: shown, actual: ["start", "@n: 5", "end", "after"]))
    #expect(DocumentedOutput.matches(expected: ["..."], actual: []))
  }

  @Test("VM lane: the generated script names blocks stably, and its output is read back per command")
  func vmRoundTrip() {
    let block = DocumentedBlock(
      file: "README.md", line: 300, marking: .vm,
      commands: [DocumentedCommand(prompt: "#", text: "swtrace -q -e 'x' \\\n    -c 'y'", expected: ["a"], line: 301)])
    let script = DocumentedCommands.vmScript([block])
    #expect(script.contains("echo \"VMDOC BEGIN README.md#vm1 0\"\ncat >/tmp/doc-command <<'SWTRACE_DOC_COMMAND'\nswtrace -q -e 'x' \\\n    -c 'y'\nSWTRACE_DOC_COMMAND\n"))
    let console = "VMTEST PASS (a)\nVMDOC BEGIN README.md#vm1 0\nVMDOC | 123 0 ip_rcv (len: 92)\nVMDOC |\nVMDOC END README.md#vm1 0 0\n"
    let results = DocumentedCommands.vmResults(console)
    #expect(results["README.md#vm1 0"]?.output == ["123 0 ip_rcv (len: 92)", ""])
    #expect(results["README.md#vm1 0"]?.status == 0)
  }
}
