import ArgumentParser
import Runtime

@main
struct Swtrace: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "swtrace",
    abstract: "Trace packets through the Linux kernel with a small bpftrace-like language compiled to eBPF.",
    discussion: """
      swtrace compiles a spec, written in a small bpftrace-like language, to eBPF itself: it \
      checks every name against the kernel's BTF, pre-checks the programs the way the kernel \
      verifier would, attaches them with libbpf and prints one line per event, or the spec's \
      maps when it ends. Without a subcommand, swtrace traces (the trace subcommand).
      """,
    version: "0.1.0",
    subcommands: [Trace.self, Check.self, Format.self],
    defaultSubcommand: Trace.self
  )

  /// `swtrace --help` shows what a newcomer runs first, tracing, with its options and
  /// examples (the help of `trace`, the default command), rather than a list of subcommands.
  static func main() {
    // Before anything is opened: a closed standard stream is filled, SIGPIPE is an error.
    StandardStreams.prepare()
    let arguments = Array(CommandLine.arguments.dropFirst())
    if arguments == ["-h"] || arguments == ["--help"] || arguments == ["help"] {
      print(helpMessage(for: Trace.self))
      return
    }
    main(nil)
  }
}

/// Exit statuses: 1 for a spec the user can fix, 2 when the kernel or system refuses (or the
/// output cannot be written), 3 when the `-c` command failed, 4 when the trace ran but
/// events were lost, 64 (EX_USAGE, from the argument parser) for a command line swtrace does
/// not understand, 130 after a second stop signal.
enum ExitStatus {
  static let specError = ExitCode(1)
  static let systemRefused = ExitCode(2)
  static let commandFailed: Int32 = 3
  static let eventsLost: Int32 = 4
}
