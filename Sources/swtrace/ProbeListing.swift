import ArgumentParser
import BTF
import Sema
import SwtraceSyntax

/// `swtrace -l PROBE`: the attach points a probe matches, with their typed arguments.
enum ProbeListing {
  static func print(pattern: String, resolver: ProbeResolver) throws {
    let source = SourceFile(name: "<probe>", text: "\(pattern) { exit() }")
    let parsed = Parser.parse(source)
    if parsed.hasErrors {
      Console.diagnostics(parsed.diagnostics, in: source)
      throw ExitStatus.specError
    }
    var count = 0
    for probe in parsed.spec.clauses.flatMap(\.probes) {
      let points: [AttachPoint]
      do {
        points = try resolver.resolve(probe)
      } catch {
        Console.diagnostics([error], in: source)
        throw ExitStatus.specError
      }
      for point in points {
        // Each argument under the name a spec reaches it by: `args.NAME` where a packet name
        // (skb->dev for net_dev_xmit's `dev`) takes the bare one.
        let arguments = point.arguments.map { argument in
          let hidden = argument.name != "skb" && Checker.packetNameHides(argument.name, at: point, types: resolver.types)
          return "\(resolver.types.describe(argument.type)) \(hidden ? "args." : "")\(argument.name)"
        }
        Swift.print("\(point.backend.rawValue):\(point.name)(\(arguments.joined(separator: ", ")))")
      }
      count += points.count
    }
    Console.writeError("\(count) attach point\(count == 1 ? "" : "s")\n")
  }
}
