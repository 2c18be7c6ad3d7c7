import BTF
import CodeGen
import Output
import Sema
import SwtraceSyntax
import Testing
import TestSupport

@testable import Runtime

/// What the runtime hands the printers: per-CPU map values read from the kernel, and a kernel
/// rejection tied to its clause. The bytes below are laid out the way the kernel returns
/// per-CPU values (one 8-byte-aligned slot per possible CPU, little-endian).
@Suite struct RuntimeDecoding {
  /// `n` as the 8 little-endian bytes of one per-CPU slot.
  static func slot(_ n: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * $0)) } }

  @Test func perCPUCountersAreSummedAcrossCPUs() {
    #expect(TraceSession.sumPerCPU(Self.slot(2) + Self.slot(3) + Self.slot(0) + Self.slot(7)) == 12)
    #expect(TraceSession.sumPerCPU(Self.slot(5)) == 5)
    #expect(TraceSession.sumPerCPU([]) == 0)
    // A counter wraps as the kernel's u64 does.
    #expect(TraceSession.sumPerCPU(Self.slot(.max) + Self.slot(2)) == 1)
  }

  /// A key-less histogram lives in a per-CPU array indexed by bucket; only buckets some CPU
  /// counted in are entries, keyed as a hash map's would be, and they print as histogram rows.
  @Test func arrayEntriesReadAsHashMapEntriesAndPrintAsBuckets() throws {
    let values: [Int: [UInt8]] = [
      0: Self.slot(0) + Self.slot(0),  // bucket 0 (negative values): unused on every CPU
      2: Self.slot(1) + Self.slot(0),  // the value 1 (labelled [1], as bpftrace does): once on CPU 0
      9: Self.slot(2) + Self.slot(3),  // [128, 256): five values over two CPUs
    ]
    let raw = TraceSession.usedEntries(count: 66) { values[$0] ?? Self.slot(0) + Self.slot(0) }
    #expect(raw.map(\.key) == [Self.slot(2), Self.slot(9)])

    let types = try KernelTypesFixture.load()
    let compiler = SpecCompiler(resolver: ProbeResolver(types: types, support: .tracepointsOnly))
    guard case .compiled(let compiled, _) = compiler.compile(SourceFile(name: "<spec>", text: "skb:net_dev_queue { @h = hist(len) }"))
    else {
      Issue.record("the spec must compile")
      return
    }
    #expect(compiled.directlyIndexedMaps[0] == 66)
    let printer = MapPrinter(compiled: compiled, format: .text)
    let entries = printer.entries(0, raw: raw)
    guard case .histogram(let buckets)? = entries.first?.value else {
      Issue.record("expected a histogram: \(entries)")
      return
    }
    #expect(buckets == [2: 1, 9: 5])
    let rows = printer.render(0, entries: entries).split(separator: "\n")
    #expect(rows.first == "@h:")
    #expect(rows.contains { $0.hasPrefix("[1] ") && $0.contains(" 1 |") })
    #expect(rows.contains { $0.hasPrefix("[128, 256)") && $0.contains(" 5 |") })
  }

  /// A program the kernel rejects is shown at its clause: file, line and column, the clause's
  /// line with a caret, and the verifier's own last words.
  @Test func aKernelRejectionIsLocatedAtItsClause() {
    let text = "BEGIN { printf(\"start\\n\") }\nskb:net_dev_queue /mark == 1/ {\n  print(len)\n}\n"
    let source = SourceFile(name: "drops.spec", text: text)
    let clauseStart = text.utf8.count - "skb:net_dev_queue /mark == 1/ {\n  print(len)\n}\n".utf8.count
    let clause = SourceRange(clauseStart, text.utf8.count - 1)
    let error = RuntimeError.programRejected(
      probe: "net_dev_queue", clauseRange: clause, reason: "load program: Permission denied (errno 13)",
      logTail: "0: (79) r0 = *(u64 *)(r10 -8)\ninvalid read from stack R10 off=-8 size=8")
    let rendered = DiagnosticRenderer().render([error.diagnostic!], in: source)
    let lines = rendered.split(separator: "\n", omittingEmptySubsequences: false)
    #expect(lines[0].hasPrefix("drops.spec:2:1: error: the kernel's verifier rejected the program for net_dev_queue"))
    #expect(lines[1] == " 2 | skb:net_dev_queue /mark == 1/ {")
    #expect(lines[2].hasPrefix("   | ^^^^"))
    #expect(rendered.contains("note: the verifier's last words:\n0: (79) r0 = *(u64 *)(r10 -8)\ninvalid read from stack"))
    // Refusals of the system as a whole have no place in the spec.
    #expect(RuntimeError.notPermitted(reason: "x").diagnostic == nil)
  }
}

/// The fixture kernel the runtime's decoding tests compile against.
enum KernelTypesFixture {
  static func load() throws -> KernelTypes {
    try KernelTypes.load(path: try Fixtures.btfPath("6.12.117+deb12-amd64"))
  }
}
