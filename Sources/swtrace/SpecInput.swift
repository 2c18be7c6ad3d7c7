import FoundationEssentials
import Glibc
import SwtraceSyntax

/// Reads the spec from `-e` or a file, with a clear message for every way that can fail.
enum SpecInput {
  static let maximumSize = 4 << 20

  static func load(expression: String?, path: String?) -> Result<SourceFile, SpecInputError> {
    if let expression {
      return .success(SourceFile(name: "<spec>", text: expression))
    }
    guard let path else { return .failure(.missing) }
    var isDirectory = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      return .failure(.unreadable(path, "no such file"))
    }
    if isDirectory { return .failure(.unreadable(path, "it is a directory, not a spec file")) }
    guard let data = FileManager.default.contents(atPath: path) else {
      return .failure(.unreadable(path, "permission denied or unreadable"))
    }
    if data.count > maximumSize {
      return .failure(.unreadable(path, "it is \(data.count) bytes; specs are limited to \(maximumSize) bytes"))
    }
    guard let text = String(data: data, encoding: .utf8) else {
      return .failure(.unreadable(path, "it is not valid UTF-8 text"))
    }
    return .success(SourceFile(name: path, text: text))
  }
}

enum SpecInputError: Error, CustomStringConvertible {
  case missing
  case unreadable(String, String)

  var description: String {
    switch self {
    case .missing: "no spec given: pass one with -e 'SPEC' or as a FILE.spec argument"
    case .unreadable(let path, let why): "cannot read spec file '\(path)': \(why)"
    }
  }
}
