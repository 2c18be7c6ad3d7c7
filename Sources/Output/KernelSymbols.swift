import Glibc
import Synchronization

/// Kernel code addresses to `symbol+0xoffset`, from /proc/kallsyms (read once, on first use).
/// Code in a module is named the way the kernel's own `%pS` names it, with the module after:
/// `wg_packet_rx_poll+0x35b [wireguard]`.
public final class KernelSymbols: @unchecked Sendable {
  public static let shared = KernelSymbols(path: "/proc/kallsyms")

  private let path: String
  private let symbols = Mutex<[(address: UInt64, name: String, module: String?)]?>(nil)

  public init(path: String) { self.path = path }

  /// The code a kernel address is in: its symbol, how far into it, and its module.
  public struct Location: Hashable, Sendable {
    public var name: String
    public var offset: UInt64
    /// The module's name for code in a module (`wireguard`, `bpf` for BPF programs).
    public var module: String?

    /// `symbol+0xoffset`, and ` [module]` for code in a module.
    public var text: String {
      let located = offset == 0 ? name : "\(name)+0x\(String(offset, radix: 16))"
      return module.map { "\(located) [\($0)]" } ?? located
    }
  }

  public func describe(_ address: UInt64) -> String {
    locate(address)?.text ?? "0x" + String(address, radix: 16)
  }

  /// The symbol at or below `address`, or nil when there is none (or kallsyms is hidden).
  public func locate(_ address: UInt64) -> Location? {
    let table = loaded()
    // The last symbol at or below the address.
    var low = 0
    var high = table.count - 1
    var found: Int?
    while low <= high {
      let mid = (low + high) / 2
      if table[mid].address <= address {
        found = mid
        low = mid + 1
      } else {
        high = mid - 1
      }
    }
    guard let index = found, address != 0 else { return nil }
    let symbol = table[index]
    return Location(name: symbol.name, offset: address - symbol.address, module: symbol.module)
  }

  private func loaded() -> [(address: UInt64, name: String, module: String?)] {
    symbols.withLock { symbols in
      if let symbols { return symbols }
      let table = Self.read(path)
      symbols = table
      return table
    }
  }

  private static func read(_ path: String) -> [(address: UInt64, name: String, module: String?)] {
    var table: [(address: UInt64, name: String, module: String?)] = []
    if let data = ProcFile.read(path) {
      let text = String(decoding: data, as: UTF8.self)
      for line in text.split(separator: "\n") {
        // "address type name", and for a module's symbols a tab and "[module]" after the name.
        let parts = line.split(separator: " ", maxSplits: 2)
        // Only code: text symbols (t/T); addresses of 0 mean kallsyms is hidden from us.
        guard parts.count == 3, parts[1] == "t" || parts[1] == "T",
          let address = UInt64(parts[0], radix: 16), address != 0
        else { continue }
        let nameAndModule = parts[2].split(separator: "\t", maxSplits: 1)
        guard let name = nameAndModule.first else { continue }
        let module = nameAndModule.count == 2 ? String(nameAndModule[1].filter { !"[] ".contains($0) }) : nil
        table.append((address, String(name), module))
      }
    }
    table.sort { $0.address < $1.address }
    return table
  }
}

/// Files of /proc and tracefs, read whole.
public enum ProcFile {
  /// Reads a file to its end. /proc and tracefs files report a size of 0 and are produced as
  /// they are read, so reading by the reported size gets nothing or a first page.
  public static func read(_ path: String) -> [UInt8]? {
    try? WholeFile.read(path, limit: 1 << 28).get()
  }
}
