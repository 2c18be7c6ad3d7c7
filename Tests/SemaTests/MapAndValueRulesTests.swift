import BTF
import Sema
import SwtraceSyntax
import Testing
import TestSupport

/// Issue 24's legal specs that Sema refused or typed wrongly: keyed reads printed, string keys
/// of different lengths, deletes with keys of the map's type, truth values in integer
/// variables, signed division folded as C divides.
@Suite struct MapAndValueRulesTests {
  func checked(_ text: String) throws -> CheckedSpec {
    let (spec, rendered) = try check(text)
    return try #require(spec, "\(rendered)")
  }

  func refusal(_ text: String) throws -> String {
    let (spec, rendered) = try check(text)
    #expect(spec == nil, "\(text) must be refused")
    return rendered
  }

  @Test func stringKeysOfAnyLengthShareOneKeyAsWideAsTheWidest() throws {
    let spec = try checked(
      #"skb:net_dev_queue { @a[comm] = count(); @a["eth0"] = count(); @a["a-much-longer-name"] = count() }"#)
    #expect(spec.maps.count == 1)
    // "a-much-longer-name" and its NUL: 19 bytes, more than comm's 16.
    #expect(spec.maps[0].keys.map(\.type) == [.string(capacity: 19)])
  }

  @Test func aDeleteAndAReadUseTheMapsKeyTypes() throws {
    let spec = try checked(#"skb:net_dev_queue { @a[comm] = count(); delete(@a["lo"]); @v[ifname] = len; print(@v["lo"]) }"#)
    #expect(spec.maps.map(\.keys.count) == [1, 1])
    let rendered = try refusal("skb:net_dev_queue { @a[comm] = count(); delete(@a[len]) }")
    #expect(rendered.contains("@a is keyed by [string]"), "\(rendered)")
  }

  @Test func aKeyedReadIsAValueToPrint() throws {
    let spec = try checked("skb:net_dev_queue { @m[len] = len; print(@m[3]) }")
    guard case .print(let values, _)? = spec.clauses.first?.actions.last, case .mapLookup = values.first?.value.kind else {
      Issue.record("print(@m[3]) must print the value stored under 3")
      return
    }
    // A whole map is still printed by swtrace only.
    let rendered = try refusal("skb:net_dev_queue { @m[len] = len; print(@m) }")
    #expect(rendered.contains("printing a whole map happens in swtrace"), "\(rendered)")
  }

  @Test func plainValueMapsKeepOneKindOfValue() throws {
    _ = try checked("skb:net_dev_queue { @v = 1; @v = (u8)len; @s = \"ab\"; @s = comm }")
    let rendered = try refusal("skb:net_dev_queue { @v = 1; @v = comm }")
    #expect(rendered.contains("@v was first assigned a u64, here a string"), "\(rendered)")
  }

  @Test func truthValuesAndIntegersMixInVariables() throws {
    _ = try checked("skb:net_dev_queue { $n = len; $n = len > 100; $b = len > 100; $b = mark; print($n, $b) }")
  }

  @Test(arguments: [
    ("(s64)-7 / (s64)2", UInt64(bitPattern: -3)), ("(s64)-7 % (s64)2", UInt64(bitPattern: -1)),
    ("7 / (s64)-2", UInt64(bitPattern: -3)), ("(s64)-7 % 3", UInt64(bitPattern: -1)),
    ("((s64)-9223372036854775807 - 1) / (s64)-1", UInt64(bitPattern: Int64.min)), ("(u64)7 / 2", 3),
  ])
  func signedDivisionFoldsAsCDivides(expression: String, expected: UInt64) throws {
    let spec = try checked("skb:net_dev_queue { print(\(expression)) }")
    guard case .print(let values, _)? = spec.clauses.first?.actions.first, case .integer(let folded) = values.first?.value.kind
    else {
      Issue.record("\(expression) must fold to a constant")
      return
    }
    #expect(folded == expected, "\(expression)")
  }

  @Test func constantsDecideValuesToo() throws {
    let spec = try checked("skb:net_dev_queue { print(len && false, mark || true, ip6.saddr in ::/0, saddr in 0.0.0.0/0) }")
    guard case .print(let values, _)? = spec.clauses.first?.actions.first else {
      Issue.record("expected a print")
      return
    }
    let constants: [UInt64?] = values.map { value in
      if case .integer(let folded) = value.value.kind { return folded }
      return nil
    }
    // A /0 prefix holds for every address, but the address is there only when the packet has
    // the header (issue 18): the test stays a value, true exactly when the header is present.
    #expect(constants == [0, 1, nil, nil])
  }
}
