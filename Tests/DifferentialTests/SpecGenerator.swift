// Random specs for the differential test: every construct of the language, typed so that
// most specs are legal, in shapes from the ordinary to the extreme, over skb and other
// tracepoints. Each spec is labelled with the class it stresses, so the test can report
// what was refused where.

import BTF
import Foundation
import TestSupport

/// What an attach point offers a clause.
struct ProbeShape {
  var probe: String
  var hasSkb: Bool
  /// Arguments that are numbers.
  var numbers: [String]
  /// Expressions through pointer arguments that read numbers.
  var pointerNumbers: [String]
}

struct SpecGenerator {
  var random: SplitMix64
  /// Number members of struct sk_buff in the running kernel (integers, enums, bitfields).
  let skbNumberFields: [String]

  static let skbProbes: [ProbeShape] = [
    ProbeShape(probe: "skb:net_dev_queue", hasSkb: true, numbers: [], pointerNumbers: []),
    ProbeShape(probe: "skb:netif_receive_skb", hasSkb: true, numbers: [], pointerNumbers: []),
    ProbeShape(probe: "skb:consume_skb", hasSkb: true, numbers: [], pointerNumbers: []),
    ProbeShape(probe: "skb:kfree_skb", hasSkb: true, numbers: ["reason"], pointerNumbers: ["rx_sk->sk_mark"]),
    // After the hand-over to the driver the packet is not read (issue 18): its own arguments only.
    ProbeShape(probe: "skb:net_dev_xmit", hasSkb: false, numbers: ["rc", "args.skb_len"], pointerNumbers: ["dev->mtu", "dev->ifindex"]),
    ProbeShape(probe: "skb:tcp_probe", hasSkb: true, numbers: [], pointerNumbers: ["sk->sk_mark", "sk->sk_rcvbuf", "sk->__sk_common.skc_family"]),
    ProbeShape(probe: "skb:qdisc_dequeue", hasSkb: true, numbers: ["packets"], pointerNumbers: ["qdisc->limit", "txq->state"]),
  ]
  static let otherProbes: [ProbeShape] = [
    ProbeShape(
      probe: "tracepoint:sched:sched_switch", hasSkb: false, numbers: ["prev_state", "preempt"],
      pointerNumbers: ["prev->pid", "next->pid", "next->prio", "prev->tgid", "next->se.vruntime"]),
    ProbeShape(
      probe: "tracepoint:sock:inet_sock_set_state", hasSkb: false, numbers: ["oldstate", "newstate"],
      pointerNumbers: ["sk->sk_mark", "sk->__sk_common.skc_family", "sk->sk_rcvbuf"]),
    ProbeShape(
      probe: "tracepoint:sock:sock_recv_length", hasSkb: false, numbers: ["ret", "flags"],
      pointerNumbers: ["sk->sk_mark", "sk->sk_sndbuf"]),
  ]

  static let derivedNumbers = ["gso_size", "gso_segs", "ifindex", "netns"]
  static let headerNumbers = [
    "ip.ttl", "ip.tos", "ip.len", "ip.id", "ip.proto", "ip6.len", "ip6.nexthdr", "ip6.hoplimit", "tcp.sport",
    "tcp.dport", "tcp.seq", "tcp.ack", "tcp.window", "udp.sport", "udp.dport", "udp.len", "icmp.type", "icmp.code",
    "icmp.id", "icmp.seq", "sport", "dport", "proto", "protocol",
    // Inside VXLAN and Geneve tunnels, and presence tests (issue 18).
    "inner.ip.ttl", "inner.ip6.hoplimit", "inner.tcp.dport", "inner.udp.sport", "inner.icmp.id", "has(udp)",
    "has(tcp.sport)", "has(inner.ip)", "has(inner.udp.dport)",
  ]
  static let nestedNumbers = [
    "skb->dev->mtu", "skb->dev->ifindex", "skb->dev->flags", "skb->dev->type", "skb->sk->sk_mark",
    "skb->sk->__sk_common.skc_family", "skb->dev->nd_net.net->ns.inum", "skb->dev->gso_max_size",
    "skb->sk->sk_priority",
  ]
  static let flagsValues = ["gso_type", "tcp.flags"]
  static let strings = ["ifname", "comm", "skb->dev->name"]
  static let ipv4Values = ["saddr", "daddr", "ip.saddr", "ip.daddr", "inner.ip.saddr"]
  static let ipv6Values = ["ip6.saddr", "ip6.daddr", "inner.ip6.daddr"]

  /// The state of one clause being generated.
  struct Clause {
    var shape: ProbeShape
    /// Variables assigned on every path to here, by kind.
    var numberVariables: [String] = []
    var stringVariables: [String] = []
    var addressVariables: [String] = []
    var nextVariable = 0
  }

  /// Maps of the spec: name, key kinds, whether they hold plain values.
  struct MapShape {
    var name: String
    var keys: [KeyKind]
    var aggregation: String
    /// `lhist` bounds, fixed by the first use.
    var bounds = ""
  }
  enum KeyKind: CaseIterable { case number, string, ipv4, ipv6, probe, skb }

  var maps: [MapShape] = []
  /// Maps assigned by statements already generated: only those can be read.
  var readableMaps = 0
  /// Maps some statement assigns.
  var assignedMaps: Set<String> = []

  init(seed: UInt64, skbNumberFields: [String]) {
    random = SplitMix64(seed: seed)
    self.skbNumberFields = skbNumberFields
  }

  mutating func pick<T>(_ values: [T]) -> T { values[Int(random.next() % UInt64(values.count))] }
  mutating func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }
  mutating func number(below limit: Int) -> Int { Int(random.next() % UInt64(max(1, limit))) }

  // MARK: - Values

  mutating func literal() -> String {
    switch random.next() % 8 {
    case 0: return "0"
    case 1: return "1"
    case 2: return "0x\(String(random.next() % 0x10000, radix: 16))"
    case 3: return "\(random.next() % 2000)"
    case 4: return "4294967295"
    case 5: return "0xdead"
    case 6: return "\(random.next())"
    default: return "\(random.next() % 64)"
    }
  }

  mutating func numberAtom(_ clause: Clause) -> String {
    let shape = clause.shape
    var choices: [() -> String] = [{ "cpu" }, { "pid" }, { "tid" }]
    let literal = self.literal()
    choices.append { literal }
    if !shape.numbers.isEmpty { let n = pick(shape.numbers); choices += [{ n }, { n }] }
    if !shape.pointerNumbers.isEmpty { let n = pick(shape.pointerNumbers); choices += [{ n }, { n }] }
    if shape.hasSkb {
      let field = pick(skbNumberFields)
      let derived = pick(Self.derivedNumbers)
      let header = pick(Self.headerNumbers)
      let nested = pick(Self.nestedNumbers)
      choices += [{ field }, { field }, { field }, { derived }, { header }, { header }, { nested }, { "len" }, { "mark" }]
      let index = number(below: 48)
      choices.append { "skb->cb[\(index)]" }
      let nameIndex = number(below: 16)
      choices.append { "skb->dev->name[\(nameIndex)]" }
      let headIndex = number(below: 64)
      choices.append { "skb->head[\(headIndex)]" }
      // Parts of the skb through integer-pointer casts: pointer members only whole.
      let width = pick([8, 16, 32, 64])
      let element = number(below: 232 / (width / 8))
      choices.append { "((u\(width) *)skb)[\(element)]" }
      let cast = pick([
        "((struct iphdr *)(skb->head + skb->network_header))->ttl",
        "((struct iphdr *)(skb->head + skb->network_header))->protocol",
        "((struct iphdr *)(skb->head + skb->network_header))->tot_len",
        "((struct tcphdr *)(skb->head + skb->transport_header))->dest",
        "((struct udphdr *)(skb->head + skb->transport_header))->len",
        "((struct sock *)skb->sk)->sk_mark",
        "((struct net_device *)skb->dev)->ifindex",
        "((struct ipv6hdr *)(skb->head + skb->network_header))->hop_limit",
      ])
      choices.append { cast }
    }
    if !clause.numberVariables.isEmpty { let v = pick(clause.numberVariables); choices += [{ v }, { v }] }
    if let map = maps.prefix(readableMaps).first(where: {
      $0.aggregation == "value" && $0.keys.allSatisfy { $0 == .number } && assignedMaps.contains($0.name)
    }) {
      let keys = (0..<map.keys.count).map { _ in "\(random.next() % 8)" }
      choices.append { "@\(map.name)\(keys.isEmpty ? "" : "[\(keys.joined(separator: ", "))]")" }
    }
    return pick(choices)()
  }

  mutating func numberExpression(_ clause: Clause, depth: Int) -> String {
    guard depth > 0, chance(45) else { return numberAtom(clause) }
    switch random.next() % 9 {
    case 0, 1, 2:
      let op = pick(["+", "-", "*", "&", "|", "^"])
      return "(\(numberExpression(clause, depth: depth - 1)) \(op) \(numberExpression(clause, depth: depth - 1)))"
    case 3:
      return "(\(numberExpression(clause, depth: depth - 1)) \(pick(["<<", ">>"])) \(random.next() % 64))"
    case 4:
      // Division and remainder, signed and unsigned, by constants and by values.
      let divisor = chance(50) ? "\(1 + random.next() % 1000)" : "(\(numberExpression(clause, depth: depth - 1)) | 1)"
      let signedCast = chance(40) ? "(s64)" : ""
      return "(\(signedCast)\(numberExpression(clause, depth: depth - 1)) \(pick(["/", "%"])) \(divisor))"
    case 5:
      return "(\(pick(["u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64", "bool"])))\(numberExpression(clause, depth: depth - 1))"
    case 6:
      return "\(pick(["-", "~", "!"]))\(numberExpression(clause, depth: depth - 1))"
    case 7:
      // A comparison as a value.
      return "(\(condition(clause, depth: depth - 1)))"
    default:
      return numberAtom(clause)
    }
  }

  mutating func stringValue(_ clause: Clause) -> String {
    var choices = ["comm"]
    if clause.shape.hasSkb { choices += Self.strings }
    choices += clause.stringVariables
    return pick(choices)
  }

  mutating func stringLiteral(maximum: Int = 15) -> String {
    let letters = Array("abcdefghijklmnopqrstuvwxyz0123456789-_.")
    let length = number(below: maximum + 1)
    return "\"" + String((0..<length).map { _ in pick(letters) }) + "\""
  }

  mutating func ipv4Literal() -> String { "\(random.next() % 256).\(random.next() % 256).\(random.next() % 256).\(random.next() % 256)" }

  mutating func ipv6Literal() -> String {
    pick(["::1", "fd00::1", "fe80::\(String(random.next() % 0xffff, radix: 16))", "::", "2001:db8::\(random.next() % 100)"])
  }

  mutating func condition(_ clause: Clause, depth: Int) -> String {
    if depth > 0, chance(30) {
      if chance(15) { return "!(\(condition(clause, depth: depth - 1)))" }
      return "(\(condition(clause, depth: depth - 1)) \(pick(["&&", "||"])) \(condition(clause, depth: depth - 1)))"
    }
    let hasSkb = clause.shape.hasSkb
    switch random.next() % (hasSkb ? 9 : 5) {
    case 0:
      return "\(stringValue(clause)) \(pick(["==", "!="])) \(stringLiteral())"
    case 1:
      return pick(["true", "false", "1 > 2", "3 >= 3", "0"])
    case 2, 3, 4:
      let op = pick(["==", "!=", "<", "<=", ">", ">="])
      return "\(numberExpression(clause, depth: depth - 1)) \(op) \(chance(60) ? literal() : numberExpression(clause, depth: depth - 1))"
    case 5:
      let address = clause.addressVariables.isEmpty ? pick(Self.ipv4Values) : pick(Self.ipv4Values + clause.addressVariables)
      return "\(address) in \(ipv4Literal())/\(pick([0, 8, 16, 24, 32, Int(random.next() % 33)]))"
    case 6:
      return "\(pick(Self.ipv6Values)) in \(ipv6Literal())/\(pick([0, 16, 64, 128, Int(random.next() % 129)]))"
    case 7:
      return "\(pick(Self.ipv4Values)) \(pick(["==", "!="])) \(pick([ipv4Literal(), pick(Self.ipv4Values)]))"
    default:
      return "\(pick(Self.ipv6Values)) \(pick(["==", "!="])) \(pick([ipv6Literal(), pick(Self.ipv6Values)]))"
    }
  }

  /// A printable value of any kind.
  mutating func printable(_ clause: Clause) -> String {
    let hasSkb = clause.shape.hasSkb
    switch random.next() % (hasSkb ? 10 : 5) {
    case 0, 1, 2: return numberExpression(clause, depth: 2)
    case 3: return stringValue(clause)
    case 4: return pick(["probe", "ts", "comm", stringLiteral()])
    case 5: return pick(Self.ipv4Values + clause.addressVariables)
    case 6: return pick(Self.ipv6Values)
    case 7: return pick(Self.flagsValues)
    case 8:
      return pick([
        "skb", "skb->dev", "skb->head", "skb->data", "(enum skb_drop_reason)(mark & 7)", "(enum sock_type)\(numberAtom(clause))",
        clause.shape.probe == "skb:kfree_skb" ? "ksym(location)" : "skb->dev",
      ])
    default: return numberAtom(clause)
    }
  }

  // MARK: - Statements

  mutating func printStatement(_ clause: Clause) -> String {
    "print(\((0..<1 + number(below: 5)).map { _ in printable(clause) }.joined(separator: ", ")))"
  }

  /// printf with conversions that match their values, flags, widths and precisions.
  mutating func printfStatement(_ clause: Clause) -> String {
    var format = ""
    var values: [String] = []
    for _ in 0..<1 + number(below: 5) {
      let flags = (0..<number(below: 3)).map { _ in pick(["-", "0", "+", " ", "#"]) }.joined()
      let width = chance(40) ? "\(number(below: 20))" : ""
      let precision = chance(20) ? ".\(number(below: 10))" : ""
      switch random.next() % 6 {
      case 0, 1:
        format += "%\(flags)\(width)\(precision)\(pick(["d", "i", "u", "x", "X", "o"])) "
        values.append(numberExpression(clause, depth: 2))
      case 2:
        format += "%\(width)c "
        values.append("(u8)\(numberAtom(clause))")
      case 3:
        format += "%\(chance(50) ? "-" : "")\(width)\(precision)s "
        values.append(chance(50) ? stringValue(clause) : printable(clause))
      case 4:
        format += "%p "
        values.append(clause.shape.hasSkb ? pick(["skb", "skb->dev", "skb->head"]) : "(u64)\(numberAtom(clause))")
      default:
        format += "%% "
      }
    }
    return "printf(\"\(format)\\n\"\(values.map { ", \($0)" }.joined()))"
  }

  mutating func key(_ kind: KeyKind, _ clause: Clause) -> String {
    switch kind {
    case .number: return chance(30) ? literal() : "(u64)\(numberExpression(clause, depth: 1))"
    case .string: return chance(40) ? stringLiteral() : stringValue(clause)
    case .ipv4: return clause.shape.hasSkb ? pick(Self.ipv4Values) : "0"
    case .ipv6: return clause.shape.hasSkb ? pick(Self.ipv6Values) : "0"
    case .probe: return "probe"
    case .skb: return clause.shape.hasSkb ? "skb" : "cpu"
    }
  }

  /// A map update: a new map with 0-4 keys and an aggregation, or a further use of one.
  mutating func mapStatement(_ clause: inout Clause) -> String {
    let kinds: [KeyKind] = clause.shape.hasSkb ? KeyKind.allCases : [.number, .string, .probe]
    if maps.isEmpty || chance(50), maps.count < 30 {
      let keys = (0..<number(below: 5)).map { _ in pick(kinds) }
      let aggregation = pick(["count", "sum", "avg", "min", "max", "stats", "hist", "lhist", "value"])
      let low = pick([0, -100, 10])
      let step = 1 + number(below: 100)
      let bounds = "\(low), \(low + 1 + number(below: 1000 * step)), \(step)"
      maps.append(MapShape(name: "m\(maps.count)", keys: keys, aggregation: aggregation, bounds: bounds))
    }
    let index = number(below: maps.count)
    let map = maps[index]
    if !clause.shape.hasSkb, map.keys.contains(where: { [.ipv4, .ipv6, .skb].contains($0) }) {
      return printStatement(clause)
    }
    let keyText = map.keys.isEmpty ? "" : "[\(map.keys.map { key($0, clause) }.joined(separator: ", "))]"
    // Deletes and reads only of maps an earlier statement assigned.
    let readable = index < readableMaps && assignedMaps.contains(map.name)
    if readable, chance(10) { return "delete(@\(map.name)\(keyText))" }
    if readable, map.aggregation == "value", !map.keys.isEmpty, chance(30) {
      return "print(@\(map.name)\(keyText))"
    }
    assignedMaps.insert(map.name)
    let value = numberExpression(clause, depth: 2)
    switch map.aggregation {
    case "count": return "@\(map.name)\(keyText) = count()"
    case "lhist": return "@\(map.name)\(keyText) = lhist(\(value), \(map.bounds))"
    case "value": return "@\(map.name)\(keyText) = \(value)"
    default: return "@\(map.name)\(keyText) = \(map.aggregation)(\(value))"
    }
  }

  mutating func assignment(_ clause: inout Clause) -> String {
    switch random.next() % 4 {
    case 0 where !clause.stringVariables.isEmpty || chance(50):
      let value = chance(50) ? stringLiteral() : stringValue(clause)
      let name = clause.stringVariables.isEmpty || chance(30) ? "$s\(clause.nextVariable)" : pick(clause.stringVariables)
      if !clause.stringVariables.contains(name) { clause.stringVariables.append(name); clause.nextVariable += 1 }
      return "\(name) = \(value)"
    case 1 where clause.shape.hasSkb:
      let name = clause.addressVariables.isEmpty || chance(30) ? "$a\(clause.nextVariable)" : pick(clause.addressVariables)
      let value = pick(Self.ipv4Values)
      if !clause.addressVariables.contains(name) { clause.addressVariables.append(name); clause.nextVariable += 1 }
      return "\(name) = \(value)"
    default:
      let value = numberExpression(clause, depth: 2)
      let name = clause.numberVariables.isEmpty || chance(30) ? "$n\(clause.nextVariable)" : pick(clause.numberVariables)
      if !clause.numberVariables.contains(name) { clause.numberVariables.append(name); clause.nextVariable += 1 }
      return "\(name) = \(value)"
    }
  }

  mutating func statement(_ clause: inout Clause, depth: Int) -> String {
    switch random.next() % 10 {
    case 0, 1: return printStatement(clause)
    case 2: return printfStatement(clause)
    case 3, 4: return mapStatement(&clause)
    case 5, 6: return assignment(&clause)
    case 7 where depth > 0:
      // Variables assigned in only one branch are not readable after the if.
      let before = clause
      var then = clause
      let thenBody = (0..<1 + number(below: 3)).map { _ in statement(&then, depth: depth - 1) }.joined(separator: "; ")
      var text = "if (\(condition(clause, depth: 2))) { \(thenBody) }"
      if chance(50) {
        var otherwise = before
        otherwise.nextVariable = then.nextVariable
        let elseBody = (0..<1 + number(below: 3)).map { _ in statement(&otherwise, depth: depth - 1) }.joined(separator: "; ")
        text += " else { \(elseBody) }"
        clause.numberVariables = then.numberVariables.filter(otherwise.numberVariables.contains)
        clause.stringVariables = then.stringVariables.filter(otherwise.stringVariables.contains)
        clause.addressVariables = then.addressVariables.filter(otherwise.addressVariables.contains)
        clause.nextVariable = otherwise.nextVariable
      } else {
        clause.nextVariable = then.nextVariable
      }
      return text
    case 8 where clause.shape.hasSkb && chance(20):
      return "track()"
    default:
      return printStatement(clause)
    }
  }

  // MARK: - Specs

  /// One spec of a class picked at random, and the class.
  mutating func spec() -> (text: String, kind: String) {
    maps = []
    readableMaps = 0
    assignedMaps = []
    let kinds = [
      "ordinary", "ordinary", "ordinary", "ordinary", "other-tracepoint", "maps", "printf", "casts", "dead-code",
      "user-clauses", "stack", "complexity", "extreme", "issue-cases", "bpftrace-constructs",
    ]
    let kind = pick(kinds)
    switch kind {
    case "other-tracepoint":
      return (clauseText(pick(Self.otherProbes), statements: 1 + number(below: 6)), kind)
    case "maps":
      var clause = Clause(shape: pick(Self.skbProbes))
      let body = (0..<2 + number(below: 8)).map { _ in
        defer { readableMaps = maps.count }
        return mapStatement(&clause)
      }.joined(separator: "\n  ")
      return ("\(clause.shape.probe) {\n  \(body)\n}", kind)
    case "printf":
      let clause = Clause(shape: pick(Self.skbProbes))
      let body = (0..<1 + number(below: 4)).map { _ in printfStatement(clause) }.joined(separator: "\n  ")
      return ("\(clause.shape.probe) {\n  \(body)\n}", kind)
    case "casts":
      return (castsSpec(), kind)
    case "dead-code":
      return (deadCodeSpec(), kind)
    case "user-clauses":
      let kernel = clauseText(pick(Self.skbProbes), statements: 2 + number(below: 4), forceMap: true)
      var text = kernel
      if let map = maps.first(where: { assignedMaps.contains($0.name) }) {
        text += "\nBEGIN { printf(\"start\\n\") }"
        text += "\nEND { print(@\(map.name)); clear(@\(map.name)) }"
        if chance(50) { text += "\ninterval:\(1 + number(below: 5))s { print(@\(map.name)) }" }
      }
      return (text, kind)
    case "stack":
      return (stackSpec(), kind)
    case "complexity":
      return (complexitySpec(), kind)
    case "extreme":
      return (extremeSpec(), kind)
    case "issue-cases":
      return (pick(Self.issueCases), kind)
    case "bpftrace-constructs":
      return (constructsSpec(), kind)
    default:
      let shape = pick(Self.skbProbes)
      var text = clauseText(shape, statements: 1 + number(below: 8))
      if chance(20) { text += "\n" + clauseText(pick(Self.skbProbes), statements: 1 + number(below: 3)) }
      return (text, kind)
    }
  }

  mutating func clauseText(_ shape: ProbeShape, statements: Int, forceMap: Bool = false) -> String {
    var clause = Clause(shape: shape)
    let filter = chance(40) ? " /\(condition(clause, depth: 2))/" : ""
    var body: [String] = []
    for _ in 0..<statements {
      body.append(statement(&clause, depth: 2))
      readableMaps = maps.count
    }
    if forceMap { body.append(mapStatement(&clause)) }
    return "\(shape.probe)\(filter) {\n  \(body.joined(separator: "\n  "))\n}"
  }

  mutating func castsSpec() -> String {
    let clause = Clause(shape: pick(Self.skbProbes))
    var body: [String] = []
    for _ in 0..<1 + number(below: 5) {
      switch random.next() % 6 {
      case 0:
        body.append("$ip = (struct iphdr *)(skb->head + skb->network_header); print($ip->ttl, $ip->saddr, $ip->protocol)")
      case 1:
        body.append("$p = (struct sk_buff *)skb; print($p[\(pick(["0", "mark & 1", "len % 2"]))].mark, $p->len)")
      case 2:
        body.append("print(skb == skb->next, skb != \(pick(["skb->prev", "0", "skb"])))")
      case 3:
        let width = pick([8, 16, 32, 64])
        body.append("print(((u\(width) *)skb)[\(number(below: 232 / (width / 8)))])")
      case 4:
        body.append("print((\(pick(["u8", "s8", "u16", "s16", "u32", "s32", "u64", "s64"])))\(numberExpression(clause, depth: 2)))")
      default:
        body.append("print(((struct net_device *)skb->dev)->mtu, skb->dev->name[\(pick(["0", "mark & 15", "len"]))], skb->cb[\(pick(["3", "mark % 48", "len"]))])")
      }
    }
    return "\(clause.shape.probe) {\n  \(body.joined(separator: "\n  "))\n}"
  }

  mutating func deadCodeSpec() -> String {
    let clause = Clause(shape: pick(Self.skbProbes))
    let constant = pick(["false", "true", "1 > 2", "2 > 1", "0", "len && false", "mark || true"])
    switch random.next() % 5 {
    case 0: return "\(clause.shape.probe) { if (\(constant)) { \(printStatement(clause)) } else { \(printStatement(clause)) } }"
    case 1: return "\(clause.shape.probe) { print(\(constant), \(numberAtom(clause)) && false, ip6.saddr in ::/0, saddr in 0.0.0.0/0) }"
    case 2:
      return "\(clause.shape.probe) /\(constant)/ { \(printStatement(clause)) }"
    case 3:
      return "\(clause.shape.probe) { if (len > 10) { print(len) } else if (\(constant)) { print(ifname, comm, ip6.saddr, ip6.daddr, skb->dev->name) } else { print(mark) } }"
    default:
      return "\(clause.shape.probe) { $x = \(constant); if ($x) { print(1) } @m[\(constant)] = count() }"
    }
  }

  mutating func stackSpec() -> String {
    let clause = Clause(shape: pick(Self.skbProbes))
    switch random.next() % 4 {
    case 0:
      let count = 20 + number(below: 30)
      return "\(clause.shape.probe) {\n" + (0..<count).map { "  if (comm == \"x\($0)\") { print(\($0)) }" }.joined(separator: "\n") + "\n}"
    case 1:
      let count = 8 + number(below: 10)
      return "\(clause.shape.probe) {\n" + (0..<count).map { "  @a\($0)[ifname, comm, ip6.saddr] = count()" }.joined(separator: "\n") + "\n}"
    case 2:
      let ifs = (0..<40).map { "  if (len > \($0)) { printf(\"%s %s %d %s\\n\", ifname, comm, len, ip6.saddr) }" }
      let mapLines = (0..<12).map { "  @m\($0)[\($0 % 2 == 0 ? "ifname, comm, ip6.daddr" : "comm, ip6.saddr, ifname")] = sum(len)" }
      return "\(clause.shape.probe) {\n" + (ifs + mapLines).joined(separator: "\n") + "\n}"
    default:
      let variables = (0..<20).map { "  $s\($0) = \(pick(["comm", "ifname", stringLiteral()])); $a\($0) = ip6.saddr" }
      return "\(clause.shape.probe) {\n" + variables.joined(separator: "\n") + "\n  print($s3, $a7, $s19)\n}"
    }
  }

  mutating func complexitySpec() -> String {
    let probe = pick(Self.skbProbes).probe
    switch random.next() % 4 {
    case 0:
      // Independent branches adding to a variable, then histograms of it.
      let count = 4 + number(below: 17)
      let branches = (0..<count).map { "  if (len & \(1 << ($0 % 20))) { $a = $a + \(1 << ($0 % 20)) }" }
      return "\(probe) {\n  $a = 0\n" + branches.joined(separator: "\n") + "\n  @h = hist($a)\n  @l = lhist($a, 0, 65536, 1024)\n}"
    case 1:
      // Path-dependent constants summed into a condition: exponential in the kernel.
      let count = 6 + number(below: 14)
      let terms = (0..<count).map { "(mark > \($0)) * \(1 << $0)" }.joined(separator: " + ")
      return "\(probe) {\n  if (\(terms) == 3) { print(len) }\n}"
    case 2:
      let count = 6 + number(below: 14)
      let terms = (0..<count).map { "(mark > \($0)) * \(1 << $0)" }.joined(separator: " + ")
      return "\(probe) {\n  $s = \(terms)\n  if ($s == 3) { print(len) }\n}"
    default:
      let count = 10 + number(below: 30)
      let terms = (0..<count).map { _ in pick(Self.headerNumbers) }.joined(separator: " + ")
      return "\(probe) {\n  print(\(terms))\n  @s = sum(\(terms))\n}"
    }
  }

  mutating func extremeSpec() -> String {
    let clause = Clause(shape: pick(Self.skbProbes))
    switch random.next() % 5 {
    case 0:
      let terms = (0..<150).map { _ in pick(["len", "mark", "ip.ttl", "gso_size"]) }.joined(separator: " + ")
      let prints = (0..<(10 + number(below: 30))).map { _ in "print(\(terms))" }.joined(separator: "; ")
      return "\(clause.shape.probe) { if (len > 1) { \(prints) } }"
    case 1:
      var body = printStatement(clause)
      for _ in 0..<(5 + number(below: 15)) { body = "if (\(condition(clause, depth: 1))) { \(body) } else { \(printStatement(clause)) }" }
      return "\(clause.shape.probe) { \(body) }"
    case 2:
      let size = pick([1000, 8000, 20000, 33000, 40000])
      let literal = String(repeating: "x", count: size)
      return "\(clause.shape.probe) { \(pick(["print(\"\(literal)\")", "printf(\"\(literal)\\n\")", "$s = \"\(literal)\"; print($s)", "@v = \"\(literal)\""])) }"
    case 3:
      let count = 30 + number(below: 40)
      return "\(clause.shape.probe) {\n" + (0..<count).map { _ in "  " + printStatement(clause) }.joined(separator: "\n") + "\n}"
    default:
      var clause = clause
      let body = (0..<(25 + number(below: 25))).map { _ in
        defer { readableMaps = maps.count }
        return mapStatement(&clause)
      }.joined(separator: "\n  ")
      return "\(clause.shape.probe) {\n  \(body)\n}"
    }
  }

  // MARK: - bpftrace's constructs (issue 20)

  static let constructNumbers = [
    "len", "mark", "protocol", "ifindex", "gso_size", "gso_segs", "ip.ttl", "ip.len", "udp.dport", "tcp.sport",
    "icmp.type", "netns", "data_len", "queue_mapping", "cpu", "pid", "skb->dev->mtu",
  ]
  static let constructPrintable = constructNumbers + [
    "ifname", "comm", "gso_type", "saddr", "daddr", "ip6.saddr", "probe", "ts",
    "nsecs", "elapsed", "uid", "gid", "ppid", "cgroup", "func", "bswap(len)", "bswap((u16)mark)", "sizeof(struct sock)",
  ]
  /// Fields sock:inet_sock_set_state records, for clauses that read the record.
  static let recordedFields = ["args.sport", "args.dport", "args.newstate", "args.oldstate", "args.family", "args.protocol"]
  /// What the differential test counts in the compiled specs of this class, so that a
  /// generator whose constructs never compile cannot pass unnoticed.
  static let constructMarkers = [
    "for (", "while (", " ? ", "return", "++", "tracepoint:sock", "bswap(", "tracepoint:skb:kfree_skb", "kstack", "time(",
  ]

  /// Unrolled `for` and `while` loops with `break`/`continue`, `?:`, compound assignment,
  /// `++`, `return`, builtins, and clauses of classic tracepoints reading their record.
  mutating func constructsSpec() -> String {
    switch random.next() % 10 {
    case 0, 1: return recordSpec(size: 1 + number(below: 8))
    case 2, 3: return toolSpec(size: 1 + number(below: 6))
    default: break
    }
    let conditions = [
      "ifname \(pick(["==", "!="])) \"\(pick(["lo", "eth0", "veth-a"]))\"",
      "saddr in 10.\(random.next() % 256).0.0/\(pick([8, 16, 24]))",
      "(\(pick(Self.constructNumbers)) \(pick(["+", "&", ">>", "*"])) \(random.next() % 64)) \(pick(["==", "!=", "<", ">="])) \(random.next() % 2000)",
      "\(pick(Self.constructNumbers)) \(pick(["==", "!=", "<", "<=", ">", ">="])) \(pick(["0", "1", "0xdead", "1500", "4294967295"]))",
    ]
    let filter = chance(25) ? "" : " /\(pick(conditions))/"
    let body = (0..<1 + number(below: 8)).map { index -> String in
      switch random.next() % 6 {
      case 0:
        let n = 1 + random.next() % 6
        return "$f\(index) = 0; for ($i : 0..\(n)) { if ($i == \(random.next() % 4)) { continue } $f\(index) += \(pick(Self.constructNumbers)); if ($f\(index) > 1000) { break } } print($f\(index))"
      case 1:
        return "$w\(index) = \(random.next() % 3); while ($w\(index) < \(2 + random.next() % 5)) { $w\(index)++; if (len > \(random.next() % 1500)) { continue } @q\(index)[$w\(index)] = count() }"
      case 2:
        return "print(\(pick(Self.constructNumbers)) > \(random.next() % 1500) ? \(pick(Self.constructNumbers)) : \(pick(Self.constructNumbers)))"
      case 3:
        return "$c\(index) = \(pick(Self.constructNumbers)); $c\(index) \(pick(["+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>="])) \(1 + random.next() % 7); $c\(index)++; @x\(index)[cpu]++; print($c\(index))"
      case 4:
        return "if (\(pick(conditions))) { return } print(\(pick(Self.constructPrintable)))"
      default:
        return "print(\((0..<1 + number(below: 4)).map { _ in pick(Self.constructPrintable) }.joined(separator: ", ")))"
      }
    }.joined(separator: "; ")
    return "skb:net_dev_queue\(filter) { \(body) }"
  }

  /// A clause reading what a tracepoint recorded (a classic tracepoint program).
  mutating func recordSpec(size: Int) -> String {
    let filter = chance(33) ? "" : " /\(pick(Self.recordedFields)) \(pick(["==", "!=", "<", ">="])) \(pick(["TCP_CLOSE", "TCP_SYN_SENT", "6", "0", "443"]))/"
    let body = (0..<size).map { index -> String in
      switch random.next() % 5 {
      case 0: return "printf(\"%s %s %d\\n\", ntop(args.saddr), ntop(args.daddr_v6), \(pick(Self.recordedFields)))"
      case 1: return "@s\(index)[\(pick(Self.recordedFields))] = count()"
      case 2: return "print(((struct sock *)args.skaddr)->__sk_common.skc_num, bswap(args.sport))"
      case 3: return "$r\(index) = \(pick(Self.recordedFields)) == TCP_CLOSE ? 1 : 2; $r\(index) += args.sport; print($r\(index))"
      default: return "for ($k : 0..\(1 + random.next() % 4)) { @t\(index)[$k, \(pick(Self.recordedFields))] = count() }"
      }
    }.joined(separator: "; ")
    return "tracepoint:sock:inet_sock_set_state\(filter) { \(body) }"
  }

  /// A spec shaped like tools/tcpdrop.bt: the record's skb and its owner socket through casts,
  /// an enum constant, BEGIN's lookup table read by the socket's state, time(), and kstack
  /// printed and as a map key (alone and beside a number).
  mutating func toolSpec(size: Int) -> String {
    let body = (0..<size).map { index -> String in
      switch random.next() % 4 {
      case 0: return "@k\(index)[kstack] = count()"
      case 1: return "printf(\"%s %s\\n\", @states[$sk->__sk_common.skc_state], kstack)"
      case 2:
        return "time(\"%H:%M:%S \"); printf(\"%s:%d %d\\n\", ntop($sk->__sk_common.skc_daddr), bswap($sk->__sk_common.skc_dport), $reason)"
      default: return "if ($sk->__sk_common.skc_family == \(pick(["2", "10"]))) { @r\(index)[$reason, kstack] = count() }"
      }
    }.joined(separator: "; ")
    return """
      BEGIN { @states[1] = "ESTABLISHED"; @states[2] = "SYN_SENT"; @states[7] = "CLOSE" }
      tracepoint:skb:kfree_skb {
        $reason = args.reason; $skb = (struct sk_buff *)args.skbaddr; $sk = (struct sock *)$skb->sk;
        if ($reason > SKB_DROP_REASON_NOT_SPECIFIED) { \(body) }
      }
      END { clear(@states) }
      """
  }

  /// The specs of issue 24 and its neighbours, as written there.
  static let issueCases = [
    "skb:net_dev_queue { print(((u8 *)skb)[1]) }",
    "skb:net_dev_queue { print(((u16 *)skb)[8]) }",
    "skb:net_dev_queue { print(((u64 *)skb)[0]) }",
    "skb:net_dev_queue { if (false) { print(len) } }",
    "skb:net_dev_queue { print(len && false) }",
    "skb:net_dev_queue { print(ip6.saddr in ::/0) }",
    "skb:net_dev_queue { @m[len] = len; print(@m[3]) }",
    "skb:net_dev_queue { @a[comm] = count(); @a[\"eth0\"] = count() }",
    "skb:net_dev_queue { @a[comm] = count(); delete(@a[\"lo\"]) }",
    "skb:net_dev_queue { $p = (struct sk_buff *)skb; print($p[mark].mark) }",
    "skb:net_dev_queue { print(skb == skb->next) }",
    "skb:net_dev_queue { print((s64)-7 / (s64)2, (s64)-7 % (s64)2) }",
  ]
}
