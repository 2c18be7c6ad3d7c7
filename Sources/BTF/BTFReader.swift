internal import CLibBPF
import Glibc

/// Owns a libbpf `struct btf` and hands out its records as Swift values.
///
/// libbpf parses and validates the BTF; this type only reads it. Instances are immutable after
/// loading, so sharing them across tasks is safe. Internal to BTF: libbpf is how this module
/// reads BTF, not part of what it offers.
final class BTFHandle: @unchecked Sendable {
  private let btf: OpaquePointer

  private init(_ btf: OpaquePointer) { self.btf = btf }
  deinit { btf__free(btf) }

  /// The running kernel's BTF (`/sys/kernel/btf/vmlinux`).
  static func loadKernel() throws(BTFReadError) -> BTFHandle {
    // libbpf would print its own words on failure; swtrace words every failure itself.
    swt_silence_libbpf()
    if let btf = try mappedKernelBTF() { return BTFHandle(btf) }
    // libbpf's loader also knows where else vmlinux BTF may be on older kernels.
    guard let btf = btf__load_vmlinux_btf() else {
      throw BTFReadError("load kernel BTF", code: swt_errno())
    }
    return BTFHandle(btf)
  }

  /// The kernel's BTF parsed straight from a read-only mapping of /sys/kernel/btf/vmlinux,
  /// which kernels since 6.16 allow: libbpf copies the kernel's pages once, where its own
  /// loader reads the file a page per system call into a buffer that it then copies again
  /// (3.3 against 6.5 ms here). nil when the kernel refuses the mapping; out of memory (a
  /// limit on the address space) is an error of its own, which no other loader would avoid.
  private static func mappedKernelBTF() throws(BTFReadError) -> OpaquePointer? {
    let fd = open("/sys/kernel/btf/vmlinux", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var status = stat()
    guard fstat(fd, &status) == 0, status.st_size > 0, status.st_size < Int(UInt32.max) else { return nil }
    let size = Int(status.st_size)
    guard let mapping = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapping != MAP_FAILED else {
      if errno == ENOMEM { throw BTFReadError("map the kernel's BTF (\(size) bytes)", code: ENOMEM) }
      return nil
    }
    defer { munmap(mapping, size) }
    guard let btf = btf__new(mapping, UInt32(size)) else {
      if swt_errno() == ENOMEM { throw BTFReadError("parse the kernel's BTF (\(size) bytes)", code: ENOMEM) }
      return nil
    }
    return btf
  }

  /// BTF from a file: raw BTF (as in /sys/kernel/btf/vmlinux) or an ELF file with a .BTF section.
  static func load(path: String) throws(BTFReadError) -> BTFHandle {
    guard let btf = btf__parse(path, nil) else {
      throw BTFReadError("load BTF from \(path)", code: swt_errno())
    }
    return BTFHandle(btf)
  }

  /// BTF held in memory: raw BTF is parsed in place; an ELF file goes through an unlinked
  /// temporary file, since libbpf reads ELF files by name only.
  static func load(bytes: [UInt8], name: String) throws(BTFReadError) -> BTFHandle {
    if bytes.count >= 4, bytes[0] == 0x7f, bytes[1] == UInt8(ascii: "E"), bytes[2] == UInt8(ascii: "L"), bytes[3] == UInt8(ascii: "F") {
      var template = Array("/tmp/swtrace-btf-XXXXXX".utf8CString)
      let memory = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
      guard memory >= 0 else { throw BTFReadError("load BTF from \(name)", code: errno) }
      template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
      _ = fcntl(memory, F_SETFD, FD_CLOEXEC)
      defer { close(memory) }
      var offset = 0
      while offset < bytes.count {
        let written = bytes[offset...].withUnsafeBytes { write(memory, $0.baseAddress, $0.count) }
        if written < 0, errno == EINTR { continue }
        guard written > 0 else { throw BTFReadError("load BTF from \(name)", code: errno) }
        offset += written
      }
      return try load(path: "/proc/self/fd/\(memory)")
    }
    guard bytes.count < Int(UInt32.max),
      let btf = bytes.withUnsafeBytes({ btf__new($0.baseAddress, UInt32($0.count)) })
    else {
      throw BTFReadError("load BTF from \(name)", code: bytes.count < Int(UInt32.max) ? swt_errno() : EFBIG)
    }
    return BTFHandle(btf)
  }

  /// One past the largest type id; ids start at 1 (0 is void).
  var typeCount: UInt32 { btf__type_cnt(btf) }

  /// The kind of a record without decoding it.
  func kind(of id: UInt32) -> BTFKind {
    guard id != 0, let t = btf__type_by_id(btf, id) else { return .unknown }
    return BTFKind(rawValue: Int(swt_btf_kind(t))) ?? .unknown
  }

  /// The name of a record without decoding it ("" for anonymous ones).
  func name(of id: UInt32) -> String {
    guard id != 0, let t = btf__type_by_id(btf, id) else { return "" }
    return string(swt_btf_name_off(t))
  }

  /// A record's name without its first `count` bytes: the rest of a name whose prefix a scan
  /// has matched already ("" when the name is shorter).
  func name(of id: UInt32, droppingFirst count: Int) -> String {
    guard id != 0, let t = btf__type_by_id(btf, id), let cName = btf__name_by_offset(btf, swt_btf_name_off(t)),
      strnlen(cName, count) == count
    else { return "" }
    return String(cString: cName + count)
  }

  /// Whether a record's name starts with `prefix`, compared on bytes to keep whole-BTF scans cheap.
  func name(of id: UInt32, hasPrefix prefix: String) -> Bool {
    guard id != 0, let t = btf__type_by_id(btf, id) else { return false }
    return string(swt_btf_name_off(t), hasPrefix: prefix)
  }

  /// Whether a record's name is exactly `name`, compared on bytes without making a String.
  func name(of id: UInt32, equals name: String) -> Bool {
    guard id != 0, let t = btf__type_by_id(btf, id), let cName = btf__name_by_offset(btf, swt_btf_name_off(t))
    else { return name.isEmpty }
    var name = name
    return name.withUTF8 { bytes in
      // strncmp stops at the end of a shorter name; then the lengths must agree.
      guard let start = bytes.baseAddress else { return cName[0] == 0 }
      return start.withMemoryRebound(to: CChar.self, capacity: bytes.count) { strncmp(cName, $0, bytes.count) == 0 }
        && cName[bytes.count] == 0
    }
  }

  /// The one number a record carries besides its name: the referenced type of pointers,
  /// typedefs, qualifiers, type tags, functions and variables, the size of the others.
  /// Reading it decodes nothing else, which keeps walks along typedef chains cheap.
  func sizeOrType(of id: UInt32) -> UInt32 {
    guard id != 0, let t = btf__type_by_id(btf, id) else { return 0 }
    return swt_btf_size_or_type(t)
  }

  /// The parameter types of a FUNC_PROTO record without their names, as `type(_:)` gives
  /// them (a variadic marker left out); nil for other records.
  func parameterTypes(of id: UInt32) -> [UInt32]? {
    guard id != 0, let t = btf__type_by_id(btf, id), swt_btf_kind(t) == UInt32(BTFKind.functionPrototype.rawValue) else {
      return nil
    }
    var types = (0..<swt_btf_vlen(t)).map { swt_btf_param(t, $0)!.pointee.type }
    if types.last == 0 { types.removeLast() }
    return types
  }

  /// Whether a FUNC_PROTO record has a parameter whose type passes `test`, without decoding
  /// the prototype (a variadic marker is not a parameter).
  func hasParameter(of id: UInt32, where test: (UInt32) -> Bool) -> Bool {
    guard id != 0, let t = btf__type_by_id(btf, id), swt_btf_kind(t) == UInt32(BTFKind.functionPrototype.rawValue)
    else { return false }
    let count = swt_btf_vlen(t)
    return (0..<count).contains { index in
      let type = swt_btf_param(t, index)!.pointee.type
      return !(type == 0 && index == count - 1) && test(type)
    }
  }

  /// Whether an enum record has an enumerator whose name starts with `prefix`.
  func hasEnumerator(in id: UInt32, withPrefix prefix: String) -> Bool {
    guard id != 0, let t = btf__type_by_id(btf, id) else { return false }
    switch BTFKind(rawValue: Int(swt_btf_kind(t))) {
    case .enumeration:
      return (0..<swt_btf_vlen(t)).contains { string(swt_btf_enum(t, $0)!.pointee.name_off, hasPrefix: prefix) }
    case .enum64:
      return (0..<swt_btf_vlen(t)).contains { string(swt_btf_enum64(t, $0)!.pointee.name_off, hasPrefix: prefix) }
    default:
      return false
    }
  }

  /// Ids of the records of `kind` whose names start with `prefix`, per query, in id order.
  ///
  /// Reading every record's name means one random access into the string section per record,
  /// which dominates whole-BTF scans. Instead this finds the prefixes in the string section
  /// with one sequential search, then walks the record headers comparing name offsets only.
  func records(named queries: [(kind: BTFKind, prefix: String)]) -> [[UInt32]] {
    let length = stringSectionLength
    let offsets = queries.map { nameOffsets(withPrefix: $0.prefix, sectionLength: length) }
    var anyPrefix = OffsetSet(capacity: length)
    for offset in offsets.joined() { anyPrefix.insert(offset) }
    let kinds = queries.map { UInt32($0.kind.rawValue) }
    // Most records are of no kind asked for; one bit test skips them.
    let wantedKinds = kinds.reduce(UInt64(0)) { $0 | 1 << UInt64($1 & 63) }
    var result = [[UInt32]](repeating: [], count: queries.count)
    anyPrefix.withWords { anyPrefix in
      for id in 1..<max(1, typeCount) {
        guard let t = btf__type_by_id(btf, id) else { continue }
        let kind = swt_btf_kind(t)
        guard wantedKinds & (1 << UInt64(kind & 63)) != 0 else { continue }
        let offset = swt_btf_name_off(t)
        guard OffsetSet.contains(offset, in: anyPrefix) else { continue }
        for index in kinds.indices where kinds[index] == kind && offsets[index].contains(offset) {
          result[index].append(id)
        }
      }
    }
    return result
  }

  /// Ids of all records of one kind, in id order, found by reading record headers only.
  func records(ofKind kind: BTFKind) -> [UInt32] {
    let wanted = UInt32(kind.rawValue)
    var result: [UInt32] = []
    for id in 1..<max(1, typeCount) {
      if let t = btf__type_by_id(btf, id), swt_btf_kind(t) == wanted { result.append(id) }
    }
    return result
  }

  /// The first record of each distinct name among the records of `kind` that pass `include`,
  /// in id order. Names are hashed as bytes where libbpf keeps them, so no String is made for
  /// them, and equal names are told by their bytes, so it does not matter whether the string
  /// section holds each name once.
  func firstRecordOfEachName(ofKind kind: BTFKind, where include: (UInt32) -> Bool) -> [UInt32] {
    let candidates = records(ofKind: kind).filter(include)
    var capacity = 16
    while capacity < candidates.count * 2 { capacity *= 2 }
    // Open addressing: slot -> id (0 for empty) and the name's hash, compared before the bytes.
    var slots = [UInt32](repeating: 0, count: capacity)
    var hashes = [UInt64](repeating: 0, count: capacity)
    var result: [UInt32] = []
    result.reserveCapacity(candidates.count)
    for id in candidates {
      guard let t = btf__type_by_id(btf, id), let name = btf__name_by_offset(btf, swt_btf_name_off(t)) else { continue }
      let hash = Self.hash(name)
      var slot = Int(truncatingIfNeeded: hash) & (capacity - 1)
      while true {
        let other = slots[slot]
        if other == 0 {
          slots[slot] = id
          hashes[slot] = hash
          result.append(id)
          break
        }
        if hashes[slot] == hash, let otherType = btf__type_by_id(btf, other),
          let otherName = btf__name_by_offset(btf, swt_btf_name_off(otherType)), strcmp(name, otherName) == 0
        {
          break
        }
        slot = (slot + 1) & (capacity - 1)
      }
    }
    return result
  }

  /// FNV-1a over a C string's bytes.
  private static func hash(_ name: UnsafePointer<CChar>) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    var byte = name
    while byte.pointee != 0 {
      hash = (hash ^ UInt64(UInt8(bitPattern: byte.pointee))) &* 0x100_0000_01b3
      byte += 1
    }
    return hash
  }

  /// Offsets of the strings that start with `prefix`.
  private func nameOffsets(withPrefix prefix: String, sectionLength length: Int) -> Set<UInt32> {
    var offsets = Set<UInt32>()
    guard !prefix.isEmpty, let start = btf__str_by_offset(btf, 0) else { return offsets }
    var needle = prefix
    needle.withUTF8 { needle in
      var position = 0
      while position < length,
        let found = memmem(start + position, length - position, needle.baseAddress!, needle.count)
      {
        let offset = start.distance(to: found.assumingMemoryBound(to: CChar.self))
        // Only a match at the start of a string is a name with this prefix.
        if offset == 0 || start[offset - 1] == 0 { offsets.insert(UInt32(offset)) }
        position = offset + 1
      }
    }
    return offsets
  }

  /// Bytes in the string section: libbpf hands out no size, but refuses offsets past the end,
  /// so the first refused offset is found by doubling and then halving.
  private var stringSectionLength: Int {
    var known = 0
    var probe = 1
    while btf__str_by_offset(btf, UInt32(probe)) != nil {
      known = probe
      guard probe < Int(UInt32.max) / 2 else { return probe }
      probe *= 2
    }
    // Valid at `known`, refused at `probe`.
    while probe - known > 1 {
      let middle = (known + probe) / 2
      if btf__str_by_offset(btf, UInt32(middle)) != nil { known = middle } else { probe = middle }
    }
    return probe
  }

  /// The id of the record with this name and kind, if any.
  func find(_ name: String, kind: BTFKind) -> UInt32? {
    let id = btf__find_by_name_kind(btf, name, UInt32(kind.rawValue))
    return id > 0 ? UInt32(id) : nil
  }

  /// Size in bytes of a type, following typedefs and qualifiers.
  func resolvedSize(of id: UInt32) -> Int? {
    let size = btf__resolve_size(btf, id)
    return size >= 0 ? Int(size) : nil
  }

  func type(_ id: UInt32) -> BTFType {
    guard id != 0 else { return .void }
    guard let t = btf__type_by_id(btf, id) else { return .unknown(kind: -1) }
    let name = string(swt_btf_name_off(t))
    let vlen = swt_btf_vlen(t)
    let sizeOrType = swt_btf_size_or_type(t)
    let kind = BTFKind(rawValue: Int(swt_btf_kind(t))) ?? .unknown
    switch kind {
    case .integer:
      let encoding = swt_btf_int_encoding(t)
      return .integer(
        name: name, size: Int(sizeOrType), isSigned: encoding & UInt32(BTF_INT_SIGNED) != 0,
        isBool: encoding & UInt32(BTF_INT_BOOL) != 0, isChar: encoding & UInt32(BTF_INT_CHAR) != 0,
        bits: Int(swt_btf_int_bits(t)))
    case .pointer: return .pointer(to: sizeOrType)
    case .array:
      let array = swt_btf_array(t)!.pointee
      return .array(element: array.type, count: Int(array.nelems))
    case .structure, .union:
      let members = (0..<vlen).map { i in
        let member = swt_btf_member(t, i)!.pointee
        return BTFType.Member(
          name: string(member.name_off), type: member.type,
          bitOffset: swt_btf_member_bit_offset(t, i), bitfieldSize: swt_btf_member_bitfield_size(t, i))
      }
      return kind == .structure
        ? .structure(name: name, size: Int(sizeOrType), members: members)
        : .union(name: name, size: Int(sizeOrType), members: members)
    case .enumeration:
      let signed = swt_btf_kflag(t) != 0
      let values = (0..<vlen).map { i in
        let e = swt_btf_enum(t, i)!.pointee
        return BTFType.Enumerator(
          name: string(e.name_off), value: signed ? Int64(e.val) : Int64(UInt32(bitPattern: e.val)))
      }
      return .enumeration(name: name, size: Int(sizeOrType), isSigned: signed, enumerators: values)
    case .enum64:
      let values = (0..<vlen).map { i in
        let e = swt_btf_enum64(t, i)!
        return BTFType.Enumerator(
          name: string(e.pointee.name_off), value: Int64(bitPattern: swt_btf_enum64_value(e)))
      }
      return .enumeration(name: name, size: Int(sizeOrType), isSigned: swt_btf_kflag(t) != 0, enumerators: values)
    case .forward: return .forward(name: name, isUnion: swt_btf_kflag(t) != 0)
    case .typedef: return .typedef(name: name, type: sizeOrType)
    case .volatile: return .volatile(sizeOrType)
    case .const: return .const(sizeOrType)
    case .restrict: return .restrict(sizeOrType)
    case .typeTag: return .typeTag(name: name, type: sizeOrType)
    case .function: return .function(name: name, prototype: sizeOrType, linkage: Int(vlen))
    case .functionPrototype:
      var parameters = (0..<vlen).map { i in
        let p = swt_btf_param(t, i)!.pointee
        return BTFType.Parameter(name: string(p.name_off), type: p.type)
      }
      // A trailing parameter of type 0 marks a variadic function.
      let variadic = parameters.last.map { $0.type == 0 } ?? false
      if variadic { parameters.removeLast() }
      return .functionPrototype(returnType: sizeOrType, parameters: parameters, isVariadic: variadic)
    case .variable: return .variable(name: name, type: sizeOrType)
    case .dataSection: return .dataSection(name: name, size: Int(sizeOrType))
    case .float: return .float(name: name, size: Int(sizeOrType))
    case .declarationTag: return .declarationTag(name: name, type: sizeOrType)
    default: return .unknown(kind: Int(swt_btf_kind(t)))
    }
  }

  private func string(_ offset: UInt32) -> String {
    guard let s = btf__name_by_offset(btf, offset) else { return "" }
    return String(cString: s)
  }

  private func string(_ offset: UInt32, hasPrefix prefix: String) -> Bool {
    guard let cName = btf__name_by_offset(btf, offset) else { return false }
    var prefix = prefix
    // strncmp, unlike memcmp, stops at the end of a name shorter than the prefix.
    return prefix.withUTF8 { bytes in
      guard !bytes.isEmpty else { return true }
      return bytes.withMemoryRebound(to: CChar.self) { strncmp(cName, $0.baseAddress!, $0.count) == 0 }
    }
  }
}

/// String offsets as one bit each: asked once per record of a whole-BTF scan, where hashing
/// into a Set would cost more than the rest of the scan.
private struct OffsetSet {
  private var words: [UInt64]

  init(capacity: Int) { words = [UInt64](repeating: 0, count: capacity / 64 + 1) }

  mutating func insert(_ offset: UInt32) {
    words[Int(offset) / 64] |= 1 << (UInt64(offset) % 64)
  }

  /// The words as a buffer, for loops that should not retain the array on every test.
  func withWords<T>(_ body: (UnsafeBufferPointer<UInt64>) -> T) -> T { words.withUnsafeBufferPointer(body) }

  static func contains(_ offset: UInt32, in words: UnsafeBufferPointer<UInt64>) -> Bool {
    let word = Int(offset) / 64
    return word < words.count && words[word] & (1 << (UInt64(offset) % 64)) != 0
  }
}
