import ArgumentParser

@main
struct Swtrace: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "swtrace",
    abstract: "Trace packets through the Linux kernel with a small bpftrace-like language compiled to eBPF.",
    discussion: """
      Examples:
        swtrace -e 'skb:* /mark==0xdead/ < print(len, gso_type) >'
        swtrace -o json -c 'ping -c1 10.200.0.2' -e 'skb:net_dev_queue < print(len, ifname) >'
        swtrace -l 'skb:*'
        swtrace check --btf other-kernel.btf specs/drops.spec
      """,
    version: "0.1.0",
    subcommands: [Trace.self, Check.self, Format.self],
    defaultSubcommand: Trace.self
  )
}

/// Exit statuses: 1 for a spec the user can fix, 2 when the kernel or system refuses.
enum ExitStatus {
  static let specError = ExitCode(1)
  static let systemRefused = ExitCode(2)
}
