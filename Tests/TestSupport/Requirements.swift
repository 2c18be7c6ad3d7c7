public import Testing

extension Trait where Self == ConditionTrait {
  /// Runs the test only where `missing` finds nothing missing; otherwise the test shows as
  /// skipped with `what` it needs, and the exact reason `missing` gave is printed, so a test
  /// that cannot run here is never counted as one that passed.
  public static func requires(_ what: Comment, missing: @escaping @Sendable () -> String?) -> Self {
    .enabled(what) {
      guard let reason = missing() else { return true }
      print("skip: \(reason)")
      return false
    }
  }
}

/// Ends the running test as skipped, saying why: for what only the test itself finds out as it
/// goes (a tool it could not install, a binary a dropped user cannot start). Whatever is
/// known before a test starts is a trait (`requires(_:missing:)`), which also covers
/// parameterized tests as a whole.
public func skip(_ reason: String) throws -> Never {
  try Test.cancel(Comment(rawValue: reason))
}
