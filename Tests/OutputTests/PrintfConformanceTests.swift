// printf against the C library: random formats and values are formatted by swtrace and by
// glibc's vsnprintf, and must agree. swtrace formats each value at its own width, which is
// what C does when the conversion carries the matching length modifier (hh, h, none, ll), so
// that is how the C side is asked. The documented differences from C (grammar/README.md,
// "printf") are the only cases left out: an unsigned 64-bit value above 2^63 under %d (C has
// no signed reading of it), and %c of a byte outside printable ASCII (escaped in swtrace).

import Glibc
import Testing
import TestSupport

@testable import CodeGen
@testable import Output
@testable import Sema
import SwtraceSyntax

/// One value as the kernel would record it: its bytes, its width and signedness.
struct RecordedInteger: CustomStringConvertible {
  var bits: UInt64
  var width: Int
  var signed: Bool

  var type: ValueType { .integer(bytes: width, signed: signed) }
  var bytes: [UInt8] { (0..<width).map { UInt8(truncatingIfNeeded: bits >> (8 * $0)) } }
  /// The value as C reads it after the default argument promotions of its own width.
  var signExtended: Int64 {
    let shift = UInt64(64 - 8 * width)
    return Int64(bitPattern: bits << shift) >> Int64(shift)
  }
  var lengthModifier: String { [1: "hh", 2: "h", 4: "", 8: "ll"][width]! }
  var description: String { "\(signed ? "s" : "u")\(width * 8) 0x\(String(bits, radix: 16))" }
}

/// glibc's answer for one conversion and one argument.
func cFormat(_ format: String, _ argument: CVarArg) -> String {
  var buffer = [CChar](repeating: 0, count: 16384)
  let count = withVaList([argument]) { vsnprintf(&buffer, buffer.count, format, $0) }
  precondition(count >= 0 && Int(count) < buffer.count, "vsnprintf failed for \(format)")
  return String(decoding: buffer.prefix(Int(count)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// swtrace's answer: the format parsed as a spec's printf format would be, then rendered.
func swtraceFormat(_ format: String, type: ValueType, size: Int, bytes: [UInt8]) throws -> String {
  let (parsed, diagnostics) = FormatString.parse(format, literal: SourceRange(0, 0), spelling: format)
  let formatString = try #require(parsed, "\(format): \(diagnostics.map(\.message))")
  let field = EventField(label: "x", type: type, offset: 0, size: size)
  return PrintfRenderer.render(formatString, fields: [field], probeNames: ["p"]) { _ in bytes }
}

/// Random conversions: flags in any order and combination, widths and precisions from none to
/// wider than the longest value.
struct ConversionGenerator {
  var random: SplitMix64

  mutating func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }
  mutating func below(_ bound: Int) -> Int { Int(random.next() % UInt64(bound)) }

  mutating func flags(_ allowed: String) -> String {
    var flags = ""
    for flag in allowed where chance(25) { flags.append(flag) }
    return String(flags.shuffled(using: &random))
  }

  mutating func widthAndPrecision(precision allowed: Bool = true) -> String {
    var text = chance(50) ? String(below(25)) : ""
    if text == "0" { text = "" }  // "0" alone would be read as a flag.
    if allowed, chance(50) { text += "." + (chance(20) ? "" : String(below(25))) }
    return text
  }

  mutating func integer() -> RecordedInteger {
    let width = [1, 2, 4, 8][below(4)]
    let mask: UInt64 = width == 8 ? .max : (1 << UInt64(8 * width)) - 1
    // Edges (0, 1, the extremes of each width) as often as random bits.
    let edges: [UInt64] = [0, 1, mask, mask >> 1, (mask >> 1) + 1, 7, 8, 255]
    let bits = (chance(40) ? edges[below(edges.count)] : random.next()) & mask
    return RecordedInteger(bits: bits, width: width, signed: chance(50))
  }
}

@Suite("printf agrees with the C library")
struct PrintfConformanceTests {
  static let cases = 6000

  @Test("integer conversions (d i u x X o) match vsnprintf with the value's own length modifier")
  func integerConversions() throws {
    var generator = ConversionGenerator(random: SplitMix64(seed: 0x9f_2026))
    var mismatches: [String] = []
    for _ in 0..<Self.cases {
      let value = generator.integer()
      let kind = Array("diuxXo")[generator.below(6)]
      let spec = "%" + generator.flags("-0+ #") + generator.widthAndPrecision()
      let swtrace = try swtraceFormat(spec + String(kind), type: value.type, size: value.width, bytes: value.bytes)
      let c: String
      if "di".contains(kind), !value.signed {
        // swtrace keeps an unsigned value unsigned under %d; C's signed conversion agrees on
        // every value a 64-bit signed integer holds.
        guard value.bits <= UInt64(Int64.max) else { continue }
        c = cFormat(spec + "ll" + String(kind), Int64(value.bits))
      } else if value.width == 8 {
        c = cFormat(spec + "ll" + String(kind), Int64(bitPattern: value.bits))
      } else {
        c = cFormat(spec + value.lengthModifier + String(kind), Int32(truncatingIfNeeded: value.signExtended))
      }
      if swtrace != c { mismatches.append("\(spec)\(kind) of \(value): swtrace [\(swtrace)] C [\(c)]") }
    }
    #expect(mismatches.isEmpty, "\(mismatches.count) differences, first: \(mismatches.prefix(20).joined(separator: "\n"))")
  }

  @Test("%s of strings, %c of printable characters and %p of addresses match vsnprintf")
  func stringsCharactersAndPointers() throws {
    var generator = ConversionGenerator(random: SplitMix64(seed: 0x5c_2026))
    var mismatches: [String] = []
    let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789 .-_:%")
    for _ in 0..<Self.cases {
      switch generator.below(3) {
      case 0:
        let length = generator.below(16)
        let text = String((0..<length).map { _ in alphabet[generator.below(alphabet.count)] })
        let spec = "%" + generator.flags("-") + generator.widthAndPrecision() + "s"
        let bytes = Array(text.utf8) + [UInt8](repeating: 0, count: 16 - length)
        let swtrace = try swtraceFormat(spec, type: .string(capacity: 16), size: 16, bytes: bytes)
        let c = text.withCString { cFormat(spec, $0) }
        if swtrace != c { mismatches.append("\(spec) of \"\(text)\": swtrace [\(swtrace)] C [\(c)]") }
      case 1:
        let byte = UInt8(0x20 + generator.below(0x5f))
        let spec = "%" + generator.flags("-") + generator.widthAndPrecision(precision: false) + "c"
        let swtrace = try swtraceFormat(spec, type: .integer(bytes: 1, signed: false), size: 1, bytes: [byte])
        let c = cFormat(spec, Int32(byte))
        if swtrace != c { mismatches.append("\(spec) of \(byte): swtrace [\(swtrace)] C [\(c)]") }
      default:
        let address = generator.chance(15) ? 0 : generator.random.next() >> UInt64(generator.below(60))
        let spec = "%" + generator.flags("-0+ ") + generator.widthAndPrecision() + "p"
        let bytes = (0..<8).map { UInt8(truncatingIfNeeded: address >> (8 * $0)) }
        let swtrace = try swtraceFormat(spec, type: .integer(bytes: 8, signed: false), size: 8, bytes: bytes)
        let c = cFormat(spec, Int(bitPattern: UInt(address)))
        if swtrace != c { mismatches.append("\(spec) of 0x\(String(address, radix: 16)): swtrace [\(swtrace)] C [\(c)]") }
      }
    }
    #expect(mismatches.isEmpty, "\(mismatches.count) differences, first: \(mismatches.prefix(20).joined(separator: "\n"))")
  }

  @Test("the alternate form of %o as C has it: one leading zero, also for zero at precision 0")
  func alternateOctal() throws {
    let one = RecordedInteger(bits: 1, width: 1, signed: false)
    let zero = RecordedInteger(bits: 0, width: 1, signed: false)
    for (format, value) in [("%#.5o", one), ("%#.0o", zero), ("%#o", zero), ("%#5.3o", RecordedInteger(bits: 8, width: 1, signed: false))] {
      let swtrace = try swtraceFormat(format, type: value.type, size: 1, bytes: value.bytes)
      #expect(swtrace == cFormat(format.replacingLast("o", with: "hho"), Int32(value.bits)), "\(format)")
    }
    #expect(try swtraceFormat("%#.5o", type: one.type, size: 1, bytes: one.bytes) == "00001")
    #expect(try swtraceFormat("%#.0o", type: zero.type, size: 1, bytes: zero.bytes) == "0")
  }

  @Test("the documented differences: unsigned stays unsigned under %d, %c escapes what is not printable")
  func documentedDifferences() throws {
    let big = RecordedInteger(bits: 0xFFFF_FFFF_FFFF_FFFE, width: 8, signed: false)
    #expect(try swtraceFormat("%d", type: big.type, size: 8, bytes: big.bytes) == "18446744073709551614")
    let u8 = RecordedInteger(bits: 200, width: 1, signed: false)
    // C's %hhd would print -56.
    #expect(try swtraceFormat("%d", type: u8.type, size: 1, bytes: u8.bytes) == "200")
    let s8 = RecordedInteger(bits: 0xff, width: 1, signed: true)
    #expect(try swtraceFormat("%x", type: s8.type, size: 1, bytes: s8.bytes) == "ff")
    for (byte, shown) in [(UInt8(0x1b), "\\x1b"), (0x00, "\\x00"), (0x7f, "\\x7f"), (0xe9, "\\xe9")] {
      #expect(try swtraceFormat("[%c]", type: .integer(bytes: 1, signed: false), size: 1, bytes: [byte]) == "[\(shown)]")
    }
  }
}

extension String {
  func replacingLast(_ character: Character, with replacement: String) -> String {
    guard let index = lastIndex(of: character) else { return self }
    return String(self[..<index]) + replacement + String(self[self.index(after: index)...])
  }
}
