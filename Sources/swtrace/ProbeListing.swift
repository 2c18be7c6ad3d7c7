import ArgumentParser
import BTF
import Glibc
import Sema
import SwtraceSyntax

/// `swtrace -l`: the probes a pattern matches, or those a spec attaches to, one per line,
/// each named exactly as a spec accepts it and followed by its typed arguments:
///
///     skb:kfree_skb (struct sk_buff * skb, void * location, enum skb_drop_reason reason, ...)
///     tracepoint:net:net_dev_queue (struct sk_buff * skb)
///     kprobe:ip_rcv (struct sk_buff * skb, struct net_device * dev, ...)
enum ProbeListing {
  /// What `-l` was given: `-e SPEC`, or an argument that is a spec file or a pattern.
  struct Request {
    var expression: String?
    var argument: String?
  }

  /// Listed when `-l` is given nothing: the probes of packets, and every tracepoint.
  static let everything = "skb:*, tracepoint:*:*"

  static func print(_ request: Request, resolver: ProbeResolver, verbose: Bool) throws {
    let source = try listedSource(request)
    let parsed = Parser.parse(source)
    if parsed.hasErrors {
      Console.diagnostics(parsed.diagnostics, in: source)
      throw ExitStatus.specError
    }
    var printed = Set<String>()
    var lines: [String] = []
    for probe in parsed.spec.clauses.flatMap(\.probes) {
      let points: [AttachPoint]
      switch probe.kind {
      case .begin, .end, .interval: continue  // run by swtrace itself, nothing to attach
      default: break
      }
      do {
        points = try resolver.resolve(probe)
      } catch {
        Console.diagnostics([error], in: source)
        throw ExitStatus.specError
      }
      for point in points {
        var line = "\(name(of: point, as: probe.kind, resolver: resolver)) (\(arguments(of: point, resolver: resolver)))"
        if verbose, case .skb = probe.kind { line += "  via \(concreteName(of: point, resolver: resolver))" }
        if verbose, case .tracepoint = probe.kind { line += recordedFields(of: point, resolver: resolver) }
        if printed.insert(line).inserted { lines.append(line) }
      }
    }
    // The count first, on stderr, as the documentation shows it ahead of the list.
    Console.writeError("\(lines.count) attach point\(lines.count == 1 ? "" : "s")\n")
    try Console.printOnce(lines.map { $0 + "\n" }.joined(), contents: "the probe list")
  }

  /// The spec to resolve: `-e SPEC`, a spec file, or a pattern turned into a clause.
  static func listedSource(_ request: Request) throws -> SourceFile {
    if let expression = request.expression { return SourceFile(name: "<spec>", text: expression) }
    guard let argument = request.argument else {
      return SourceFile(name: "<probe>", text: "\(everything) { exit() }")
    }
    // A spec file (or - for standard input) is listed like the spec it holds.
    if argument == "-" || argument.hasSuffix(".spec") || access(argument, F_OK) == 0 {
      return try SpecInput.loadOrExit(expression: nil, path: argument)
    }
    return SourceFile(name: "<probe>", text: "\(argument) { exit() }")
  }

  /// The name a spec would use: `skb:NAME` for `skb:` probes, `tracepoint:CATEGORY:NAME`
  /// (category `*` when it is unknown, as with --btf), `kprobe:FUNC` and the like.
  static func name(of point: AttachPoint, as kind: Probe.Kind, resolver: ProbeResolver) -> String {
    if case .skb = kind { return "skb:\(point.name)" }
    return concreteName(of: point, resolver: resolver)
  }

  /// What the point attaches with: `tracepoint:net:net_dev_queue`, `fentry:ip_rcv`.
  static func concreteName(of point: AttachPoint, resolver: ProbeResolver) -> String {
    if point.backend == .tracepoint {
      return "tracepoint:\(resolver.tracepointCategory(of: point.name) ?? "*"):\(point.name)"
    }
    return "\(point.backend.rawValue):\(point.name)"
  }

  /// With -v, what a `tracepoint:` clause reads as `args.NAME`: the fields of the record the
  /// tracepoint writes, one indented line each, as bpftrace's -lv lists them (a
  /// variable-length `__data_loc` field is read with `str()`). Empty when BTF cannot tell the
  /// record.
  static func recordedFields(of point: AttachPoint, resolver: ProbeResolver) -> String {
    guard point.backend == .tracepoint, let record = resolver.tracepointRecord(point) else { return "" }
    return resolver.types.recordFields(record).map { field in
      field.dataLocation
        ? "\n    __data_loc args.\(field.name) (variable length: str(args.\(field.name)))"
        : "\n    \(resolver.types.describe(field.type)) args.\(field.name)"
    }.joined()
  }

  /// Each argument under the name a spec reaches it by: `args.NAME` where a packet name takes
  /// the bare one (skb->dev for net_dev_xmit's `dev`).
  static func arguments(of point: AttachPoint, resolver: ProbeResolver) -> String {
    point.arguments.map { argument in
      let hidden = argument.name != "skb" && Checker.packetNameHides(argument.name, at: point, types: resolver.types)
      return "\(resolver.types.describe(argument.type)) \(hidden ? "args." : "")\(argument.name)"
    }.joined(separator: ", ")
  }
}
