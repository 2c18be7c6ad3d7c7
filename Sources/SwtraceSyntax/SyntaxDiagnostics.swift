/// The stable identifiers of every diagnostic the lexer and parser produce.
///
/// Tests match on these rather than on wording; `DiagnosticID.syntaxIDs` lists them all so a
/// test can check that each one has a golden file.
extension DiagnosticID {
  // Lexical errors.
  public static let unterminatedComment: DiagnosticID = "unterminated-comment"
  public static let unterminatedString: DiagnosticID = "unterminated-string"
  public static let invalidEscape: DiagnosticID = "invalid-escape"
  public static let invalidUTF8String: DiagnosticID = "invalid-utf8-string"
  public static let invalidIntegerLiteral: DiagnosticID = "invalid-integer-literal"
  public static let integerOverflow: DiagnosticID = "integer-overflow"
  public static let invalidIPv4Address: DiagnosticID = "invalid-ipv4-address"
  public static let invalidIPv6Address: DiagnosticID = "invalid-ipv6-address"
  public static let cidrPrefixTooLong: DiagnosticID = "cidr-prefix-too-long"
  public static let unexpectedCharacter: DiagnosticID = "unexpected-character"
  public static let expectedVariableName: DiagnosticID = "expected-variable-name"

  // Probes and clauses.
  public static let emptySpec: DiagnosticID = "empty-spec"
  public static let expectedProbe: DiagnosticID = "expected-probe"
  public static let unknownProbeType: DiagnosticID = "unknown-probe-type"
  public static let malformedProbe: DiagnosticID = "malformed-probe"
  public static let invalidGlob: DiagnosticID = "invalid-glob"
  public static let invalidInterval: DiagnosticID = "invalid-interval"
  public static let zeroInterval: DiagnosticID = "zero-interval"
  public static let expectedBlock: DiagnosticID = "expected-block"
  public static let unclosedFilter: DiagnosticID = "unclosed-filter"
  public static let unparenthesizedDivisionInFilter: DiagnosticID =
    "unparenthesized-division-in-filter"

  // Blocks and statements.
  public static let unclosedBlock: DiagnosticID = "unclosed-block"
  public static let unparenthesizedGreaterInAngleBlock: DiagnosticID =
    "unparenthesized-greater-in-angle-block"
  public static let unparenthesizedShiftInAngleBlock: DiagnosticID =
    "unparenthesized-shift-in-angle-block"
  public static let expectedStatementSeparator: DiagnosticID = "expected-statement-separator"
  public static let invalidAssignmentTarget: DiagnosticID = "invalid-assignment-target"
  public static let misplacedElse: DiagnosticID = "misplaced-else"
  public static let unexpectedToken: DiagnosticID = "unexpected-token"

  // Expressions.
  public static let expectedExpression: DiagnosticID = "expected-expression"
  public static let expectedToken: DiagnosticID = "expected-token"
  public static let expectedMemberName: DiagnosticID = "expected-member-name"
  public static let emptyMapKey: DiagnosticID = "empty-map-key"
  public static let malformedCast: DiagnosticID = "malformed-cast"
  public static let nestingTooDeep: DiagnosticID = "nesting-too-deep"

  /// Every identifier `Parser.parse` can report.
  public static let syntaxIDs: [DiagnosticID] = [
    .unterminatedComment, .unterminatedString, .invalidEscape, .invalidUTF8String,
    .invalidIntegerLiteral, .integerOverflow, .invalidIPv4Address, .invalidIPv6Address,
    .cidrPrefixTooLong, .unexpectedCharacter, .expectedVariableName,
    .emptySpec, .expectedProbe, .unknownProbeType, .malformedProbe, .invalidGlob, .invalidInterval,
    .zeroInterval, .expectedBlock, .unclosedFilter, .unparenthesizedDivisionInFilter,
    .unclosedBlock, .unparenthesizedGreaterInAngleBlock, .unparenthesizedShiftInAngleBlock,
    .expectedStatementSeparator, .invalidAssignmentTarget, .misplacedElse, .unexpectedToken,
    .expectedExpression, .expectedToken, .expectedMemberName, .emptyMapKey, .malformedCast,
    .nestingTooDeep,
  ]
}
