import Glibc
import Output
import Runtime
import SwtraceSyntax

/// Reads the spec from `-e`, a file or standard input, with a clear message for every way
/// that can fail. The size is bounded before reading: a regular file by its size, a stream
/// (`-`, a FIFO, `/dev/stdin`, `<(...)`) by what arrives, and a stream that stalls is given up
/// on (see `WholeFile`).
enum SpecInput {
  static let maximumSize = 4 << 20

  static func load(expression: String?, path: String?) -> Result<SourceFile, SpecInputError> {
    if let expression {
      return .success(SourceFile(name: "<spec>", text: expression))
    }
    guard let path else { return .failure(.missing) }
    let read: Result<[UInt8], WholeFile.Failure>
    if path == "-" {
      if StandardStreams.wasClosed(0) { return .failure(.unreadable(path, "standard input is closed")) }
      read = WholeFile.read(descriptor: 0, limit: maximumSize)
    } else {
      read = WholeFile.read(path, limit: maximumSize)
    }
    switch read {
    case .failure(let failure):
      return .failure(.unreadable(path, failure.reason))
    case .success(let bytes):
      guard let text = String(validating: bytes, as: UTF8.self) else {
        return .failure(.unreadable(path, "it is not valid UTF-8 text"))
      }
      return .success(SourceFile(name: path == "-" ? "<stdin>" : path, text: text))
    }
  }
}

extension SpecInput {
  /// `load`, for a command that cannot go on without the spec: a failure is said in one
  /// sentence and ends swtrace with the spec-error status.
  static func loadOrExit(expression: String?, path: String?) throws -> SourceFile {
    switch load(expression: expression, path: path) {
    case .success(let source): return source
    case .failure(let error):
      Console.error(error.description)
      throw ExitStatus.specError
    }
  }
}

enum SpecInputError: Error, CustomStringConvertible {
  case missing
  case unreadable(String, String)

  var description: String {
    switch self {
    case .missing: "no spec given: pass one with -e 'SPEC' or as a FILE.spec argument"
    case .unreadable("-", let why): "cannot read the spec from standard input: \(why)"
    case .unreadable(let path, let why): "cannot read spec file '\(TerminalText.escaped(path))': \(why)"
    }
  }
}
