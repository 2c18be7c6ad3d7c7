import Testing
import TestSupport

@testable import SwtraceSyntax

private func format(_ text: String) -> String {
  let (result, file) = parse(text)
  return SpecFormatter.format(result.spec, source: file)
}

@Suite struct FormatterTests {
  @Test(arguments: Examples.all.indices)
  func roundTrip(index: Int) {
    let text = Examples.all[index]
    let (original, file) = parse(text)
    #expect(original.diagnostics.isEmpty, "\(render(original, file))")
    let once = SpecFormatter.format(original.spec, source: file)
    let (reparsed, reparsedFile) = parse(once)
    #expect(reparsed.diagnostics.isEmpty, "\(once)\n\(render(reparsed, reparsedFile))")
    #expect(StripRanges.spec(reparsed.spec) == StripRanges.spec(original.spec), "\(once)")
    let twice = SpecFormatter.format(reparsed.spec, source: reparsedFile)
    #expect(twice == once)
    // Without the source the layout differs only in integer spelling and the header.
    let plain = SpecFormatter.format(original.spec)
    #expect(StripRanges.spec(parse(plain).0.spec) == StripRanges.spec(original.spec), "\(plain)")
  }

  @Test func referenceExamplesRoundTrip() throws {
    for example in try referenceExamples() {
      let (original, file) = parse(example.text)
      let once = SpecFormatter.format(original.spec, source: file)
      let (reparsed, reparsedFile) = parse(once)
      #expect(reparsed.diagnostics.isEmpty, "\(once)")
      #expect(
        StripRanges.spec(reparsed.spec) == StripRanges.spec(original.spec), "\(example.text)\n\(once)")
      #expect(SpecFormatter.format(reparsed.spec, source: reparsedFile) == once)
    }
  }

  @Test func indexingAKeylessMap() {
    let text = "skb:* { $x = (@m)[0] + @m[0] }"
    let formatted = format(text)
    #expect(formatted == "skb:* {\n  $x = (@m)[0] + @m[0]\n}\n")
    #expect(StripRanges.spec(parse(formatted).0.spec) == StripRanges.spec(parse(text).0.spec))
  }

  @Test func missionOneLiner() {
    #expect(
      format("skb:*   /mark==0xdead/<print(len,gso_type)>")
        == "skb:* /mark == 0xdead/ < print(len, gso_type) >\n")
    #expect(
      SpecFormatter.format(parse("skb:* /mark==0xdead/ < print(len) >").0.spec)
        == "skb:* /mark == 57005/ < print(len) >\n")
  }

  @Test func layout() {
    let text = """
      #!/usr/bin/env swtrace
      // header line one

      /* header block */
      kprobe:a,kprobe:b /pid!=0/{ $x=1; if(x){ print(a) } else if (y) { print(b) } else { exit() } }
      // dropped comment
      skb:* < @[dev]=count() ; print(@) >
      interval:60000ms<print(1)>
      """
    let expected = """
      #!/usr/bin/env swtrace
      // header line one

      /* header block */

      kprobe:a, kprobe:b /pid != 0/ {
        $x = 1
        if (x) {
          print(a)
        } else if (y) {
          print(b)
        } else {
          exit()
        }
      }

      skb:* <
        @[dev] = count()
        print(@)
      >

      interval:1m < print(1) >

      """
    #expect(format(text) == expected)
    #expect(format(expected) == expected)
  }

  @Test func requiredParentheses() {
    // `>` directly inside `< >` and `/` directly inside a filter need parentheses; elsewhere not.
    #expect(
      format("skb:* /(len / 2) > 1/ < $x = (a > b) >") == "skb:* /(len / 2) > 1/ < $x = (a > b) >\n"
    )
    #expect(format("skb:* < $x = a == (b >= c) >") == "skb:* < $x = a == (b >= c) >\n")
    #expect(format("skb:* < $x = (a >> 1) + 2 >") == "skb:* < $x = (a >> 1) + 2 >\n")
    #expect(
      format("skb:* < print((a > b), @m[(a > b)]) >") == "skb:* < print(a > b, @m[a > b]) >\n")
    #expect(format("skb:* { $x = (a > b) }") == "skb:* {\n  $x = a > b\n}\n")
    #expect(
      format("skb:* { $x = (a + b) * (c - (d - e)) - (f - g) }")
        == "skb:* {\n  $x = (a + b) * (c - (d - e)) - (f - g)\n}\n")
    #expect(
      format("skb:* { $x = -(a + b) + (-c).d + (u32)(a + b) }")
        == "skb:* {\n  $x = -(a + b) + (-c).d + (u32)(a + b)\n}\n")
    #expect(format("skb:* { $x = ((a)) }") == "skb:* {\n  $x = a\n}\n")
  }

  @Test func literalsAndProbes() {
    #expect(
      format("tracepoint:net:x, fentry:f, fexit:f, kretprobe:f, BEGIN, END, interval:1500us { }")
        == "tracepoint:net:x, fentry:f, fexit:f, kretprobe:f, BEGIN, END, interval:1500us {}\n")
    #expect(
      format(#"skb:* < $s = "a\x01\t\"é" >"#) == #"skb:* < $s = "a\x01\t\"é" >"# + "\n")
    #expect(format("skb:* < $a = 2001:DB8:0:0:0:0:0:1/64 >") == "skb:* < $a = 2001:db8::1/64 >\n")
    #expect(format("skb:* < $a = 1_000 + 0b11 >") == "skb:* < $a = 1_000 + 0b11 >\n")
    #expect(format("skb:* < >") == "skb:* < >\n")
    #expect(SpecFormatter.format(Spec(clauses: [])) == "")
  }

  @Test func headerWithoutComments() {
    #expect(format("\u{FEFF}\n\nskb:* < print(len) >") == "skb:* < print(len) >\n")
    #expect(
      format("#!/usr/bin/env swtrace\nskb:* < print(len) >")
        == "#!/usr/bin/env swtrace\n\nskb:* < print(len) >\n")
  }

  @Test func intervalUnits() {
    #expect(format("interval:1000000000ns {}") == "interval:1s {}\n")
    #expect(format("interval:1001ns {}") == "interval:1001ns {}\n")
    #expect(format("interval:2000us {}") == "interval:2ms {}\n")
  }

  @Test func elseBlockHoldingAnIfKeepsItsStyle() {
    let text = "skb:* { if (a) { x() } else { if (b) < y() > } }"
    let (result, _) = parse(text)
    let formatted = format(text)
    #expect(
      StripRanges.spec(parse(formatted).0.spec) == StripRanges.spec(result.spec), "\(formatted)")
  }
}
