import BTF
import SwtraceSyntax

/// bpftrace's builtins and functions, with bpftrace's names and meaning: `nsecs`, `uid`,
/// `ppid`, `ntop()`, `bswap()`, `str()`, `buf()`, `strftime()`, `sizeof()`, `offsetof()`,
/// `has_key()`, kprobes' `arg0`..`arg5`, enum constants and the socket families, and the
/// command line's positional parameters.
extension ClauseContext {
  /// Calls that compute a value (statements such as `print` are in `call`).
  static let valueFunctions = ["ntop", "bswap", "str", "buf", "strftime", "sizeof", "offsetof", "has_key"]

  /// bpftrace's default length of a string read with `str()`.
  static let defaultStringLength = 64
  /// The most bytes `str()` and `buf()` read.
  static let maximumReadLength = 256

  /// Address families, which C defines as macros (so BTF has no names for them).
  static let socketFamilies: [String: UInt64] = [
    "AF_UNSPEC": 0, "AF_UNIX": 1, "AF_LOCAL": 1, "AF_INET": 2, "AF_AX25": 3, "AF_IPX": 4, "AF_APPLETALK": 5,
    "AF_BRIDGE": 7, "AF_INET6": 10, "AF_KEY": 15, "AF_NETLINK": 16, "AF_PACKET": 17, "AF_RDS": 21,
    "AF_LLC": 26, "AF_CAN": 29, "AF_TIPC": 30, "AF_BLUETOOTH": 31, "AF_VSOCK": 40, "AF_KCM": 41, "AF_QIPCRTR": 42,
    "AF_SMC": 43, "AF_XDP": 44, "AF_MCTP": 45,
  ]

  /// A builtin's value; `curtask` and `ppid` are typed from BTF.
  mutating func builtinValue(_ builtin: Builtin, range: SourceRange) -> TypedExpr? {
    switch builtin {
    case .curtask:
      guard let task = types.structure("task_struct") else {
        diagnostics.append(Diagnostic("unknown-type", "struct task_struct is not a type in \(types.origin)", at: range))
        return nil
      }
      return TypedExpr(.builtin(.curtask), type: .pointer(pointee: task, description: "struct task_struct *"), range: range)
    case .ppid:
      // curtask->real_parent->tgid, as bpftrace reads it.
      guard let task = builtinValue(.curtask, range: range),
        let parent = member("real_parent", of: .value(task), range: range, nameRange: range),
        case .place(let tgid)? = member("tgid", of: parent, range: range, nameRange: range),
        let value = read(tgid)
      else { return nil }
      return convertInteger(value, bytes: 4, signed: false, range: range)
    default:
      return TypedExpr(.builtin(builtin), type: builtin.type, range: range)
    }
  }

  /// `arg0`..`arg5` in kprobe clauses: the argument registers as 64-bit numbers. nil when
  /// `name` is not such a name; `.some(nil)` after a diagnostic.
  mutating func registerArgument(_ name: String, range: SourceRange) -> TypedExpr?? {
    let digits = name.dropFirst(3)
    guard name.hasPrefix("arg"), !digits.isEmpty, digits.allSatisfy(\.isNumber), let index = Int(digits) else {
      return nil
    }
    guard !attachPoints.isEmpty, attachPoints.allSatisfy({ $0.backend == .kprobe }) else {
      diagnostics.append(
        Diagnostic(
          "register-argument-needs-kprobe", "'\(name)' (an argument register) exists in kprobe: clauses only",
          at: range, notes: [.init(.help, "name the argument: args.NAME (swtrace -l lists them)")]))
      return .some(nil)
    }
    guard index < 6 else {
      diagnostics.append(
        Diagnostic(
          "register-argument-range", "'\(name)': x86-64 passes arguments in six registers, arg0 to arg5", at: range,
          notes: [.init(.help, "name the argument instead: args.NAME reads arguments passed on the stack too")]))
      return .some(nil)
    }
    return TypedExpr(.registerArgument(index), type: .u64, range: range)
  }

  /// An enumerator of the kernel's BTF (`TCP_CLOSE`, `SKB_DROP_REASON_NO_SOCKET`), typed as its
  /// enum so it prints by name, or an address family (`AF_INET`).
  func namedConstant(_ name: String, range: SourceRange) -> TypedExpr? {
    if let family = Self.socketFamilies[name] {
      return TypedExpr(.integer(family), type: .u64, range: range)
    }
    guard name.first.map({ $0.isUppercase || $0 == "_" }) == true, let (id, value) = types.enumerator(named: name) else {
      return nil
    }
    let type = valueType(of: id)
    let representation = type.integerRepresentation ?? IntegerRepresentation(bytes: 8, isSigned: true)
    return TypedExpr(.integer(ConstantFolding.converted(UInt64(bitPattern: value), to: representation)), type: type, range: range)
  }

  /// `$N`: the Nth positional parameter, a number when it reads as one (decimal, or hex with
  /// `0x`), otherwise a string; 0 when the command line gave fewer.
  func positional(_ number: Int, range: SourceRange) -> TypedExpr {
    let parameters = checker.positionalParameters
    guard number >= 1, number <= parameters.count else { return TypedExpr(.integer(0), type: .u64, range: range) }
    let text = parameters[number - 1]
    if let value = UInt64(text) { return TypedExpr(.integer(value), type: .u64, range: range) }
    if let value = Int64(text) { return TypedExpr(.integer(UInt64(bitPattern: value)), type: .s64, range: range) }
    if text.lowercased().hasPrefix("0x"), let value = UInt64(text.dropFirst(2), radix: 16) {
      return TypedExpr(.integer(value), type: .u64, range: range)
    }
    return TypedExpr(.string(text), type: .string(capacity: text.utf8.count + 1), range: range)
  }

  /// `condition ? value : otherwise`: both arms of one type (numbers of any width mix as in C,
  /// strings of any length); a constant condition picks its arm.
  mutating func conditionalValue(_ conditionExpression: Expr, _ valueExpression: Expr, _ otherwiseExpression: Expr, range: SourceRange)
    -> TypedExpr?
  {
    guard let test = value(conditionExpression), let chosen = value(valueExpression), let other = value(otherwiseExpression)
    else { return nil }
    let decided = condition(test)
    guard let type = joinedType(chosen.type, other.type) else {
      diagnostics.append(
        Diagnostic(
          "conditional-type-mismatch",
          "the arms of '?:' have different types: '\(sourceText(chosen.range))' is \(Self.article(chosen.type)), '\(sourceText(other.range))' is \(Self.article(other.type))",
          at: range))
      return nil
    }
    if case .integer(let constant) = decided.kind { return (constant != 0 ? chosen : other).retyped(type) }
    let presence: TypedExpr?
    if chosen.presence != nil || other.presence != nil {
      let always = TypedExpr(.integer(1), type: .bool, range: range)
      presence = TypedExpr(
        .select(condition: decided, value: chosen.presence ?? always, otherwise: other.presence ?? always), type: .bool,
        range: range)
    } else {
      presence = nil
    }
    let selected = TypedExpr(
      .select(condition: decided, value: chosen.unwrapped.retyped(type), otherwise: other.unwrapped.retyped(type)),
      type: type, range: range)
    return presence.map { Self.optional($0, selected) } ?? selected
  }

  /// The type both arms of `?:` convert to, or nil when they cannot meet.
  func joinedType(_ a: ValueType, _ b: ValueType) -> ValueType? {
    if a == b { return a }
    switch (a, b) {
    case (.string(let x), .string(let y)):
      return .string(capacity: max(x, y))
    case (.pointer, .integer), (.integer, .pointer):
      // A pointer and 0 (a null pointer).
      return if case .pointer = a { a } else { b }
    default:
      guard a.isNumeric, b.isNumeric else { return nil }
      return .integer(bytes: 8, signed: a.isSigned || b.isSigned)
    }
  }

  mutating func function(_ name: String, _ arguments: [Expr], range: SourceRange) -> TypedExpr? {
    func arity(_ counts: ClosedRange<Int>, _ usage: String) -> Bool {
      guard counts.contains(arguments.count) else {
        diagnostics.append(
          Diagnostic(DiagnosticID(name.split(separator: "_").joined(separator: "-") + "-arity"), "\(name)() is written \(usage)", at: range))
        return false
      }
      return true
    }
    switch name {
    case "ntop":
      guard arity(1...2, "ntop(ADDRESS) or ntop(AF_INET or AF_INET6, ADDRESS)") else { return nil }
      return ntop(arguments, range: range)
    case "bswap":
      guard arity(1...1, "bswap(NUMBER)"), let operand = value(arguments[0]) else { return nil }
      return byteSwapped(operand, range: range)
    case "str":
      guard arity(1...2, "str(POINTER) or str(POINTER, LENGTH)") else { return nil }
      return string(arguments, range: range)
    case "buf":
      guard arity(1...2, "buf(ARRAY), buf(POINTER, LENGTH) or buf(ARRAY, LENGTH)") else { return nil }
      return buffer(arguments, range: range)
    case "strftime":
      guard arity(2...2, "strftime(\"FORMAT\", NANOSECONDS), such as strftime(\"%H:%M:%S\", nsecs)") else { return nil }
      guard case .string(let format) = arguments[0].kind else {
        diagnostics.append(
          Diagnostic("strftime-needs-format", "strftime() takes a format string literal first", at: arguments[0].range))
        return nil
      }
      guard let time = value(arguments[1]) else { return nil }
      guard time.type.isNumeric else {
        diagnostics.append(
          Diagnostic(
            "strftime-needs-time", "strftime() needs nanoseconds of CLOCK_MONOTONIC (such as nsecs), but this is \(Self.article(time.type))",
            at: arguments[1].range))
        return nil
      }
      var converted = convertInteger(time.unwrapped, bytes: 8, signed: false, range: range)
      converted.type = .wallTime(format: format)
      return time.presence.map { Self.optional($0, converted) } ?? converted
    case "sizeof":
      guard arity(1...1, "sizeof(TYPE) or sizeof(EXPRESSION)"), let size = sizeOf(arguments[0]) else { return nil }
      return TypedExpr(.integer(UInt64(size)), type: .u64, range: range)
    case "offsetof":
      guard arity(2...2, "offsetof(struct NAME, FIELD)"), let offset = offsetOf(arguments[0], arguments[1]) else { return nil }
      return TypedExpr(.integer(UInt64(offset)), type: .u64, range: range)
    default:  // has_key
      guard arity(1...9, "has_key(@map, KEY...)") else { return nil }
      return hasKey(arguments, range: range)
    }
  }

  /// An integer with its bytes in the other order, at its own width.
  mutating func byteSwapped(_ operand: TypedExpr, range: SourceRange) -> TypedExpr? {
    guard operand.type.isNumeric, let representation = operand.type.integerRepresentation else {
      diagnostics.append(
        Diagnostic("bswap-needs-integer", "bswap() needs an integer, but this is \(Self.article(operand.type))", at: operand.range))
      return nil
    }
    let bytes = representation.bytes
    let type = ValueType.integer(bytes: bytes, signed: false)
    if let presence = operand.presence {
      return byteSwapped(operand.unwrapped, range: range).map { Self.optional(presence, $0) }
    }
    if bytes == 1 { return convertInteger(operand, bytes: 1, signed: false, range: range) }
    if case .integer(let constant) = operand.kind {
      let swapped = constant.byteSwapped >> UInt64(64 - 8 * bytes)
      return TypedExpr(.integer(swapped), type: type, range: range)
    }
    return TypedExpr(.networkToHost(operand, bits: 8 * bytes), type: type, range: range)
  }

  /// `ntop(x)`, `ntop(AF, x)`: an address of either family from a network-order u32, a `u8[4]`,
  /// a `u8[16]` or `struct in6_addr`, or an address value.
  mutating func ntop(_ arguments: [Expr], range: SourceRange) -> TypedExpr? {
    var family: UInt64?
    if arguments.count == 2 {
      guard let typed = value(arguments[0]) else { return nil }
      guard case .integer(let constant) = typed.kind, constant == 2 || constant == 10 else {
        diagnostics.append(
          Diagnostic("ntop-family", "ntop()'s family must be AF_INET (2) or AF_INET6 (10)", at: arguments[0].range))
        return nil
      }
      family = constant
    }
    let argument = arguments[arguments.count - 1]
    guard let reference = reference(argument) else { return nil }
    func unsupported(_ what: String) -> TypedExpr? {
      diagnostics.append(
        Diagnostic(
          "ntop-argument", "ntop() needs an IPv4 address (a u32 in network order, a u8[4]) or an IPv6 address (a u8[16], a struct in6_addr), but '\(sourceText(argument.range))' is \(what)",
          at: argument.range))
      return nil
    }
    var v4: TypedExpr?
    var v6: TypedExpr?
    switch reference {
    case .place(let place):
      let id = types.resolved(place.type)
      let size = types.size(of: id) ?? 0
      switch types.type(id) {
      case .integer, .enumeration:
        guard let number = read(place) else { return nil }
        v4 = ipv4(fromNetworkOrder: number, range: range)
      case .array, .structure, .union:
        guard size == 4 || size == 16 else { return unsupported("\(size) bytes (\(types.describe(place.type)))") }
        let loaded = TypedExpr(
          .load(base: place.base, offset: place.offset, size: size, bitfield: nil), type: size == 4 ? .u32 : .ipv6,
          range: range)
        let guarded = Self.isRootedAtSkb(place.base) ? guardedPacketRead(loaded, sourceText(place.range)) : loaded
        guard let guarded else { return nil }
        if size == 4 { v4 = ipv4(fromNetworkOrder: guarded, range: range) } else { v6 = guarded }
      default:
        return unsupported(Self.article(valueType(of: place.type)))
      }
    case .value(let value):
      switch value.type {
      case .ipAddress: return value
      case .ipv4: v4 = value
      case .ipv6: v6 = value
      case .integer, .enumeration, .bool: v4 = ipv4(fromNetworkOrder: value, range: range)
      case .byteArray(4): v4 = ipv4(fromNetworkOrder: value.retyped(.u32), range: range)
      case .byteArray(16): v6 = value.retyped(.ipv6)
      default: return unsupported(Self.article(value.type))
      }
    }
    if family == 2, v4 == nil { return unsupported("not 4 bytes, as AF_INET needs") }
    if family == 10, v6 == nil { return unsupported("not 16 bytes, as AF_INET6 needs") }
    let isIPv4 = v4 != nil
    return TypedExpr(
      .eitherFamily(
        isIPv4: TypedExpr(.integer(isIPv4 ? 1 : 0), type: .bool, range: range),
        v4: v4 ?? TypedExpr(.integer(0), type: .ipv4, range: range),
        v6: v6 ?? TypedExpr(.integer(0), type: .ipv6, range: range)),
      type: .ipAddress, range: range)
  }

  /// A 32-bit value holding an IPv4 address's bytes in memory order, as the host-order
  /// address swtrace computes with.
  func ipv4(fromNetworkOrder value: TypedExpr, range: SourceRange) -> TypedExpr {
    if case .integer(let constant) = value.kind {
      return TypedExpr(.integer(UInt64(UInt32(truncatingIfNeeded: constant).byteSwapped)), type: .ipv4, range: range)
    }
    if let presence = value.presence { return Self.optional(presence, ipv4(fromNetworkOrder: value.unwrapped, range: range)) }
    return TypedExpr(.networkToHost(value, bits: 32), type: .ipv4, range: range)
  }

  /// The constant length argument of `str()` and `buf()`, within 1...maximumReadLength.
  mutating func readLength(_ expression: Expr, function: String) -> Int? {
    guard let typed = value(expression) else { return nil }
    guard case .integer(let length) = typed.kind, length >= 1, length <= UInt64(Self.maximumReadLength) else {
      diagnostics.append(
        Diagnostic(
          DiagnosticID("\(function)-length"), "\(function)()'s length must be a constant from 1 to \(Self.maximumReadLength)", at: expression.range))
      return nil
    }
    return Int(length)
  }

  /// `str(p)`, `str(p, n)`: the NUL-terminated string at a `char *` (or any address).
  mutating func string(_ arguments: [Expr], range: SourceRange) -> TypedExpr? {
    var length = Self.defaultStringLength
    if arguments.count == 2 {
      guard let given = readLength(arguments[1], function: "str") else { return nil }
      length = given
    }
    guard let reference = reference(arguments[0]) else { return nil }
    switch reference {
    case .place(let place):
      if case .array(let element, let count) = types.type(types.resolved(place.type)), types.size(of: element) == 1 {
        let capacity = min(count, length + 1)
        return TypedExpr(.loadString(base: place.base, offset: place.offset, capacity: capacity), type: .string(capacity: capacity), range: range)
      }
      guard let value = read(place) else { return nil }
      return string(from: value, length: length, argument: arguments[0], range: range)
    case .value(let value):
      return string(from: value, length: length, argument: arguments[0], range: range)
    }
  }

  mutating func string(from value: TypedExpr, length: Int, argument: Expr, range: SourceRange) -> TypedExpr? {
    switch value.type {
    case .string:
      return value
    case .pointer, .integer(8, _):
      if let presence = value.presence {
        return string(from: value.unwrapped, length: length, argument: argument, range: range).map { Self.optional(presence, $0) }
      }
      // bpftrace's length counts the terminating NUL among the bytes read.
      return TypedExpr(.loadString(base: value, offset: 0, capacity: length), type: .string(capacity: length), range: range)
    default:
      diagnostics.append(
        Diagnostic(
          "str-needs-address", "str() needs a char * (or an address), but '\(sourceText(argument.range))' is \(Self.article(value.type))",
          at: argument.range))
      return nil
    }
  }

  /// `buf(array)`, `buf(p, n)`: `n` bytes, printed as text with `\xNN` for other bytes.
  mutating func buffer(_ arguments: [Expr], range: SourceRange) -> TypedExpr? {
    var length: Int?
    if arguments.count == 2 {
      guard let given = readLength(arguments[1], function: "buf") else { return nil }
      length = given
    }
    guard let reference = reference(arguments[0]) else { return nil }
    switch reference {
    case .place(let place):
      if case .array = types.type(types.resolved(place.type)), let size = types.size(of: types.resolved(place.type)) {
        let bytes = min(length ?? size, size, Self.maximumReadLength)
        let loaded = TypedExpr(.load(base: place.base, offset: place.offset, size: bytes, bitfield: nil), type: .buffer(capacity: bytes), range: range)
        return Self.isRootedAtSkb(place.base) ? guardedPacketRead(loaded, sourceText(place.range)) : loaded
      }
      guard let value = read(place) else { return nil }
      return buffer(from: value, length: length, argument: arguments[0], range: range)
    case .value(let value):
      return buffer(from: value, length: length, argument: arguments[0], range: range)
    }
  }

  mutating func buffer(from value: TypedExpr, length: Int?, argument: Expr, range: SourceRange) -> TypedExpr? {
    switch value.type {
    case .pointer, .integer(8, _):
      guard let length else {
        diagnostics.append(
          Diagnostic("buf-length", "buf() of a pointer needs a length: buf(\(sourceText(argument.range)), LENGTH)", at: range))
        return nil
      }
      return TypedExpr(.load(base: value, offset: 0, size: length, bitfield: nil), type: .buffer(capacity: length), range: range)
    case .string(let capacity), .buffer(let capacity), .byteArray(let capacity):
      return value.retyped(.buffer(capacity: capacity))
    case .ipv6:
      return value.retyped(.buffer(capacity: 16))
    default:
      diagnostics.append(
        Diagnostic(
          "buf-needs-address", "buf() needs an array or an address, but '\(sourceText(argument.range))' is \(Self.article(value.type))",
          at: argument.range))
      return nil
    }
  }

  /// Bytes of a type or of an expression's type.
  mutating func sizeOf(_ argument: Expr) -> Int? {
    if case .typeName(let type) = argument.kind {
      if type.pointerDepth > 0 { return 8 }
      if let (bytes, _) = Self.integerCasts[type.name] { return bytes }
      if type.name == "bool" { return 1 }
      guard let id = btfType(type) else { return nil }
      return types.size(of: id) ?? 0
    }
    guard let reference = reference(argument) else { return nil }
    switch reference {
    case .place(let place): return types.size(of: place.type) ?? 8
    case .value(let value): return value.type.storageSize
    }
  }

  /// The byte offset of a member (`a`, or a path `a.b.c`) in a struct or union.
  mutating func offsetOf(_ typeArgument: Expr, _ memberArgument: Expr) -> Int? {
    guard case .typeName(let type) = typeArgument.kind, type.pointerDepth == 0,
      type.name.hasPrefix("struct ") || type.name.hasPrefix("union ")
    else {
      diagnostics.append(
        Diagnostic("offsetof-needs-struct", "offsetof() takes a struct or union type first, such as offsetof(struct sock, sk_mark)", at: typeArgument.range))
      return nil
    }
    var path: [String] = []
    var current = memberArgument
    while true {
      switch current.kind {
      case .identifier(let name):
        path.insert(name, at: 0)
      case .member(let base, let name, false):
        path.insert(name, at: 0)
        current = base
        continue
      default:
        diagnostics.append(
          Diagnostic("offsetof-needs-member", "offsetof()'s second argument is a member name, or a path such as a.b", at: memberArgument.range))
        return nil
      }
      break
    }
    guard var id = btfType(type) else { return nil }
    var offset = 0
    for name in path {
      guard let found = types.member(name, of: types.resolved(id)) else {
        var diagnostic = Diagnostic("unknown-member", "\(types.describe(id)) has no member '\(name)' in \(types.origin)", at: memberArgument.range)
        if let best = closestName(to: name, among: types.members(of: types.resolved(id)).map(\.name)) {
          diagnostic.notes.append(.init(.help, "did you mean '\(best)'?"))
        }
        diagnostics.append(diagnostic)
        return nil
      }
      offset += found.byteOffset
      id = found.type
    }
    return offset
  }

  /// `has_key(@map, key...)` (or `has_key(@map[key...])`): whether the map has that entry.
  mutating func hasKey(_ arguments: [Expr], range: SourceRange) -> TypedExpr? {
    guard case .map(let access) = arguments[0].kind else {
      diagnostics.append(Diagnostic("has-key-needs-map", "has_key() takes a map first: has_key(@map, key)", at: arguments[0].range))
      return nil
    }
    let keyExpressions = access.keys + arguments.dropFirst()
    guard let index = maps.firstIndex(where: { $0.name == access.name }) else {
      diagnostics.append(Diagnostic("unknown-map", "@\(access.name) is read before any clause assigns it", at: access.range))
      return nil
    }
    var keys: [TypedExpr] = []
    for expression in keyExpressions {
      guard let key = value(expression) else { return nil }
      keys.append(key)
    }
    guard keys.count == maps[index].keys.count, !keys.isEmpty,
      zip(keys, maps[index].keys).allSatisfy({ Self.keyTypesMatch(Self.keyType($0.0.type), $0.1.type) })
    else {
      diagnostics.append(
        Diagnostic(
          "map-type-mismatch", "@\(access.name) is keyed by [\(maps[index].keys.map { "\($0.type)" }.joined(separator: ", "))]",
          at: range, notes: [.init(.note, "first used here", at: maps[index].range)]))
      return nil
    }
    return TypedExpr(.mapHasKey(map: index, keys: keys), type: .bool, range: range)
  }

  /// `time()`, `time("FORMAT")`: the time now, printed with the format (bpftrace's default
  /// `%H:%M:%S\n`); a `printf` of `strftime(FORMAT, nsecs)`.
  mutating func time(_ arguments: [Expr], range: SourceRange) -> Action? {
    var format = "%H:%M:%S\n"
    if let first = arguments.first {
      guard arguments.count == 1, case .string(let text) = first.kind else {
        diagnostics.append(Diagnostic("time-arity", "time() takes at most a format string literal: time(\"%H:%M:%S \")", at: range))
        return nil
      }
      format = text
    }
    let now = TypedExpr(.builtin(.nsecs), type: .wallTime(format: format), range: range)
    return .printf(FormatString.value(range: range), [PrintedValue(label: "time", value: now)], range: range)
  }

  /// `break`, `continue` (inside a loop) and `return`.
  mutating func jump(_ kind: JumpKind, range: SourceRange) -> Action? {
    if kind != .returnFromClause, loopDepth == 0 {
      diagnostics.append(
        Diagnostic("jump-outside-loop", "'\(kind.rawValue)' is only allowed inside a while or for loop", at: range))
      return nil
    }
    return .jump(kind, range: range)
  }

  /// Consecutive `printf`s whose text does not end its line make one line, as bpftrace
  /// prints them (`time("%H:%M:%S "); printf("%d\n", pid)`): one event, one line.
  static func joiningOpenLines(_ actions: [Action]) -> [Action] {
    var result: [Action] = []
    for action in actions {
      if case .printf(let format, let values, let range) = action,
        case .printf(let previous, let previousValues, let previousRange)? = result.last,
        !previous.endsLine(values: previousValues.map(\.value.type))
      {
        result[result.count - 1] = .printf(
          previous.appending(format, shiftedBy: previousValues.count), previousValues + values,
          range: previousRange.union(range))
        continue
      }
      result.append(action)
    }
    return result
  }
}

extension FormatString {
  /// `%s` of the value after the format: what `time()` prints.
  static func value(range: SourceRange) -> FormatString {
    FormatString(pieces: [.conversion(Conversion(kind: .string, range: range, spelling: "%s"), argument: 0)])
  }

  /// Whether the text ends with a newline: its last piece is text ending in `\n`, or a
  /// `strftime` time whose format does (`types` are the values' types, by argument).
  func endsLine(values types: [ValueType]) -> Bool {
    switch pieces.last {
    case .text(let text)?: return text.hasSuffix("\n")
    case .conversion(_, let argument)?:
      if argument < types.count, case .wallTime(let format) = types[argument] { return format.hasSuffix("\n") }
      return false
    case nil: return false
    }
  }

  /// This format followed by `other`, whose arguments come after `count` of this one's.
  func appending(_ other: FormatString, shiftedBy count: Int) -> FormatString {
    FormatString(
      pieces: pieces
        + other.pieces.map { piece in
          if case .conversion(let conversion, let argument) = piece { return .conversion(conversion, argument: argument + count) }
          return piece
        })
  }
}
