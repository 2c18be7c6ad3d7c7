import SwtraceSyntax

/// `$name` variables: one stack slot per variable per program run, visible in the whole
/// block of the clause. The first assignment fixes the type; a read must follow an
/// assignment on every path to it, so the program never reads a slot it did not write.
extension ClauseContext {
  /// `$name = value`: the value's store and, for a variable that may be absent, its presence's.
  mutating func assignVariable(_ name: String, _ valueExpression: Expr, range: SourceRange) -> [Action] {
    guard var value = value(valueExpression) else { return [] }
    if case .void = value.type {
      diagnostics.append(
        Diagnostic("variable-type-mismatch", "'\(sourceText(valueExpression.range))' has no value to store", at: valueExpression.range))
      return []
    }
    let presence = value.presence.map(condition)
    guard let slot = variables.firstIndex(where: { $0.name == name }) else {
      let slot = variables.count
      variables.append(VariableDeclaration(name: name, type: value.type, range: range))
      assigned.insert(slot)
      var actions: [Action] = [.assignVariable(slot: slot, value: value, range: range)]
      if let presence {
        // A companion no spec can name holds whether the value is there.
        variables[slot].presenceSlot = variables.count
        variables.append(VariableDeclaration(name: name + "?", type: .bool, range: range))
        assigned.insert(variables.count - 1)
        actions.append(.assignVariable(slot: variables.count - 1, value: presence, range: range))
      }
      return actions
    }
    let declared = variables[slot]
    switch (declared.type, value.type) {
    case (.integer(let bytes, let signed), .integer), (.integer(let bytes, let signed), .bool):
      // Integers of any width mix, as in C, and a truth value is 0 or 1: the value is
      // converted to the variable's type.
      value = convertInteger(value, bytes: bytes, signed: signed, range: value.range)
    case (.bool, .integer):
      // A number stored in a truth value is true when it is not 0, as in C.
      value = condition(value)
    case (.string(let capacity), .string(let needed)):
      // Strings differ only in capacity: the slot grows to hold the longest.
      if needed > capacity { variables[slot].type = .string(capacity: needed) }
    default:
      guard declared.type == value.type else {
        diagnostics.append(
          Diagnostic(
            "variable-type-mismatch",
            "$\(name) holds \(Self.article(declared.type)), so it cannot be assigned '\(sourceText(valueExpression.range))', which is \(Self.article(value.type))",
            at: valueExpression.range,
            notes: [.init(.note, "$\(name) was first assigned here, which fixed its type", at: declared.range)]))
        return []
      }
    }
    assigned.insert(slot)
    var actions: [Action] = [.assignVariable(slot: slot, value: value, range: range)]
    if let presenceSlot = variables[slot].presenceSlot {
      assigned.insert(presenceSlot)
      actions.append(
        .assignVariable(slot: presenceSlot, value: presence ?? TypedExpr(.integer(1), type: .bool, range: range), range: range))
    } else if presence != nil {
      diagnostics.append(
        Diagnostic(
          "variable-may-be-absent",
          "$\(name) was first assigned a value that is always there, but '\(sourceText(valueExpression.range))' may be absent",
          at: valueExpression.range,
          notes: [
            .init(.note, "$\(name) was first assigned here", at: variables[slot].range),
            .init(.help, "assign '\(sourceText(valueExpression.range))' to $\(name) first: then $\(name) may be absent from the start"),
          ]))
      return []
    }
    return actions
  }

  /// A read of `$name`.
  mutating func variable(_ name: String, range: SourceRange) -> TypedExpr? {
    if checkingFilter {
      diagnostics.append(
        Diagnostic(
          "variable-in-filter", "a filter cannot read $\(name): the filter runs before the block that assigns variables",
          at: range, notes: [.init(.help, "test it inside the block instead: if ($\(name) ...) { ... }")]))
      return nil
    }
    guard let slot = variables.firstIndex(where: { $0.name == name }) else {
      var diagnostic = Diagnostic(
        "variable-before-assignment", "$\(name) is used before it is assigned", at: range,
        notes: [.init(.help, "assign it earlier in this block: $\(name) = ...")])
      if let best = closestName(to: name, among: variables.map(\.name)), assigned.contains(where: { variables[$0].name == best }) {
        diagnostic.notes = [.init(.help, "did you mean '$\(best)'?")]
      }
      diagnostics.append(diagnostic)
      return nil
    }
    guard assigned.contains(slot) else {
      diagnostics.append(
        Diagnostic(
          "variable-before-assignment",
          "$\(name) may be used before it is assigned: it is not assigned on every path to this point",
          at: range,
          notes: [
            .init(.note, "assigned here, in a branch that may not run", at: variables[slot].range),
            .init(.help, "assign it before the if, or in both branches"),
          ]))
      return nil
    }
    let stored = TypedExpr(.variable(slot: slot), type: variables[slot].type, range: range)
    guard let presenceSlot = variables[slot].presenceSlot else { return stored }
    return Self.optional(TypedExpr(.variable(slot: presenceSlot), type: .bool, range: range), stored)
  }

  /// "a u32", "an IPv4 address": a type named in a sentence.
  static func article(_ type: ValueType) -> String {
    let text = "\(type)"
    let characters = Array(text)
    let digitFollows = characters.count > 1 && characters[1].isNumber
    // "a u32" but "an unsigned int", "an s32" but "a string".
    let vowelSound =
      switch characters.first {
      case "u": !digitFollows
      case "s": digitFollows
      case "a", "e", "i", "o", "I": true
      default: false
      }
    return (vowelSound ? "an " : "a ") + text
  }
}
