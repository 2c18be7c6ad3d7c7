import CodeGen
import FoundationEssentials
import Glibc
import Runtime
import SwtraceSyntax

/// `swtrace check --timings N SPEC` (hidden, for bench/check-time.sh): checks one spec N times
/// in this process, each run from a fresh BTF load, and prints per-phase medians. Process
/// start-up is left out on purpose; the start-up benchmark measures it. The compile is the
/// one `swtrace check` runs; its phases are timed as the compiler reports them.
enum CheckTimings {
  /// In pipeline order; "load+check" is everything up to and including `check`.
  static let phases = ["btf-load", "environment"] + CompilerPhase.allCases.map(\.rawValue)
  static let loadAndCheckPhases = phases.prefix { $0 != CompilerPhase.desugar.rawValue }

  struct Sample {
    /// Milliseconds per phase, wall clock and this thread's CPU time.
    var wall: [String: Double] = [:]
    var cpu: [String: Double] = [:]
    var programs = 0
  }

  static func run(source: SourceFile, btfPath: String?, runs: Int) throws {
    var samples: [Sample] = []
    for _ in 0..<runs {
      // Each run's BTF and indices are released when `measure` returns: runs share nothing.
      samples.append(try measure(source: source, btfPath: btfPath))
    }
    try Console.printOnce(report(samples, btfPath: btfPath), contents: "the timings")
  }

  private static func measure(source: SourceFile, btfPath: String?) throws -> Sample {
    var sample = Sample()
    var clock = PhaseClock()
    let environment: TracingEnvironment
    do throws(EnvironmentError) {
      let types = try TracingEnvironment.loadTypes(btfPath: btfPath)
      clock.lap("btf-load", into: &sample)
      environment = try TracingEnvironment.make(types: types, privilegedDetection: false)
      clock.lap("environment", into: &sample)
    } catch {
      throw TracingEnvironment.report(error)
    }
    let outcome = environment.compiler().compile(source) { phase in clock.lap(phase.rawValue, into: &sample) }
    switch outcome {
    case .failed(let diagnostics):
      Console.diagnostics(diagnostics, in: source)
      throw ExitStatus.specError
    case .compiled(let compiled, _):
      sample.programs = compiled.programs.count
      return sample
    }
  }

  /// `value` with two decimals, as printf's `%.2f` writes it.
  static func fixed(_ value: Double) -> String {
    let hundredths = Int64((abs(value) * 100).rounded())
    let fraction = hundredths % 100
    return (value < 0 && hundredths > 0 ? "-" : "") + "\(hundredths / 100)." + (fraction < 10 ? "0" : "") + "\(fraction)"
  }

  static func report(_ samples: [Sample], btfPath: String?) -> String {
    // The first run also pays for what a fresh process does once (page faults, lazy binding,
    // Swift metadata): it is what a single `swtrace check` sees, the median what repeats see.
    func row(_ name: String, _ wall: [Double], _ cpu: [Double]) -> String {
      let columns = [median(wall), wall.min() ?? 0, median(cpu), wall.first ?? 0].map { fixed($0).leftPadded(to: 10) }
      let label = name.count < 12 ? name + String(repeating: " ", count: 12 - name.count) : String(name.prefix(12))
      return label + columns.joined() + "\n"
    }
    var text = "# \(samples.count) runs in one process against \(btfPath ?? "the running kernel's BTF"), "
    text += "\(samples.first?.programs ?? 0) programs; milliseconds\n"
    text += "phase       " + ["median", "min", "cpu med", "first"].map { $0.leftPadded(to: 10) }.joined() + "\n"
    for phase in phases {
      text += row(phase, samples.map { $0.wall[phase] ?? 0 }, samples.map { $0.cpu[phase] ?? 0 })
    }
    func total(_ keys: some Sequence<String>, _ values: KeyPath<Sample, [String: Double]>) -> [Double] {
      samples.map { sample in keys.reduce(0) { $0 + (sample[keyPath: values][$1] ?? 0) } }
    }
    text += row("load+check", total(loadAndCheckPhases, \.wall), total(loadAndCheckPhases, \.cpu))
    text += row("total", total(phases, \.wall), total(phases, \.cpu))
    return text
  }

  static func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
  }
}

/// Wall and thread CPU time since the previous lap.
private struct PhaseClock {
  private var wall = PhaseClock.now(CLOCK_MONOTONIC)
  private var cpu = PhaseClock.now(CLOCK_THREAD_CPUTIME_ID)

  mutating func lap(_ phase: String, into sample: inout CheckTimings.Sample) {
    let (wallNow, cpuNow) = (Self.now(CLOCK_MONOTONIC), Self.now(CLOCK_THREAD_CPUTIME_ID))
    sample.wall[phase] = wallNow - wall
    sample.cpu[phase] = cpuNow - cpu
    (wall, cpu) = (wallNow, cpuNow)
  }

  /// Milliseconds on `clock`.
  static func now(_ clock: clockid_t) -> Double {
    var time = timespec()
    clock_gettime(clock, &time)
    return Double(time.tv_sec) * 1e3 + Double(time.tv_nsec) / 1e6
  }
}

extension String {
  fileprivate func leftPadded(to width: Int) -> String {
    count >= width ? self : String(repeating: " ", count: width - count) + self
  }
}
