// swtrace-pktgen: the project's own, deliberately small traffic generator for tests,
// the demo and benchmarks. It only ever sends to loopback (127.0.0.0/8) or to the
// project's test namespaces (10.200.0.0/16); every loop is bounded in count and time.

import Glibc

let usage = """
  usage: swtrace-pktgen <command> [options]

  commands:
    udp   --dst ADDR --port P --count N [--sizes LIST] [--mark M] [--rate PPS]
          [--max-seconds S] [--src ADDR] [--src-port P] [--gso-size BYTES]
          Sends N UDP datagrams, payload sizes cycling through LIST (default 64;
          e.g. 100,200,300 or 100-149). --mark sets SO_MARK (needs root).
          --gso-size sets UDP_SEGMENT: a payload larger than BYTES leaves as one
          GSO datagram, cut into BYTES-sized datagrams on the way out (at most
          64 segments); with it every payload is held in page fragments. Prints
          'sent N'.
    icmp  --dst ADDR --count N [--id ID] [--size BYTES] [--mark M] [--interval S]
          [--timeout S] [--max-seconds S]
          Sends ICMP echo requests with sequence 1...N over a raw socket (needs
          root), waiting up to --timeout (default 1 s) for each reply. Prints
          'reply seq=N' per reply, then 'sent N received M'.
    frame --dev IF --hex BYTES [--count N] [--mark M]
          Writes the link-layer frame BYTES (hex digits, ':' and spaces ignored)
          as given through a packet socket on IF, a virtual device (veth, lo,
          dummy), N times (default 1). Frames shorter than their headers are
          sent as they are. Prints 'sent N'.
    sink  --port P [--count N] [--max-seconds S] [--bind ADDR] [--ready-file PATH]
          [--verbose]
          Counts UDP datagrams until N arrived (0 = no limit) or S seconds passed.
          Creates PATH once listening. Prints 'received N bytes B'.

  Destinations must be in 127.0.0.0/8 or 10.200.0.0/16; udp also sends to ::1
  and fd00:200::/32 (IPv6, without --src). --max-seconds defaults
  to 10. Exit status: 0 done, 1 fell short (time limit, send error, missing
  replies), 2 usage error or refused destination.

  """

let arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first else {
  writeAll(2, usage)
  exit(Status.usage)
}
let rest = Array(arguments.dropFirst())

// SIGPIPE would kill us silently when stdout goes away; report write errors instead.
signal(SIGPIPE, SIG_IGN)

switch command {
case "udp":
  exit(UDPSender(arguments: rest).run())
case "icmp":
  exit(ICMPPinger(arguments: rest).run())
case "sink":
  exit(UDPSink(arguments: rest).run())
case "frame":
  exit(FrameSender(arguments: rest).run())
case "-h", "--help", "help":
  writeAll(1, usage)
  exit(Status.ok)
default:
  usageFailure("unknown command '\(command)'")
}
