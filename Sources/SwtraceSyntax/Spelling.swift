/// How close two names are, for every "did you mean" note: a misspelt probe type in the
/// parser, and unknown fields, members, functions, maps and statements in Sema.
public enum Spelling {
  /// Optimal string alignment distance over the names' UTF-8 bytes: an insertion, a
  /// deletion, a substitution or a swap of two neighbours each cost one, so `tracepoitn` is
  /// one edit from `tracepoint` and `lne` one from `len`.
  public static func distance(_ a: String, _ b: String) -> Int {
    let a = Array(a.utf8)
    let b = Array(b.utf8)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    // Three rows of the table: the one before the previous is what a swap looks back to.
    var beforePrevious = [Int](repeating: 0, count: b.count + 1)
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
      current[0] = i
      for j in 1...b.count {
        let cost = a[i - 1] == b[j - 1] ? 0 : 1
        current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
        if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
          current[j] = min(current[j], beforePrevious[j - 2] + 1)
        }
      }
      (beforePrevious, previous, current) = (previous, current, beforePrevious)
    }
    return previous[b.count]
  }

  /// The candidate fewest edits from `name`, at most `limit`, the first of equally close ones.
  public static func closest(to name: String, among candidates: some Sequence<String>, limit: Int) -> String? {
    let length = name.utf8.count
    var best: (candidate: String, distance: Int)?
    for candidate in candidates where abs(candidate.utf8.count - length) <= limit {
      let distance = distance(name, candidate)
      if distance <= limit, distance < (best?.distance ?? Int.max) { best = (candidate, distance) }
    }
    return best?.candidate
  }
}
