import Glibc

/// The id of a BTF record; 0 is void.
public typealias BTFTypeID = UInt32

/// One BTF type record decoded into Swift values. Ids refer to other records of the same BTF.
/// BTF's own model of a type: nothing of libbpf shows through it.
public enum BTFType: Hashable, Sendable {
  public struct Member: Hashable, Sendable {
    public var name: String
    public var type: BTFTypeID
    public var bitOffset: UInt32
    /// Non-zero for bitfields.
    public var bitfieldSize: UInt32
  }
  public struct Parameter: Hashable, Sendable {
    public var name: String
    public var type: BTFTypeID
  }
  public struct Enumerator: Hashable, Sendable {
    public var name: String
    public var value: Int64
  }

  case void
  case integer(name: String, size: Int, isSigned: Bool, isBool: Bool, isChar: Bool, bits: Int)
  case pointer(to: BTFTypeID)
  case array(element: BTFTypeID, count: Int)
  case structure(name: String, size: Int, members: [Member])
  case union(name: String, size: Int, members: [Member])
  case enumeration(name: String, size: Int, isSigned: Bool, enumerators: [Enumerator])
  case forward(name: String, isUnion: Bool)
  case typedef(name: String, type: BTFTypeID)
  case volatile(BTFTypeID)
  case const(BTFTypeID)
  case restrict(BTFTypeID)
  case typeTag(name: String, type: BTFTypeID)
  case function(name: String, prototype: BTFTypeID, linkage: Int)
  case functionPrototype(returnType: BTFTypeID, parameters: [Parameter], isVariadic: Bool)
  case variable(name: String, type: BTFTypeID)
  case dataSection(name: String, size: Int)
  case float(name: String, size: Int)
  case declarationTag(name: String, type: BTFTypeID)
  case unknown(kind: Int)
}

/// Kind numbers of BTF records, for scans that should not decode every record.
public enum BTFKind: Int, Sendable {
  case unknown = 0, integer, pointer, array, structure, union, enumeration, forward, typedef
  case volatile, const, restrict, function, functionPrototype, variable, dataSection, float
  case declarationTag, typeTag, enum64
}

/// A failed read of BTF, with the errno the system or libbpf gave.
public struct BTFReadError: Error, Sendable, Hashable, CustomStringConvertible {
  public var operation: String
  public var code: Int32

  init(_ operation: String, code: Int32) {
    self.operation = operation
    self.code = code
  }

  public var description: String {
    "\(operation): \(String(cString: strerror(code))) (errno \(code))"
  }
}
