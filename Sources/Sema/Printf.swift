import SwtraceSyntax

/// `printf("format", values...)`: the format is checked against the values' types here,
/// the values travel in the event record like `print`'s, and swtrace formats them.
extension ClauseContext {
  mutating func printf(_ arguments: [Expr], range: SourceRange) -> Action? {
    guard let formatExpression = arguments.first, case .string(let text) = formatExpression.kind else {
      diagnostics.append(
        Diagnostic(
          "printf-needs-format", "printf() takes a format string literal first", at: arguments.first?.range ?? range,
          notes: [.init(.help, "for example: printf(\"%s: %d bytes\\n\", ifname, len)")]))
      return nil
    }
    let (parsed, problems) = FormatString.parse(
      text, literal: formatExpression.range, spelling: sourceText(formatExpression.range))
    diagnostics += problems
    let argumentExpressions = Array(arguments.dropFirst())
    var values: [PrintedValue] = []
    for argument in argumentExpressions {
      guard let typed = value(argument) else { continue }
      values.append(PrintedValue(label: sourceText(argument.range), value: typed))
    }
    guard let format = parsed, values.count == argumentExpressions.count else { return nil }
    let conversions = format.conversions
    if conversions.count > values.count {
      let missing = conversions[values.count]
      diagnostics.append(
        Diagnostic(
          "printf-missing-argument",
          "'\(missing.spelling)' has no value to print: the format has \(Self.count(conversions.count, "conversion")) but \(Self.count(values.count, "value")) follow\(values.count == 1 ? "s" : "") it",
          at: missing.range, notes: [.init(.help, "add a value after the format, or write %% for a literal %")]))
      return nil
    }
    if values.count > conversions.count {
      let extra = argumentExpressions[conversions.count...]
      diagnostics.append(
        Diagnostic(
          "printf-extra-argument",
          "the format has \(Self.count(conversions.count, "conversion")), so \(extra.count == 1 ? "this value is" : "these values are") never printed",
          at: SourceRange(extra.first!.range.start, extra.last!.range.end),
          notes: [.init(.note, "the format is here", at: formatExpression.range)]))
      return nil
    }
    var matches = true
    for (conversion, value) in zip(conversions, values) {
      guard let needed = conversion.accepts(value.value.type) else { continue }
      diagnostics.append(
        Diagnostic(
          "printf-argument-type",
          "'\(conversion.spelling)' prints \(needed), but '\(value.label)' is \(Self.article(value.value.type))",
          at: value.value.range,
          notes: [
            .init(.note, "the conversion is here", at: conversion.range),
            .init(.help, "%s prints any value the way print() does"),
          ]))
      matches = false
    }
    return matches ? .printf(format, values, range: range) : nil
  }

  static func count(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }
}
