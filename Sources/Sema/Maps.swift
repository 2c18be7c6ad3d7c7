public import SwtraceSyntax

/// What a map holds per key, decided by the first assignment to it.
public enum Aggregation: Hashable, Sendable, CustomStringConvertible {
  case count
  case sum
  case average
  case minimum
  case maximum
  /// Count, average and total together.
  case stats
  /// Power-of-two buckets.
  case histogram
  /// Linear buckets `[min, max)` of width `step`, plus one below and one above.
  case linearHistogram(min: Int64, max: Int64, step: Int64)
  /// `@m[k] = expr`: the last value stored.
  case value

  public var description: String {
    switch self {
    case .count: "count()"
    case .sum: "sum()"
    case .average: "avg()"
    case .minimum: "min()"
    case .maximum: "max()"
    case .stats: "stats()"
    case .histogram: "hist()"
    case .linearHistogram(let min, let max, let step): "lhist(\(min), \(max), \(step))"
    case .value: "a plain value"
    }
  }

  public var callName: String {
    switch self {
    case .count: "count"
    case .sum: "sum"
    case .average: "avg"
    case .minimum: "min"
    case .maximum: "max"
    case .stats: "stats"
    case .histogram: "hist"
    case .linearHistogram: "lhist"
    case .value: ""
    }
  }

  public var isHistogram: Bool {
    switch self {
    case .histogram, .linearHistogram: true
    default: false
    }
  }
}

/// One key of a map: how it prints, and its type.
public struct MapKey: Hashable, Sendable {
  public var label: String
  public var type: ValueType
  /// Whether the key may be absent (`udp.dport` of a packet without UDP): its slot is
  /// followed by 8 bytes that say whether it is present, and it prints as `-` when not.
  public var optional: Bool = false

  /// Bytes of the key in the map's key: its value's slot, then its presence when optional.
  public var slotSize: Int { type.mapSlotSize + (optional ? 8 : 0) }
}

extension ValueType {
  /// Bytes the value takes as a map key or a plain map value: strings their capacity, IPv6
  /// addresses 16, IP addresses of either family 24 (see `.ipAddress`), everything else a
  /// register's 8, each rounded to 8.
  public var mapSlotSize: Int {
    switch self {
    case .string(let capacity): (capacity + 7) / 8 * 8
    case .ipv6: 16
    case .ipAddress: 24
    default: 8
    }
  }
}

/// A map declared by use: `@bytes[ifname, proto] = sum(len)`.
public struct MapDeclaration: Hashable, Sendable {
  /// The name without `@`; empty for a bare `@`.
  public var name: String
  public var keys: [MapKey]
  public var aggregation: Aggregation
  /// The type of the values aggregated or stored (`len` for `sum(len)`), `u64` for `count()`.
  public var valueType: ValueType
  /// Where the map is first assigned, for "first used here" notes.
  public var range: SourceRange

  public var displayName: String { "@" + name }
}

/// Statements run by swtrace itself rather than in the kernel: BEGIN, END and interval clauses.
public struct UserClause: Hashable, Sendable {
  public enum Trigger: Hashable, Sendable {
    case begin, end
    case interval(nanoseconds: UInt64)
  }
  public enum Step: Hashable, Sendable {
    case printMap(Int)
    /// `print(@map, N)`: the N entries with the largest values.
    case printMapTop(Int, top: Int)
    case clearMap(Int)
    /// `zero(@map)`: every value set to zero, the keys kept.
    case zeroMap(Int)
    /// `print("text")`: a line of its own.
    case printText(String)
    /// `printf("format", constants...)`: text that does not end with a newline is continued
    /// by the next printf.
    case printf(FormatString, [UserValue])
    /// `time("format")`: the wall-clock time now, formatted with `strftime`.
    case printTime(format: String)
    /// `@map[keys] = value`: written into the kernel's map.
    case assignMap(Int, keys: [UserValue], value: UserValue)
    case exit
  }
  public var trigger: Trigger
  public var steps: [Step]
  public var range: SourceRange
}

extension ClauseContext {
  static let aggregationNames = ["count", "sum", "avg", "min", "max", "stats", "hist", "lhist"]

  /// `@name[keys] = value`.
  mutating func mapAssignment(_ access: MapAccess, _ valueExpression: Expr, range: SourceRange) -> Action? {
    var keys: [TypedExpr] = []
    for keyExpression in access.keys {
      guard let key = value(keyExpression) else { return nil }
      if case .string = key.type, case .string = key.kind {
        // A literal string key is fine; it is stored like any string.
      }
      keys.append(key)
    }
    let aggregation: Aggregation
    var argument: TypedExpr?
    if case .call(let name, let arguments) = valueExpression.kind, Self.aggregationNames.contains(name) {
      guard let parsed = aggregationCall(name, arguments, range: valueExpression.range) else { return nil }
      (aggregation, argument) = parsed
    } else {
      guard let stored = value(valueExpression) else { return nil }
      aggregation = .value
      argument = stored
    }
    if let argument, aggregation != .value, !argument.type.isNumeric {
      diagnostics.append(
        Diagnostic(
          "aggregate-needs-number", "\(aggregation.callName)() needs a number, but '\(sourceText(argument.range))' is a \(argument.type)",
          at: argument.range))
      return nil
    }
    let declaration = MapDeclaration(
      name: access.name,
      keys: zip(access.keys, keys).map {
        MapKey(label: sourceText($0.0.range), type: Self.keyType($0.1.type), optional: $0.1.presence != nil)
      },
      aggregation: aggregation, valueType: argument?.type ?? .u64, range: access.range)
    guard let index = declare(declaration, at: access.range) else { return nil }
    // An absent value is not aggregated, and an absent key of a map whose key was present
    // where it was first used has no entry: the update is skipped.
    var skippedUnless: TypedExpr? = argument?.presence
    for (key, declared) in zip(keys, maps[index].keys) where !declared.optional {
      skippedUnless = Self.bothPresent(skippedUnless, key.presence)
    }
    let update = Action.mapUpdate(map: index, keys: keys, value: argument?.unwrapped, range: range)
    if let skippedUnless { return .conditional(condition(skippedUnless), then: [update], else: []) }
    return update
  }

  /// Whether a key of type `a` finds entries stored under keys of type `b`: the same type, or
  /// integers of either signedness (both are 8 bytes, as in bpftrace's maps).
  static func keyTypesMatch(_ a: ValueType, _ b: ValueType) -> Bool {
    if a == b { return true }
    if case .integer(8, _) = a, case .integer(8, _) = b { return true }
    return false
  }

  /// Map keys are stored in 8-byte slots; only their printing keeps the narrower type.
  static func keyType(_ type: ValueType) -> ValueType {
    switch type {
    case .integer(_, let signed): .integer(bytes: 8, signed: signed)
    case .bool: .integer(bytes: 8, signed: false)
    default: type
    }
  }

  mutating func aggregationCall(_ name: String, _ arguments: [Expr], range: SourceRange) -> (Aggregation, TypedExpr?)? {
    func arity(_ expected: Int, _ usage: String) -> Bool {
      guard arguments.count == expected else {
        diagnostics.append(
          Diagnostic(
            "aggregate-arity", "\(name)() takes \(expected == 0 ? "no arguments" : "\(expected) argument\(expected == 1 ? "" : "s")")",
            at: range, notes: [.init(.help, "write it as \(usage)")]))
        return false
      }
      return true
    }
    switch name {
    case "count":
      return arity(0, "@name[key] = count()") ? (.count, nil) : nil
    case "sum", "avg", "min", "max", "stats", "hist":
      guard arity(1, "@name[key] = \(name)(len)"), let argument = value(arguments[0]) else { return nil }
      let kind: Aggregation =
        switch name {
        case "sum": .sum
        case "avg": .average
        case "min": .minimum
        case "max": .maximum
        case "stats": .stats
        default: .histogram
        }
      return (kind, argument)
    default:  // lhist
      guard arity(4, "@name = lhist(len, 0, 1500, 100)"), let argument = value(arguments[0]) else { return nil }
      var bounds: [Int64] = []
      for expression in arguments.dropFirst() {
        guard let typed = value(expression) else { return nil }
        guard case .integer(let constant) = typed.kind else {
          diagnostics.append(
            Diagnostic("lhist-bounds-constant", "lhist() bounds must be constants", at: expression.range))
          return nil
        }
        bounds.append(Int64(bitPattern: constant))
      }
      let (low, high, step) = (bounds[0], bounds[1], bounds[2])
      // The span is computed without trapping: bounds 2^63 or more apart are refused.
      let (span, overflows) = high.subtractingReportingOverflow(low)
      guard step > 0, low < high, !overflows, span / step + (span % step == 0 ? 0 : 1) <= 1000 else {
        diagnostics.append(
          Diagnostic(
            "lhist-bounds", "lhist() needs min < max and a step > 0 giving at most 1000 buckets; got \(low), \(high), \(step)",
            at: range))
        return nil
      }
      return (.linearHistogram(min: low, max: high, step: step), argument)
    }
  }

  /// Registers a map, or checks a new use against the earlier one.
  mutating func declare(_ declaration: MapDeclaration, at range: SourceRange) -> Int? {
    if let index = maps.firstIndex(where: { $0.name == declaration.name }) {
      let existing = maps[index]
      var problem: String?
      let keys = Self.unifiedKeys(existing.keys.map(\.type), declaration.keys.map(\.type))
      let valueType = Self.unifiedValueType(existing, declaration)
      if keys == nil {
        let before = existing.keys.map { "\($0.type)" }.joined(separator: ", ")
        let now = declaration.keys.map { "\($0.type)" }.joined(separator: ", ")
        problem = "\(declaration.displayName) was first used with keys [\(before)], here with [\(now)]"
      } else if existing.aggregation != declaration.aggregation {
        problem = "\(declaration.displayName) was first assigned \(existing.aggregation), here \(declaration.aggregation)"
      } else if valueType == nil {
        problem = "\(declaration.displayName) was first assigned \(Self.article(existing.valueType)), here \(Self.article(declaration.valueType))"
      }
      if let problem {
        diagnostics.append(
          Diagnostic("map-type-mismatch", problem, at: range, notes: [.init(.note, "first used here", at: existing.range)]))
        return nil
      }
      guard widen(index, keys: keys!, valueType: valueType!, at: range) else { return nil }
      return index
    }
    if maps.count >= Self.mapLimit {
      diagnostics.append(
        Diagnostic("too-many-maps", "a spec may use at most \(Self.mapLimit) maps", at: range))
      return nil
    }
    guard keyFits(declaration.keys.map(\.type), of: declaration, at: range) else { return nil }
    maps.append(declaration)
    return maps.count - 1
  }

  static let mapLimit = 32
  static let keyLimit = 256

  /// The key types of a map used with keys `a` before and `b` now: the same types, except
  /// that strings of any capacity share one key type as wide as the widest (a shorter
  /// string is zero-padded, so equal strings still make equal keys). Nil when they differ.
  static func unifiedKeys(_ a: [ValueType], _ b: [ValueType]) -> [ValueType]? {
    guard a.count == b.count else { return nil }
    var keys: [ValueType] = []
    for (x, y) in zip(a, b) {
      // Integers of either signedness find each other's entries (both are 8 bytes, as in
      // bpftrace's maps).
      guard let type = unifiedStorage(x, y) ?? (keyTypesMatch(x, y) ? x : nil) else { return nil }
      keys.append(type)
    }
    return keys
  }

  /// `a` and `b` as one stored type: equal types, strings of any capacity (the widest), or,
  /// for stored values, integers of any width (kept in 8 bytes, printed as first assigned).
  static func unifiedStorage(_ a: ValueType, _ b: ValueType, integersMix: Bool = false) -> ValueType? {
    if case .string(let x) = a, case .string(let y) = b { return .string(capacity: max(x, y)) }
    if a == b { return a }
    let isInteger = { (type: ValueType) -> Bool in
      switch type {
      case .integer, .bool: true
      default: false
      }
    }
    return integersMix && isInteger(a) && isInteger(b) ? a : nil
  }

  /// The value type of a map after `declaration` assigns it again; nil when the values of a
  /// plain value map cannot share one slot. Aggregations take any number.
  static func unifiedValueType(_ existing: MapDeclaration, _ declaration: MapDeclaration) -> ValueType? {
    guard existing.aggregation == .value else { return existing.valueType }
    return unifiedStorage(existing.valueType, declaration.valueType, integersMix: true)
  }

  /// Whether keys of `types` fit the key size limit; false, with a diagnostic, when not.
  mutating func keyFits(_ types: [ValueType], of map: MapDeclaration, at range: SourceRange) -> Bool {
    // Each key's slot, and 8 bytes after an optional one saying whether it is there.
    let keyBytes = zip(types, map.keys).reduce(0) { $0 + $1.0.mapSlotSize + ($1.1.optional ? 8 : 0) }
    guard keyBytes > Self.keyLimit else { return true }
    diagnostics.append(
      Diagnostic(
        "map-key-too-large", "the key of \(map.displayName) takes \(keyBytes) bytes; keys are limited to \(Self.keyLimit)",
        at: range, notes: [.init(.help, "use fewer or smaller keys (a string key takes its whole capacity)")]))
    return false
  }

  /// Makes map `index` hold `keys` and `valueType` (its string keys and values widened);
  /// false, with a diagnostic, when the widened key is over the limit.
  mutating func widen(_ index: Int, keys: [ValueType], valueType: ValueType, at range: SourceRange) -> Bool {
    guard keyFits(keys, of: maps[index], at: range) else { return false }
    for (position, type) in keys.enumerated() { maps[index].keys[position].type = type }
    maps[index].valueType = valueType
    return true
  }

  /// `@name[keys]` read in an expression: the stored value, or 0 when there is none.
  mutating func mapRead(_ access: MapAccess, range: SourceRange) -> TypedExpr? {
    guard let index = maps.firstIndex(where: { $0.name == access.name }) else {
      diagnostics.append(
        Diagnostic(
          "unknown-map", "@\(access.name) is read before any clause assigns it", at: access.range,
          notes: [.init(.help, "assign it first, in this or an earlier clause: @\(access.name)[key] = value")]))
      return nil
    }
    let declaration = maps[index]
    guard declaration.aggregation == .value else {
      diagnostics.append(
        Diagnostic(
          "map-read-aggregate", "\(declaration.displayName) holds \(declaration.aggregation) per CPU and can only be printed",
          at: access.range, notes: [.init(.note, "assigned here", at: declaration.range)]))
      return nil
    }
    guard let keys = entryKeys(access, of: index) else { return nil }
    return TypedExpr(.mapLookup(map: index, keys: keys), type: declaration.valueType, range: range)
  }

  /// The typed keys of `@name[keys]` for map `index`, which must be keyed by the same types
  /// (strings of any capacity; the map's string keys widen to the longest).
  mutating func entryKeys(_ access: MapAccess, of index: Int) -> [TypedExpr]? {
    var keys: [TypedExpr] = []
    for keyExpression in access.keys {
      guard let key = value(keyExpression) else { return nil }
      keys.append(key)
    }
    let declaration = maps[index]
    guard let unified = Self.unifiedKeys(declaration.keys.map(\.type), keys.map { Self.keyType($0.type) }) else {
      diagnostics.append(
        Diagnostic(
          "map-type-mismatch", "\(declaration.displayName) is keyed by [\(declaration.keys.map { "\($0.type)" }.joined(separator: ", "))]",
          at: access.range, notes: [.init(.note, "first used here", at: declaration.range)]))
      return nil
    }
    guard widen(index, keys: unified, valueType: declaration.valueType, at: access.range) else { return nil }
    return keys
  }
}
