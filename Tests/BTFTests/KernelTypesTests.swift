import BTF
import Foundation
import Testing
import TestSupport

/// The running kernel's sk_buff as bpftool prints it: an independent reading of the same BTF.
private func bpftoolMembers(of structName: String) throws -> [String: Int] {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: "/usr/sbin/bpftool")
  process.arguments = ["btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "raw"]
  let pipe = Pipe()
  process.standardOutput = pipe
  try process.run()
  let data = pipe.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  let text = String(decoding: data, as: UTF8.self)
  var members: [String: Int] = [:]
  var inside = false
  for line in text.split(separator: "\n") {
    if line.hasPrefix("[") {
      if inside { break }
      inside = line.contains("STRUCT '\(structName)' ")
      continue
    }
    guard inside, let nameStart = line.firstIndex(of: "'") else { continue }
    let rest = line[line.index(after: nameStart)...]
    guard let nameEnd = rest.firstIndex(of: "'"), let bits = line.range(of: "bits_offset=") else { continue }
    let value = line[bits.upperBound...].prefix { $0.isNumber }
    members[String(rest[..<nameEnd])] = Int(value)
  }
  return members
}

@Suite struct RunningKernelBTF {
  let types: KernelTypes

  init() throws { types = try KernelTypes.loadRunningKernel() }

  @Test func skbMemberOffsetsMatchBpftool() throws {
    let skb = try #require(types.structure("sk_buff"))
    let reference = try bpftoolMembers(of: "sk_buff")
    for name in ["len", "data_len", "truesize", "head", "end", "data"] {
      let member = try #require(types.member(name, of: skb), "sk_buff.\(name)")
      #expect(member.bitOffset == reference[name], "sk_buff.\(name)")
    }
    #expect(types.size(of: try #require(types.member("len", of: skb)).type) == 4)
    #expect(types.size(of: skb) == 224)
  }

  @Test func anonymousUnionMembersAreFlattened() throws {
    let skb = try #require(types.structure("sk_buff"))
    // `mark` lives in an anonymous union inside an anonymous struct of sk_buff.
    let mark = try #require(types.member("mark", of: skb))
    #expect(mark.byteOffset == 164)
    #expect(types.describe(mark.type) == "__u32")
  }

  @Test func skbTracepointsAreFoundWithNamedArguments() throws {
    let withSkb = types.tracepoints().filter { tp in
      tp.parameters.contains { types.isPointer($0.type, toStruct: "sk_buff") }
    }
    #expect(withSkb.count == 30)
    let names = Set(withSkb.map(\.name))
    for expected in ["net_dev_queue", "netif_receive_skb", "kfree_skb", "consume_skb", "net_dev_xmit"] {
      #expect(names.contains(expected))
    }
    let kfree = try #require(types.tracepoint(named: "kfree_skb"))
    #expect(kfree.parameters.map(\.name).prefix(3) == ["skb", "location", "reason"])
    #expect(types.describe(kfree.parameters[2].type) == "enum skb_drop_reason")
  }

  @Test func gsoFlagsComeFromBTF() {
    let flags = types.enumerators(withPrefix: "SKB_GSO_")
    #expect(flags.first { $0.name == "SKB_GSO_TCPV4" }?.value == 1)
    #expect(flags.first { $0.name == "SKB_GSO_UDP_L4" }?.value == 1 << 17)
  }
}

@Suite struct FixtureKernelBTF {
  @Test(arguments: Fixtures.kernelReleases)
  func offsetsMatchTheRecordedFacts(release: String) throws {
    let types = try KernelTypes.load(path: try Fixtures.btfPath(release))
    let facts = try Fixtures.facts(release)
    for (path, offset) in facts.stats.offsets {
      let parts = path.split(separator: ".").map(String.init)
      let structID = try #require(types.structure(parts[0]), "\(parts[0]) in \(release)")
      #expect(types.member(parts[1], of: structID)?.byteOffset == offset, "\(path) in \(release)")
    }
    for (name, size) in facts.stats.sizeof {
      #expect(types.size(of: try #require(types.structure(name))) == size, "sizeof \(name) in \(release)")
    }
  }

  @Test(arguments: Fixtures.kernelReleases)
  func tracepointsAndSkbFunctionsAreAllFound(release: String) throws {
    let types = try KernelTypes.load(path: try Fixtures.btfPath(release))
    let facts = try Fixtures.facts(release)
    #expect(types.tracepoints().count == facts.stats.btf_trace_typedefs)
    let skbFunctions = types.functions().filter { function in
      function.parameters.contains { types.isPointer($0.type, toStruct: "sk_buff") }
    }
    // Static functions can share a name; BTF keeps a FUNC for each, swtrace one per name.
    #expect(skbFunctions.count > 1000)
    #expect(skbFunctions.count <= facts.stats.funcs_with_skb_param)
  }

  @Test func aFileThatIsNotBTFIsRefusedWithItsPath() throws {
    let path = NSTemporaryDirectory() + "/swtrace-not-btf-\(getpid())"
    try Data("this is not BTF".utf8).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    #expect(throws: BTFLoadError.self) { try KernelTypes.load(path: path) }
    do {
      _ = try KernelTypes.load(path: path)
    } catch {
      #expect(error.description.contains(path))
      #expect(error.description.contains("not a readable BTF file"))
    }
  }
}
