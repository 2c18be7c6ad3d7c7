import BTF
import SwtraceSyntax

/// Casts, pointer arithmetic and element access: the places where a spec names a type or an
/// address that BTF alone does not give.
extension ClauseContext {
  static let integerCasts: [String: (bytes: Int, signed: Bool)] = [
    "u8": (1, false), "u16": (2, false), "u32": (4, false), "u64": (8, false),
    "s8": (1, true), "s16": (2, true), "s32": (4, true), "s64": (8, true),
  ]

  /// `(u32)x`, `(bool)x`, `(enum NAME)x`, `(struct NAME *)p`, `(u8 *)p`.
  mutating func cast(_ operand: TypedExpr, to typeName: TypeName, range: SourceRange) -> TypedExpr? {
    if let presence = operand.presence {
      // The cast of a value that may be absent may be absent too.
      return cast(operand.unwrapped, to: typeName, range: range).map { Self.optional(presence, $0) }
    }
    func invalid(_ why: String) -> TypedExpr? {
      diagnostics.append(
        Diagnostic(
          "invalid-cast",
          "'\(sourceText(operand.range))' is \(Self.article(operand.type)), which cannot be cast to \(typeName)",
          at: range, notes: why.isEmpty ? [] : [.init(.help, why)]))
      return nil
    }
    let isNumber: Bool =
      switch operand.type {
      case .integer, .bool, .enumeration, .flags, .pointer, .kernelSymbol, .ipv4, .probe: true
      default: false
      }
    guard typeName.pointerDepth <= 1 else {
      diagnostics.append(
        Diagnostic(
          "unsupported-cast", "casts to pointers to pointers are not supported", at: typeName.range,
          notes: [.init(.help, "cast to a pointer to a struct and follow it with ->")]))
      return nil
    }
    if typeName.pointerDepth == 0 {
      if let (bytes, signed) = Self.integerCasts[typeName.name] {
        guard isNumber else { return invalid("only numbers, addresses and pointers convert to integers") }
        return convertInteger(operand, bytes: bytes, signed: signed, range: range)
      }
      if typeName.name == "bool" {
        guard isNumber else { return invalid("") }
        var truth = condition(operand)
        truth.range = range
        return truth
      }
      if typeName.name.hasPrefix("enum ") {
        guard let id = btfType(typeName) else { return nil }
        guard operand.type.isNumeric else { return invalid("only numbers convert to enums") }
        // The number takes the enum's own width and signedness, as an integer cast would, so
        // that comparing it and printing it agree: `(enum netns_bpf_attach_type)mark` with
        // every bit of the mark set is -1, NETNS_BPF_INVALID, and less than 0.
        let enumType = valueType(of: id)
        guard let representation = enumType.integerRepresentation else { return nil }
        var named = convertInteger(operand, to: representation, range: range)
        named.type = enumType
        return named
      }
      diagnostics.append(
        Diagnostic(
          "cast-needs-pointer", "a value cannot be cast to \(typeName) itself, only a pointer to it",
          at: typeName.range, notes: [.init(.help, "write (\(typeName) *)\(sourceText(operand.range))")]))
      return nil
    }
    guard let pointee = btfType(typeName) else { return nil }
    switch operand.type {
    case .pointer, .integer, .kernelSymbol: break
    default: return invalid("only pointers and integers convert to pointers")
    }
    var pointer = operand
    pointer.type = .pointer(pointee: pointee, description: typeName.description)
    pointer.range = range
    return pointer
  }

  /// The BTF type a cast names (without its `*`), or a diagnostic.
  mutating func btfType(_ typeName: TypeName) -> BTFTypeID? {
    let parts = typeName.name.split(separator: " ", maxSplits: 1).map(String.init)
    var found: BTFTypeID?
    if parts.count == 2 {
      let kinds: [BTFKind] =
        switch parts[0] {
        case "struct": [.structure]
        case "union": [.union]
        default: [.enumeration, .enum64]
        }
      let types = self.types
      found = kinds.lazy.compactMap { types.namedType(parts[1], kind: $0) }.first
    } else {
      // `(u32 *)p`: the kernel's own typedefs of the fixed-width integers.
      found = types.namedType(typeName.name == "bool" ? "bool" : typeName.name, kind: .typedef)
    }
    guard let found else {
      diagnostics.append(
        Diagnostic("unknown-type", "\(typeName.name) is not a type in \(types.origin)", at: typeName.range))
      return nil
    }
    return found
  }

  /// An integer converted to `bytes` bytes: truncated, then zero- or sign-extended as C does.
  func convertInteger(_ value: TypedExpr, bytes: Int, signed: Bool, range: SourceRange) -> TypedExpr {
    convertInteger(value, to: IntegerRepresentation(bytes: bytes, isSigned: signed), range: range)
  }

  func convertInteger(_ value: TypedExpr, to target: IntegerRepresentation, range: SourceRange) -> TypedExpr {
    let type = ValueType.integer(bytes: target.bytes, signed: target.isSigned)
    if case .integer(let constant) = value.kind {
      return TypedExpr(.integer(ConstantFolding.converted(constant, to: target)), type: type, range: range)
    }
    // Registers hold every value extended to 64 bits according to its own type, so widening
    // that keeps the value needs no instruction.
    var unchanged = target.bytes == 8
    switch value.type {
    case .integer, .enumeration:
      let from = value.type.integerRepresentation!
      unchanged =
        unchanged || (from.bytes < target.bytes && (!from.isSigned || target.isSigned))
        || (from.bytes == target.bytes && from.isSigned == target.isSigned)
    case .bool:
      unchanged = true
    default:
      break
    }
    if unchanged {
      var retyped = value
      retyped.type = type
      retyped.range = range
      return retyped
    }
    return TypedExpr(.convert(value, bytes: target.bytes, signed: target.isSigned), type: type, range: range)
  }

  func isInteger(_ type: ValueType) -> Bool {
    switch type {
    case .integer, .bool: true
    default: false
    }
  }

  /// `pointer + n`, `pointer - n`, `n + pointer`: moves by `n` elements, as in C.
  func pointerArithmetic(_ op: BinaryOperator, _ lhs: TypedExpr, _ rhs: TypedExpr) -> TypedExpr? {
    guard op == .add || op == .subtract else { return nil }
    let pointer: TypedExpr
    let count: TypedExpr
    if case .pointer = lhs.type, isInteger(rhs.type) {
      (pointer, count) = (lhs, rhs)
    } else if op == .add, case .pointer = rhs.type, isInteger(lhs.type) {
      (pointer, count) = (rhs, lhs)
    } else {
      return nil
    }
    guard case .pointer(let pointee, _) = pointer.type else { return nil }
    let distance = scaled(count, by: elementSize(pointee) ?? 1)
    return TypedExpr(.binary(op, pointer, distance), type: pointer.type, range: lhs.range.union(rhs.range))
  }

  /// Bytes of one element a pointer to `pointee` steps over; nil for `void`.
  func elementSize(_ pointee: BTFTypeID) -> Int? {
    guard pointee != 0, let size = types.size(of: types.resolved(pointee)), size > 0 else { return nil }
    return size
  }

  func scaled(_ count: TypedExpr, by size: Int) -> TypedExpr {
    if size == 1 { return count }
    if case .integer(let constant) = count.kind {
      return TypedExpr(.integer(constant &* UInt64(size)), type: .u64, range: count.range)
    }
    return TypedExpr(
      .binary(.multiply, count, TypedExpr(.integer(UInt64(size)), type: .u64, range: count.range)), type: .u64,
      range: count.range)
  }

  /// `array[i]` and `pointer[i]`. A constant array index is checked here; any other is
  /// checked when the program runs, and an element out of bounds reads as 0.
  mutating func index(_ base: Reference, _ index: TypedExpr, range: SourceRange) -> Reference? {
    let baseRange: SourceRange
    switch base {
    case .place(let place): baseRange = place.range
    case .value(let value): baseRange = value.range
    }
    guard isInteger(index.type) else {
      diagnostics.append(
        Diagnostic(
          "index-type", "an index must be an integer, but '\(sourceText(index.range))' is \(Self.article(index.type))",
          at: index.range))
      return nil
    }
    let constant: UInt64? = if case .integer(let c) = index.kind { c } else { nil }
    if case .place(let place) = base, case .array(let element, let count) = types.type(types.resolved(place.type)) {
      let size = types.size(of: element) ?? 1
      if let constant {
        guard constant < UInt64(count) else {
          diagnostics.append(
            Diagnostic(
              "index-out-of-bounds",
              "index \(Int64(bitPattern: constant)) is out of bounds: '\(sourceText(baseRange))' has \(count) element\(count == 1 ? "" : "s"), 0 to \(count - 1)",
              at: index.range))
          return nil
        }
        return .place(
          Place(
            base: place.base, offset: place.offset + Int(constant) * size, type: element, bitfield: nil,
            range: range, condition: place.condition))
      }
      // Compared unsigned, so a negative index is out of bounds too.
      let unsignedIndex = convertInteger(index, bytes: 8, signed: false, range: index.range)
      var inBounds = TypedExpr(
        .binary(.less, unsignedIndex, TypedExpr(.integer(UInt64(count)), type: .u64, range: index.range)),
        type: .bool, range: index.range)
      if let outer = place.condition { inBounds = TypedExpr(.binary(.and, outer, inBounds), type: .bool, range: range) }
      let address = TypedExpr(.binary(.add, place.base, scaled(unsignedIndex, by: size)), type: place.base.type, range: range)
      return .place(Place(base: address, offset: place.offset, type: element, bitfield: nil, range: range, condition: inBounds))
    }
    let pointer: TypedExpr
    switch base {
    case .value(let value): pointer = value
    case .place(let place):
      guard let value = read(place) else { return nil }
      pointer = value
    }
    guard case .pointer(let pointee, _) = pointer.type else {
      diagnostics.append(
        Diagnostic(
          "index-needs-array",
          "'\(sourceText(baseRange))' is \(Self.article(pointer.type)); only arrays and pointers can be indexed",
          at: baseRange))
      return nil
    }
    guard let size = elementSize(pointee) else {
      diagnostics.append(
        Diagnostic(
          "index-needs-array", "'\(sourceText(baseRange))' points to void, which has no elements", at: baseRange,
          notes: [.init(.help, "cast it to a typed pointer first, such as (u8 *)\(sourceText(baseRange))")]))
      return nil
    }
    if let constant, let offset = Int32(exactly: Int64(bitPattern: constant) &* Int64(size)) {
      return .place(Place(base: pointer, offset: Int(offset), type: pointee, bitfield: nil, range: range))
    }
    let address = TypedExpr(.binary(.add, pointer, scaled(index, by: size)), type: pointer.type, range: range)
    return .place(Place(base: address, offset: 0, type: pointee, bitfield: nil, range: range))
  }
}
