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
    if path == "-" { return standardInput() }
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

  /// `-` as the file: the spec is read from standard input, up to the same size limit.
  static func standardInput() -> Result<SourceFile, SpecInputError> {
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while data.count <= maximumSize {
      let count = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
      if count < 0 {
        let code = errno
        if code == EINTR { continue }
        return .failure(.unreadable("-", "standard input cannot be read: \(String(cString: strerror(code)))"))
      }
      if count == 0 { break }
      data += chunk[..<count]
    }
    if data.count > maximumSize {
      return .failure(.unreadable("-", "standard input holds more than \(maximumSize) bytes, the limit for a spec"))
    }
    guard let text = String(validating: data, as: UTF8.self) else {
      return .failure(.unreadable("-", "it is not valid UTF-8 text"))
    }
    return .success(SourceFile(name: "<stdin>", text: text))
  }
}

enum SpecInputError: Error, CustomStringConvertible {
  case missing
  case unreadable(String, String)

  var description: String {
    switch self {
    case .missing: "no spec given: pass one with -e 'SPEC' or as a FILE.spec argument"
    case .unreadable("-", let why): "cannot read the spec from standard input: \(why)"
    case .unreadable(let path, let why): "cannot read spec file '\(path)': \(why)"
    }
  }
}
