public import BPF
public import SwtraceSyntax

extension CompiledSpec {
  /// `--dump-bpf`: every program with the spec line each run of instructions came from.
  public func listing(source: SourceFile) -> String {
    var mapNames: [Int32: String] = [:]
    for (index, map) in maps.enumerated() { mapNames[Int32(index)] = map.name }
    let disassembler = Disassembler(mapNames: mapNames)
    return programGroups.map { group in
      let program = group[0]
      let shared =
        group.count == 1
        ? "" : ", shared by \(group.count) functions through kprobe.multi, probe id from the attach cookie"
      return
        "\(program.attachPoint.backend.rawValue):\(program.attachPoint.name) (\(program.program.slotCount) instructions\(shared))\n"
        + disassembler.text(program.program) { tag in
          // The spec line the instructions came from, the way bpftool's `linum` shows it.
          let line = source.location(of: SourceRange(tag).start).line
          let text = source.lineText(line).drop(while: { $0 == " " || $0 == "\t" })
          return "\(text) @ \(source.name):\(line)"
        }
    }.joined(separator: "\n")
  }
}
