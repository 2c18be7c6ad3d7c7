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
        let arguments = point.arguments.map { "\(resolver.types.describe($0.type)) \($0.name)" }
        Swift.print("\(point.backend.rawValue):\(point.name)(\(arguments.joined(separator: ", ")))")
      }
      count += points.count
    }
    Console.writeError("\(count) attach point\(count == 1 ? "" : "s")\n")
  }
}
