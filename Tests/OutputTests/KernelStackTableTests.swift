// kstack values: an id's stack read from the stack map once and symbolized, the frames of the
// tracing machinery that recorded it left out, bpf_get_stackid's errors in words.

import Foundation
import Output
import Testing

@Suite struct KernelStackTableTests {
  /// A /proc/kallsyms excerpt: kernel text, a BPF program (module "bpf"), a module's function.
  static let kallsyms = """
    ffffffff814cc630 T bpf_trace_run4
    ffffffff81e8b660 T sk_skb_reason_drop
    ffffffff81e8c000 t __traceiter_kfree_skb
    ffffffff8209e7b0 T __udp4_lib_rcv
    ffffffffc0026e00 t bpf_prog_6deef7357e7b4530_swt_kfree_skb\t[bpf]
    ffffffffc0100000 t wg_packet_rx_poll\t[wireguard]

    """

  static func table(lookups: Counter) throws -> KernelStackTable {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("swtrace-kallsyms-\(getpid())-\(UUID())")
    try kallsyms.write(to: file, atomically: true, encoding: .utf8)
    return KernelStackTable(symbols: KernelSymbols(path: file.path)) { id in
      lookups.add()
      switch id {
      case 7:
        // As the stack map holds it: program, tracepoint glue, then the kernel's frames, zeros after.
        return [0xffff_ffff_c002_6eee, 0xffff_ffff_814c_c73d, 0xffff_ffff_81e8_c041, 0xffff_ffff_81e8_b6f0,
          0xffff_ffff_8209_ec6c, 0xffff_ffff_c010_0035, 0, 0]
      default: return nil
      }
    }
  }

  final class Counter: @unchecked Sendable {
    var value = 0
    func add() { value += 1 }
  }

  @Test func framesStartAtTheProbedCodeAndAreReadOncePerID() throws {
    let lookups = Counter()
    let table = try Self.table(lookups: lookups)
    let stack = table.stack(7)
    #expect(stack.frames == ["sk_skb_reason_drop+0x90", "__udp4_lib_rcv+0x4bc", "wg_packet_rx_poll+0x35 [wireguard]"])
    #expect(stack.unavailable == nil)
    #expect(table.stack(7) == stack)
    #expect(lookups.value == 1, "one map lookup per id")
    // bpftrace's layout: a line break, then each frame on its own line, indented by 8.
    #expect(stack.text == "\n        sk_skb_reason_drop+0x90\n        __udp4_lib_rcv+0x4bc\n        wg_packet_rx_poll+0x35 [wireguard]\n")
  }

  @Test func errorsAreSaidAndCounted() throws {
    let table = try Self.table(lookups: Counter())
    // bpf_get_stackid's -EEXIST and -EFAULT, and an id the map does not have.
    #expect(table.stack(-Int64(EEXIST)).unavailable?.contains("raise --map-entries") == true)
    #expect(table.stack(-Int64(EEXIST)).frames.isEmpty)
    #expect(table.stack(-Int64(EFAULT)).unavailable == "the kernel could not walk the stack")
    #expect(table.stack(3).unavailable == "stack 3 is not in the stack map")
    let counts = Dictionary(uniqueKeysWithValues: table.unavailable.map { ($0.reason, $0.count) })
    #expect(counts.count == 3 && counts.values.reduce(0, +) == 4)
    #expect(table.stack(-Int64(EFAULT)).text == "[no stack: the kernel could not walk the stack]")
  }
}
