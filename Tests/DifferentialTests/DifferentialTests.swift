// The promise behind the pre-check: a program it accepts, the kernel accepts. Generated specs
// of growing size, and deliberately broken variants of their programs, are judged by both;
// every disagreement where the pre-check said yes is a failure.

import BPF
import BTF
import CodeGen
import Foundation
import KernelTestSupport
import Runtime
import Sema
import SwtraceSyntax
import TestSupport
import Testing

/// One deliberate break of a correct program, the kind of bug a code generator could have.
func mutate(_ program: Program, random: inout SplitMix64) -> Program {
  var instructions = program.instructions
  let index = Int(random.next() % UInt64(instructions.count))
  switch random.next() % 7 {
  case 0:  // drop an instruction (null checks, initialisations, bounds)
    instructions.remove(at: index)
  case 1:  // read through another register
    if case .load(let size, let dst, _, let offset) = instructions[index] {
      instructions[index] = .load(size, dst, Register(UInt8(random.next() % 10)), offset: offset)
    }
  case 2:  // shift a memory offset
    switch instructions[index] {
    case .load(let size, let dst, let src, let offset):
      instructions[index] = .load(size, dst, src, offset: offset &+ Int16(truncatingIfNeeded: Int(random.next() % 64) - 32))
    case .store(let size, let dst, let offset, let src):
      instructions[index] = .store(size, dst, offset: offset &- 512, src)
    default:
      instructions[index] = .mov(Register(UInt8(random.next() % 10)), Int32(random.next() % 100))
    }
  case 3:  // retarget a jump
    if case .jumpIf(let condition, let dst, let operand, let offset) = instructions[index] {
      instructions[index] = .jumpIf(condition, dst, operand, offset: offset &+ Int16(Int(random.next() % 5) - 2))
    }
  case 4:  // forget the result of a helper
    if case .call = instructions[index] { instructions.insert(.mov(.r0, 0), at: min(index + 1, instructions.count)) }
  case 5:  // clobber a callee-saved register
    instructions.insert(.mov(Register(UInt8(6 + random.next() % 4)), Int32(random.next() % 16)), at: index)
  default:  // swap neighbours
    if index + 1 < instructions.count { instructions.swapAt(index, index + 1) }
  }
  return Program(instructions: instructions)
}

/// The number members of struct sk_buff in the running kernel, by name.
func skbNumberFields(_ types: KernelTypes) -> [String] {
  guard let skb = types.structure("sk_buff") else { return ["len", "mark"] }
  let skipped: Set<String> = ["skb", "len"]
  return types.members(of: skb).filter { member in
    guard !member.name.isEmpty, !skipped.contains(member.name) else { return false }
    switch types.type(types.resolved(member.type)) {
    case .integer, .enumeration: return true
    default: return false
    }
  }.map(\.name).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
}

/// Tallies of a differential run, printed at its end.
struct DifferentialTally {
  var specs = 0
  var loaded = 0
  var programs = 0
  var refusedByKind: [String: Int] = [:]
  var refusalsByMessage: [String: Int] = [:]
  var loadedByKind: [String: Int] = [:]
  var broken = 0
  var acceptedBoth = 0
  var rejectedBoth = 0
  var rejectedByPrecheckOnly = 0
  var largestKernelCount = 0
  /// The smallest ratio of the pre-check's count of the kernel's work to the kernel's.
  var lowestRatio = Double.infinity
  var lowestRatioSpec = ""
  var secondsByKind: [String: Double] = [:]
  /// Specs refused as too complex for the kernel, and those of them the kernel also refuses.
  var refusedAsTooComplex = 0
  var tooComplexForTheKernelToo = 0
  /// The kernel's counts for the others: the pre-check refuses at 900,000.
  var acceptedTooComplex: [Int] = []
  var disagreements: [String] = []
  /// Compiled specs of the bpftrace-constructs class holding each of its constructs.
  var constructs = Dictionary(uniqueKeysWithValues: SpecGenerator.constructMarkers.map { ($0, 0) })

  var summary: String {
    let rejections = rejectedBoth + rejectedByPrecheckOnly
    let refusals = refusalsByMessage.sorted { $0.value > $1.value }.prefix(12).map { "  \($0.value)x \($0.key)" }
    return """
      differential: \(specs) generated specs (\(programs) programs), \(loaded) loaded, \(specs - loaded) refused with located diagnostics; \
      loaded by class \(loadedByKind.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")); \
      refused by class \(refusedByKind.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")); \
      refused as too complex \(refusedAsTooComplex), of which the kernel refuses \(tooComplexForTheKernelToo) when loaded without the pre-check and checks the others with \(acceptedTooComplex.sorted()) instructions;
      most kernel work for a loaded program \(largestKernelCount) instructions, lowest ratio of the pre-check's count to it \(String(format: "%.3f", lowestRatio)); seconds by class \(secondsByKind.sorted { $0.key < $1.key }.map { "\($0.key) \(Int($0.value))" }.joined(separator: ", "))
      \(broken) broken variants: accepted by both \(acceptedBoth), rejected by both \(rejectedBoth), rejected by the pre-check only \(rejectedByPrecheckOnly) (agreement on rejections \(rejections == 0 ? 100 : 100 * rejectedBoth / rejections)%)
      refusals:
      \(refusals.joined(separator: "\n"))
      lowest ratio: \(lowestRatioSpec)
      compiled specs with each of issue 20's constructs: \(constructs.sorted { $0.key < $1.key })
      """
  }
}

@Suite("verifier pre-check against the kernel", .serialized)
struct DifferentialTests {
  /// Programs per run (generated specs' programs plus broken variants):
  /// `SWTRACE_DIFFERENTIAL_PROGRAMS`. `make test` runs a sample of 600 (about a minute in a
  /// debug build); `make differential` runs 3,000 with the same seed and the same classes.
  static var target: Int { Int(ProcessInfo.processInfo.environment["SWTRACE_DIFFERENTIAL_PROGRAMS"] ?? "") ?? 600 }
  static var seed: UInt64 {
    UInt64(ProcessInfo.processInfo.environment["SWTRACE_DIFFERENTIAL_SEED"] ?? "") ?? 0x5eed_2026
  }

  @Test("no program the pre-check accepts is rejected by the kernel or under-counted, and every refusal is located", .needsKernelLoading)
  func precheckAcceptanceImpliesKernelAcceptance() throws {
    let types = try KernelTypes.loadRunningKernel()
    let support = KernelCapabilities.detect(types: types)
    let compiler = runningKernelCompiler(types)
    _ = support
    let fields = skbNumberFields(types)
    print("differential: \(fields.count) number fields of struct sk_buff")
    var generator = SpecGenerator(seed: Self.seed, skbNumberFields: fields)
    var mutations = SplitMix64(seed: 0xb0_6005)
    var tally = DifferentialTally()
    while tally.programs + tally.broken < Self.target {
      let (text, kind) = generator.spec()
      tally.specs += 1
      let started = Date()
      defer { tally.secondsByKind[kind, default: 0] += Date().timeIntervalSince(started) }
      let file = SourceFile(name: "<generated>", text: text)
      let compiled: CompiledSpec
      switch compiler.compile(file) {
      case .failed(let diagnostics):
        tally.refusedByKind[kind, default: 0] += 1
        if diagnostics.contains(where: { $0.message.contains("too close to its limit") }) {
          tally.refusedAsTooComplex += 1
          if let unchecked = compileWithoutPrecheck(file, types: types) {
            switch loadIntoKernel(unchecked) {
            case .failure: tally.tooComplexForTheKernelToo += 1
            case .success(let counts): tally.acceptedTooComplex.append(counts.max() ?? 0)
            }
          }
        }
        for diagnostic in diagnostics where diagnostic.severity == .error {
          tally.refusalsByMessage[Self.refusalKey(diagnostic), default: 0] += 1
          if let shown = ProcessInfo.processInfo.environment["SWTRACE_DIFFERENTIAL_SHOW"],
            Self.refusalKey(diagnostic).contains(shown)
          {
            print("refused [\(kind)]: \(diagnostic.message)\n\(text)\n")
          }
          // Located: a range inside the spec, which the renderer prints as FILE:LINE:COL.
          if diagnostic.range.start > text.utf8.count || diagnostic.range.end > text.utf8.count {
            tally.disagreements.append("refusal not located in the spec (\(diagnostic.range)): \(diagnostic.message)\n\(text)")
          }
        }
        continue
      case .compiled(let result, _):
        compiled = result
      }
      tally.programs += compiled.programs.count
      if kind == "bpftrace-constructs" {
        for construct in SpecGenerator.constructMarkers where text.contains(construct) { tally.constructs[construct, default: 0] += 1 }
      }
      switch loadIntoKernel(compiled) {
      case .failure(let error):
        tally.disagreements.append("[\(kind)] spec accepted by the pre-check, rejected by the kernel:\n\(text)\n\(error)")
      case .success(let kernelCounts):
        tally.loaded += 1
        tally.loadedByKind[kind, default: 0] += 1
        // The cost model counts at least the kernel's work on every program it accepts.
        for (program, kernelCount) in zip(compiled.programGroups.map { $0[0] }, kernelCounts) {
          tally.largestKernelCount = max(tally.largestKernelCount, kernelCount)
          let model = program.verifierWork ?? 0
          // The pre-check refuses at 900,000, 90% of the kernel's limit: it must count at
          // least 90% of the kernel's work for that to refuse whatever the kernel would.
          let ratio = Double(model) / Double(max(1, kernelCount))
          if ratio < tally.lowestRatio {
            tally.lowestRatio = ratio
            tally.lowestRatioSpec = "\(model) of \(kernelCount) for \(program.attachPoint.name) of:\n\(text)"
          }
          if 10 * model < 9 * kernelCount {
            tally.disagreements.append(
              "[\(kind)] the pre-check counted \(model) instructions of the kernel's work, the kernel \(kernelCount), for \(program.attachPoint.name) of:\n\(text)")
          }
        }
      }
      // Broken variants of every fourth accepted spec's first program.
      guard tally.loaded % 4 == 0 else { continue }
      var variant = compiled
      variant.programs = [compiled.programs[0]]
      variant.programs[0].program = mutate(compiled.programs[0].program, random: &mutations)
      tally.broken += 1
      let precheck = Verifier.check(
        variant.programs[0].program, context: variant.programs[0].context, maps: variant.maps,
        kernelObjects: variant.programs[0].kernelObjects)
      let kernel = loadIntoKernel(variant)
      switch (precheck.isEmpty, kernel) {
      case (true, .success): tally.acceptedBoth += 1
      case (false, .failure): tally.rejectedBoth += 1
      case (false, .success): tally.rejectedByPrecheckOnly += 1
      case (true, .failure(let error)):
        tally.disagreements.append("broken variant of `\(text)` accepted by the pre-check, rejected by the kernel:\n\(error)")
      }
    }
    print(tally.summary)
    #expect(tally.programs + tally.broken >= Self.target)
    #expect(tally.constructs.values.allSatisfy { $0 > 0 }, "\(tally.constructs)")
    #expect(
      tally.disagreements.isEmpty,
      "\(tally.disagreements.count) disagreements, e.g.\n\(tally.disagreements.prefix(3).joined(separator: "\n\n"))")
  }

  /// A refusal's message with its numbers and quoted names blanked, to count kinds of refusal.
  static func refusalKey(_ diagnostic: Diagnostic) -> String {
    let blanked = diagnostic.message.replacing(/'[^']*'|"[^"]*"|\d+/, with: "_")
    return "\(diagnostic.id): \(blanked.prefix(140))"
  }
}
