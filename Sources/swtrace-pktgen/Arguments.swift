// Hand-written argument parsing: `--name value` or `--name=value`, plus boolean flags.

/// Options of one subcommand, read from the command line after the subcommand name.
struct ParsedOptions {
  private var values: [String: String] = [:]
  private var flags: Set<String> = []

  /// Parses `arguments`, accepting only the listed option names (without the leading
  /// dashes). Options in `valued` take a value, options in `booleans` take none.
  init(_ arguments: [String], valued: Set<String>, booleans: Set<String> = []) {
    var index = 0
    while index < arguments.count {
      let argument = arguments[index]
      index += 1
      guard argument.hasPrefix("--"), argument.count > 2 else {
        usageFailure("unexpected argument '\(argument)'")
      }
      var name = String(argument.dropFirst(2))
      var inlineValue: String?
      if let eq = name.firstIndex(of: "=") {
        inlineValue = String(name[name.index(after: eq)...])
        name = String(name[..<eq])
      }
      if booleans.contains(name) {
        if inlineValue != nil { usageFailure("option --\(name) takes no value") }
        flags.insert(name)
        continue
      }
      guard valued.contains(name) else {
        usageFailure("unknown option '--\(name)'")
      }
      let value: String
      if let inlineValue {
        value = inlineValue
      } else {
        guard index < arguments.count else { usageFailure("option --\(name) needs a value") }
        value = arguments[index]
        index += 1
      }
      if values[name] != nil { usageFailure("option --\(name) given twice") }
      values[name] = value
    }
  }

  func flag(_ name: String) -> Bool { flags.contains(name) }

  func string(_ name: String) -> String? { values[name] }

  func required(_ name: String) -> String {
    guard let value = values[name] else { usageFailure("missing required option --\(name)") }
    return value
  }

  /// An unsigned integer in decimal or 0x-prefixed hex, within `range`.
  func integer(_ name: String, in range: ClosedRange<UInt64>) -> UInt64? {
    guard let text = values[name] else { return nil }
    return parseInteger(text, option: name, in: range)
  }

  func requiredInteger(_ name: String, in range: ClosedRange<UInt64>) -> UInt64 {
    parseInteger(required(name), option: name, in: range)
  }

  /// A positive decimal number (fractions allowed), within `range`.
  func number(_ name: String, in range: ClosedRange<Double>) -> Double? {
    guard let text = values[name] else { return nil }
    guard let value = Double(text), value.isFinite, range.contains(value) else {
      usageFailure("option --\(name) must be a number in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
    }
    return value
  }

  /// An IPv4 address; when `restricted`, only the allowed target ranges are accepted.
  func address(_ name: String, restricted: Bool) -> IPv4Address? {
    guard let text = values[name] else { return nil }
    guard let address = IPv4Address(text) else {
      usageFailure("option --\(name) must be a dotted IPv4 address, got '\(text)'")
    }
    if restricted && !address.isAllowedTarget {
      die(refusedAddressMessage("--\(name)", address), status: Status.usage)
    }
    return address
  }
}

func parseInteger(_ text: String, option: String, in range: ClosedRange<UInt64>) -> UInt64 {
  let lowered = text.lowercased()
  let parsed: UInt64?
  if lowered.hasPrefix("0x") {
    parsed = UInt64(lowered.dropFirst(2), radix: 16)
  } else {
    parsed = UInt64(lowered, radix: 10)
  }
  guard let value = parsed, range.contains(value) else {
    usageFailure("option --\(option) must be an integer in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
  }
  return value
}

/// Parses a payload size list: comma-separated sizes and inclusive ranges,
/// e.g. `64`, `100,200,300`, `100-149` or `10,20-22` (= 10,20,21,22).
func parseSizes(_ text: String, option: String, maximum: Int) -> [Int] {
  var sizes: [Int] = []
  for part in text.split(separator: ",", omittingEmptySubsequences: false) {
    let piece = part.trimmingSpaces()
    let bounds = piece.split(separator: "-", omittingEmptySubsequences: false)
    guard (1...2).contains(bounds.count),
      let low = Int(bounds[0]), let high = Int(bounds[bounds.count - 1]),
      low >= 0, high >= low, high <= maximum
    else {
      usageFailure("option --\(option): '\(piece)' is not a size or size range within 0...\(maximum)")
    }
    if high - low > 100_000 || sizes.count > 100_000 {
      usageFailure("option --\(option): list too long")
    }
    sizes.append(contentsOf: low...high)
  }
  return sizes
}

extension Substring {
  func trimmingSpaces() -> String {
    String(self.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
  }
}
