/// What is known about a 64-bit number: an unsigned and a signed interval, kept consistent.
///
/// The pre-check must never know more than the kernel does, or it would accept a bounds check
/// the kernel cannot follow. So every operation here is at most as precise as the kernel's
/// (which also tracks known bits and 32-bit sub-register bounds): where the kernel forgets a
/// value (division, negation, byte swaps) this forgets it too, and where it is unsure whether
/// the kernel keeps a bound, it drops it.
struct ScalarBounds: Hashable, Sendable, CustomStringConvertible {
  var umin: UInt64
  var umax: UInt64
  var smin: Int64
  var smax: Int64

  static let unknown = ScalarBounds(umin: 0, umax: .max, smin: .min, smax: .max)
  static let unknown32 = unsigned(0, UInt64(UInt32.max))

  static func constant(_ value: UInt64) -> ScalarBounds {
    ScalarBounds(umin: value, umax: value, smin: Int64(bitPattern: value), smax: Int64(bitPattern: value))
  }

  /// `[low, high]` as unsigned numbers; `low <= high`.
  static func unsigned(_ low: UInt64, _ high: UInt64) -> ScalarBounds {
    ScalarBounds(umin: low, umax: high, smin: .min, smax: .max).normalized()!
  }

  /// `[low, high]` as signed numbers; `low <= high`.
  static func signed(_ low: Int64, _ high: Int64) -> ScalarBounds {
    ScalarBounds(umin: 0, umax: .max, smin: low, smax: high).normalized()!
  }

  /// A zero-extended load of `bytes` bytes: any value that fits.
  static func fitting(bytes: Int) -> ScalarBounds {
    bytes >= 8 ? .unknown : .unsigned(0, (1 << UInt64(bytes * 8)) - 1)
  }

  var constant: UInt64? { umin == umax ? umin : nil }
  var isUnknown: Bool { self == .unknown }

  /// Tightens each interval with what the other implies (when an interval does not wrap
  /// around the other's sign boundary); nil when no value is left.
  func normalized() -> ScalarBounds? {
    var b = self
    for _ in 0..<2 {
      if b.smin <= b.smax, UInt64(bitPattern: b.smin) <= UInt64(bitPattern: b.smax) {
        // The signed interval lies within one half of the unsigned range.
        b.umin = max(b.umin, UInt64(bitPattern: b.smin))
        b.umax = min(b.umax, UInt64(bitPattern: b.smax))
      }
      if b.umin <= b.umax, Int64(bitPattern: b.umin) <= Int64(bitPattern: b.umax) {
        b.smin = max(b.smin, Int64(bitPattern: b.umin))
        b.smax = min(b.smax, Int64(bitPattern: b.umax))
      }
    }
    guard b.umin <= b.umax, b.smin <= b.smax else { return nil }
    return b
  }

  /// Bounds allowing every value either allows.
  func hull(_ other: ScalarBounds) -> ScalarBounds {
    ScalarBounds(
      umin: min(umin, other.umin), umax: max(umax, other.umax), smin: min(smin, other.smin),
      smax: max(smax, other.smax))
  }

  /// Whether every value allowed by `other` is allowed here.
  func contains(_ other: ScalarBounds) -> Bool {
    umin <= other.umin && other.umax <= umax && smin <= other.smin && other.smax <= smax
  }

  var description: String {
    if let constant { return "\(Int64(bitPattern: constant))" }
    var parts: [String] = []
    if umin != 0 || umax != .max { parts.append("\(umin)...\(umax)") }
    if smin != .min || smax != .max, smin < 0 { parts.append("signed \(smin)...\(smax)") }
    return parts.isEmpty ? "any value" : parts.joined(separator: ", ")
  }
}

// MARK: - Arithmetic

extension ScalarBounds {
  /// The low 32 bits as an unsigned number. Known only when the upper half is known zero or
  /// the value is a constant.
  var low32: ScalarBounds {
    if let constant { return .constant(constant & 0xffff_ffff) }
    if umax <= 0xffff_ffff { return self }
    return .unknown32
  }

  /// The smallest all-ones number at least `value`: a bound for `|` and `^` results.
  private static func allOnes(covering value: UInt64) -> UInt64 {
    value == 0 ? 0 : UInt64.max >> UInt64(value.leadingZeroBitCount)
  }

  /// The result of `a op b` on 64 bits (`is64`) or on the low 32 bits, zero-extended.
  /// Returns nil for operations handled elsewhere (mov, neg).
  static func compute(_ op: ALUOperation, _ a: ScalarBounds, _ b: ScalarBounds, is64: Bool) -> ScalarBounds {
    let x = is64 ? a : a.low32
    let y = is64 ? b : b.low32
    let limit: UInt64 = is64 ? .max : 0xffff_ffff
    let anything: ScalarBounds = is64 ? .unknown : .unknown32
    let width: UInt64 = is64 ? 64 : 32
    // Division, remainder and shifts by an unknown or too large amount are not followed
    // by the kernel at all: it forgets the whole register, without zero-extending a 32-bit
    // result.
    let untracked = ScalarBounds.unknown

    // Constants fold exactly, with the machine's wrap-around; the kernel's known-bits
    // tracking does the same. Division and remainder are the exception: the kernel does not
    // compute their results at all.
    if let c = x.constant, let d = y.constant {
      // The kernel takes the shift amount from the whole source register.
      let fullShift = b.constant ?? .max
      switch op {
      case .add: return .constant((c &+ d) & limit)
      case .sub: return .constant((c &- d) & limit)
      case .mul: return .constant((c &* d) & limit)
      case .and: return .constant(c & d)
      case .or: return .constant(c | d)
      case .xor: return .constant(c ^ d)
      case .lsh where fullShift < width: return .constant((c << d) & limit)
      case .rsh where fullShift < width: return .constant(c >> d)
      case .arsh where fullShift < width:
        if is64 { return .constant(UInt64(bitPattern: Int64(bitPattern: c) >> Int64(d))) }
        return .constant(UInt64(UInt32(bitPattern: Int32(bitPattern: UInt32(c)) >> Int32(d))))
      default: return untracked
      }
    }

    switch op {
    case .add:
      var result = anything
      let (high, overflow) = x.umax.addingReportingOverflow(y.umax)
      if !overflow, high <= limit { result = .unsigned(x.umin + y.umin, high) }
      if is64 {
        let (slow, o1) = x.smin.addingReportingOverflow(y.smin)
        let (shigh, o2) = x.smax.addingReportingOverflow(y.smax)
        if !o1, !o2 { result.smin = slow; result.smax = shigh }
      }
      return result.normalized() ?? anything
    case .sub:
      var result = anything
      if x.umin >= y.umax { result = .unsigned(x.umin - y.umax, x.umax - y.umin) }
      if is64 {
        let (slow, o1) = x.smin.subtractingReportingOverflow(y.smax)
        let (shigh, o2) = x.smax.subtractingReportingOverflow(y.smin)
        if !o1, !o2 { result.smin = slow; result.smax = shigh }
      }
      return result.normalized() ?? anything
    case .mul:
      // Only products of small non-negative numbers, as older kernels do.
      guard x.umax <= 0xffff_ffff, y.umax <= 0xffff_ffff else { return anything }
      let high = x.umax * y.umax
      return high <= limit ? .unsigned(x.umin * y.umin, high) : anything
    case .and:
      return .unsigned(0, min(x.umax, y.umax))
    case .or:
      return .unsigned(max(x.umin, y.umin), allOnes(covering: max(x.umax, y.umax)))
    case .xor:
      return .unsigned(0, allOnes(covering: max(x.umax, y.umax)))
    case .lsh:
      guard let shift = b.constant, shift < width else { return untracked }
      // Bounded only while no bit can be shifted out (a strict version of the kernel's test).
      let room: UInt64 = (is64 ? 1 << 63 : 1 << 31) >> shift
      return x.umax < room ? .unsigned(x.umin << shift, x.umax << shift) : anything
    case .rsh:
      guard let shift = b.constant, shift < width else { return untracked }
      return .unsigned(x.umin >> shift, x.umax >> shift)
    case .arsh:
      guard let shift = b.constant, shift < width else { return untracked }
      guard is64 else { return anything }
      return .signed(x.smin >> Int64(shift), x.smax >> Int64(shift))
    case .div, .mod, .mov, .neg:
      return untracked
    }
  }
}

// MARK: - Comparisons

extension ScalarBounds {
  /// Whether `self <condition> value` always (true) or never (false) holds on 64 bits, when
  /// the intervals decide it; nil when both outcomes are possible.
  func decides(_ condition: JumpCondition, _ value: UInt64) -> Bool? {
    let signedValue = Int64(bitPattern: value)
    switch condition {
    case .eq:
      if let constant { return constant == value }
      if value < umin || value > umax || signedValue < smin || signedValue > smax { return false }
      return nil
    case .ne:
      return decides(.eq, value).map { !$0 }
    case .gt: return umin > value ? true : umax <= value ? false : nil
    case .ge: return umin >= value ? true : umax < value ? false : nil
    case .lt: return umax < value ? true : umin >= value ? false : nil
    case .le: return umax <= value ? true : umin > value ? false : nil
    case .sgt: return smin > signedValue ? true : smax <= signedValue ? false : nil
    case .sge: return smin >= signedValue ? true : smax < signedValue ? false : nil
    case .slt: return smax < signedValue ? true : smin >= signedValue ? false : nil
    case .sle: return smax <= signedValue ? true : smin > signedValue ? false : nil
    case .set:
      if let constant { return constant & value != 0 }
      return value == 0 ? false : nil
    }
  }

  /// The values for which `self <condition> value` holds (64-bit comparison), or nil if none.
  func assuming(_ condition: JumpCondition, _ value: UInt64) -> ScalarBounds? {
    if let decided = decides(condition, value) { return decided ? self : nil }
    let signedValue = Int64(bitPattern: value)
    var b = self
    switch condition {
    case .eq:
      b = .constant(value)
    case .ne:
      // Only a bound equal to the excluded value moves, as in the kernel.
      if b.umin == value { b.umin += 1 }
      if b.umax == value { b.umax -= 1 }
      if b.smin == signedValue { b.smin += 1 }
      if b.smax == signedValue { b.smax -= 1 }
    case .gt: b.umin = max(b.umin, value + 1)  // value < umax here, so no overflow
    case .ge: b.umin = max(b.umin, value)
    case .lt: b.umax = min(b.umax, value - 1)  // value > umin here
    case .le: b.umax = min(b.umax, value)
    case .sgt: b.smin = max(b.smin, signedValue + 1)
    case .sge: b.smin = max(b.smin, signedValue)
    case .slt: b.smax = min(b.smax, signedValue - 1)
    case .sle: b.smax = min(b.smax, signedValue)
    case .set: return self
    }
    return b.normalized()
  }

  /// Like `decides`, for a 32-bit comparison; decided only for constants.
  func decides32(_ condition: JumpCondition, _ value: UInt32) -> Bool? {
    guard let constant else { return nil }
    let a = UInt32(truncatingIfNeeded: constant)
    let sa = Int32(bitPattern: a)
    let sb = Int32(bitPattern: value)
    switch condition {
    case .eq: return a == value
    case .ne: return a != value
    case .gt: return a > value
    case .ge: return a >= value
    case .lt: return a < value
    case .le: return a <= value
    case .sgt: return sa > sb
    case .sge: return sa >= sb
    case .slt: return sa < sb
    case .sle: return sa <= sb
    case .set: return a & value != 0
    }
  }
}

extension JumpCondition {
  /// The condition with its operands swapped: `a < b` is `b > a`.
  var swapped: JumpCondition {
    switch self {
    case .gt: .lt
    case .lt: .gt
    case .ge: .le
    case .le: .ge
    case .sgt: .slt
    case .slt: .sgt
    case .sge: .sle
    case .sle: .sge
    case .eq, .ne, .set: self
    }
  }
}
