import BPF
import BTF
import CodeGen
import Output
import Sema
import SwtraceSyntax
import Testing
import TestSupport

/// A value's width and signedness are decided once, by Sema, and every later stage reads them
/// from its type. Before, the checker, the constant folder and the code generator treated
/// every enum as unsigned while printf treated every enum as signed, so a signed enum holding
/// -1 printed as -1 but was not less than 0.
///
/// The enum is the kernel's `netns_bpf_attach_type`, which the fixture kernel's BTF (as
/// `bpftool btf dump file` shows it) declares `encoding=SIGNED size=4` with
/// `'NETNS_BPF_INVALID' val=-1`; `skb_drop_reason` is an unsigned 4-byte enum.
@Suite struct SignednessFromTheType {
  static let signedEnum = "enum netns_bpf_attach_type"

  @Test func anEnumCarriesItsWidthAndSignednessFromBTF() throws {
    let spec = try checkAgainstFixture("skb:net_dev_queue { print((\(Self.signedEnum))mark, (enum skb_drop_reason)mark) }")
    guard case .print(let values, _) = spec.clauses[0].actions[0] else {
      Issue.record("expected a print")
      return
    }
    #expect(values[0].value.type.integerRepresentation == IntegerRepresentation(bytes: 4, isSigned: true))
    #expect(values[1].value.type.integerRepresentation == IntegerRepresentation(bytes: 4, isSigned: false))
    // The cast converts the u32 mark to the enum's width and signedness, as (s32) would.
    guard case .convert(_, 4, true) = values[0].value.kind else {
      Issue.record("the cast to a signed enum must sign-extend: \(values[0].value.kind)")
      return
    }
  }

  @Test(arguments: [
    ("(enum netns_bpf_attach_type)0xffffffff < 0", UInt64(1)),
    ("(enum netns_bpf_attach_type)0xffffffff == -1", 1),
    ("(enum skb_drop_reason)0xffffffff < 0", 0),
    ("(enum skb_drop_reason)0xffffffff == 4294967295", 1),
  ] as [(String, UInt64)])
  func comparisonsOfConstantsFollowTheEnumsSignedness(condition: String, expected: UInt64) throws {
    let spec = try checkAgainstFixture("skb:net_dev_queue /\(condition)/ { print(len) }")
    guard case .integer(let folded)? = spec.clauses[0].filter?.kind else {
      Issue.record("\(condition) must fold to a constant: \(String(describing: spec.clauses[0].filter))")
      return
    }
    #expect(folded == expected, "\(condition)")
  }

  /// Comparison, print and printf of the same signed enum value agree: the program compares a
  /// sign-extended register (`s<`), and the decoder and printf read -1 and its name.
  @Test func aSignedEnumComparesAndPrintsAsTheSameNumber() throws {
    let cast = "(\(Self.signedEnum))mark"
    let (compiled, _) = try compileAgainstFixture(
      #"skb:net_dev_queue /\#(cast) < 0/ { print(\#(cast)); printf("%d %s %u %x\n", \#(cast), \#(cast), \#(cast), \#(cast)) }"#)
    let program = try #require(compiled.programs.first?.program)
    #expect(
      program.instructions.contains { if case .jumpIf(.sge, _, .immediate(0), _) = $0 { true } else { false } },
      "the filter `< 0` must be a signed comparison (its negation, s>= 0, skips the block)")
    #expect(
      program.instructions.contains { if case .alu64(.arsh, _, .immediate(32)) = $0 { true } else { false } },
      "the u32 mark must be sign-extended from 32 bits")

    let decoder = EventDecoder(compiled: compiled)
    for layout in compiled.layouts {
      // The record the program writes for a mark of 0xffffffff: the header, then the enum
      // value as the register holds it, in each field's own width.
      var record = [UInt8](repeating: 0, count: layout.size)
      record.replaceSubrange(EventHeader.layoutOffset..<EventHeader.layoutOffset + 4, with: withUnsafeBytes(of: layout.id.littleEndian, Array.init))
      for field in layout.fields {
        record.replaceSubrange(field.offset..<field.offset + field.size, with: [UInt8](repeating: 0xff, count: field.size))
      }
      let event = try #require(record.withUnsafeBytes { decoder.decode($0) })
      if layout.format == nil {
        #expect(event.values.map(\.value) == [.name("NETNS_BPF_INVALID")])
      } else {
        // %u and %x print the enum's own 32 bits, as C's printf prints an int.
        #expect(layout.fields.allSatisfy { $0.size == 4 })
        #expect(event.text == "-1 NETNS_BPF_INVALID 4294967295 ffffffff\n")
      }
    }
  }

  /// The same bytes read as an unsigned enum are a large number, not a name of the signed one.
  @Test func anUnsignedEnumDecodesZeroExtended() throws {
    let spec = try checkAgainstFixture("skb:net_dev_queue { print((enum skb_drop_reason)mark) }")
    guard case .print(let values, _) = spec.clauses[0].actions[0] else {
      Issue.record("expected a print")
      return
    }
    let decoded = ValueDecoder.decode(type: values[0].value.type, size: 4, probeNames: [], bytes: [0xff, 0xff, 0xff, 0xff])
    #expect(decoded == .name("4294967295"))
  }
}
