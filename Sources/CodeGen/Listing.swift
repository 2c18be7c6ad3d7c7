public import BPF
public import SwtraceSyntax

extension CompiledSpec {
  /// `--dump-bpf`: every program with the spec line each run of instructions came from.
  public func listing(source: SourceFile) -> String {
    var mapNames: [Int32: String] = [:]
    for (index, map) in maps.enumerated() { mapNames[Int32(index)] = map.name }
    let disassembler = Disassembler(mapNames: mapNames)
    return programs.map { program in
      "\(program.attachPoint.backend.rawValue):\(program.attachPoint.name) (\(program.program.slotCount) instructions)\n"
        + disassembler.text(program.program, source: source)
    }.joined(separator: "\n")
  }
}
