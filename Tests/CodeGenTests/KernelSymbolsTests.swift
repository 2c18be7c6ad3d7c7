import Foundation
import Output
import Testing

/// `ksym()` names code addresses from /proc/kallsyms. A module's symbols carry a tab and
/// "[module]" after the name; they print the way the kernel's own `%pS` prints them
/// (`wg_packet_rx_poll+0x35b/0x4a0 [wireguard]`, without the size swtrace does not know).
@Suite struct KernelSymbolsTests {
  /// Lines as /proc/kallsyms writes them (`address type name[\t[module]]`), out of order.
  static let table = """
    ffffffffc0a41200 t wg_packet_rx_poll\t[wireguard]
    ffffffff81a00000 T consume_skb
    ffffffff81a00400 T __kfree_skb
    ffffffffc0a40000 t wg_xmit\t[wireguard]
    ffffffff82000000 D some_data
    0000000000000000 T hidden_symbol

    """

  /// The table above, written to a file and read as /proc/kallsyms would be.
  func describe(_ addresses: [UInt64]) throws -> [String] {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("kallsyms-\(UUID().uuidString)")
    try Self.table.write(to: file, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(at: file) }
    let symbols = KernelSymbols(path: file.path)
    return addresses.map(symbols.describe)
  }

  @Test func moduleCodeIsNamedWithItsModule() throws {
    let names = try describe([0xffff_ffff_c0a4_135b, 0xffff_ffff_c0a4_1200, 0xffff_ffff_c0a4_0010])
    #expect(names == ["wg_packet_rx_poll+0x15b [wireguard]", "wg_packet_rx_poll [wireguard]", "wg_xmit+0x10 [wireguard]"])
  }

  @Test func vmlinuxCodeIsNamedAlone() throws {
    // Below every symbol there is no name.
    let names = try describe([0xffff_ffff_81a0_0004, 0xffff_ffff_81a0_0400, 0x1000])
    #expect(names == ["consume_skb+0x4", "__kfree_skb", "0x1000"])
  }

  /// A code symbol of a module in the running kernel's table, when addresses are visible (root).
  static let runningModuleSymbol: (address: UInt64, names: Set<String>, module: String)? = {
    // /proc files report a size of 0: read to the end.
    let data = FileHandle(forReadingAtPath: "/proc/kallsyms")?.readDataToEndOfFile() ?? Data()
    let text = String(decoding: data, as: UTF8.self)
    var entries: [(address: UInt64, name: String, module: String?)] = []
    for line in text.split(separator: "\n") {
      let parts = line.split(separator: " ", maxSplits: 2)
      guard parts.count == 3, parts[1] == "t" || parts[1] == "T", let address = UInt64(parts[0], radix: 16),
        address != 0
      else { continue }
      let nameAndModule = parts[2].split(separator: "\t")
      entries.append((address, String(nameAndModule[0]), nameAndModule.count > 1 ? String(nameAndModule[1]) : nil))
    }
    guard let first = entries.first(where: { $0.module != nil }), let module = first.module else { return nil }
    // Every name at that address: the lookup may name any of them.
    let names = Set(entries.filter { $0.address == first.address }.map(\.name))
    return (first.address, names, String(module.dropFirst().dropLast()))
  }()

  @Test(
    "the running kernel's module symbols are named with their module",
    .enabled(if: runningModuleSymbol != nil, "no module code symbol with a visible address in /proc/kallsyms (needs root)"))
  func runningKernelModuleSymbol() throws {
    let symbol = try #require(Self.runningModuleSymbol)
    let described = KernelSymbols(path: "/proc/kallsyms").describe(symbol.address)
    #expect(symbol.names.contains { described == "\($0) [\(symbol.module)]" }, "\(described): want one of \(symbol.names) [\(symbol.module)]")
  }
}
