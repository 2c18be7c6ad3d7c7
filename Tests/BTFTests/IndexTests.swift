@testable import BTF
import Testing
import TestSupport

/// The shortcuts that keep loading and resolving cheap (the string-section name index, reading
/// records without decoding them, attach points filtered before they are described) must give
/// what decoding every record gives. Each test compares with a plain scan written here.

/// The running kernel and every fixture kernel.
private let sources = ["running"] + Fixtures.kernelReleases

private func load(_ source: String) throws -> KernelTypes {
  source == "running" ? try KernelTypes.loadRunningKernel() : try KernelTypes.load(path: try Fixtures.btfPath(source))
}

/// Ids of records of `kind` named with `prefix`, by decoding every record's name.
private func scan(_ handle: BTFHandle, kind: BTFKind, prefix: String) -> [UInt32] {
  (1..<handle.typeCount).filter { handle.kind(of: $0) == kind && handle.name(of: $0).hasPrefix(prefix) }
}

@Suite struct NameIndex {
  @Test(arguments: sources)
  func findsWhatAScanOfEveryNameFinds(source: String) throws {
    let handle = try load(source).handle
    let queries: [(kind: BTFKind, prefix: String)] = [
      (.typedef, "btf_trace_"), (.function, "__bpf_trace_"),
      // Also inside other names ("btf_trace_..."), which must not count.
      (.function, "trace_"),
      (.structure, "sk_buf"),
      (.function, "no_such_prefix_in_any_kernel_"),
    ]
    let found = handle.records(named: queries)
    for (query, ids) in zip(queries, found) {
      #expect(ids == scan(handle, kind: query.kind, prefix: query.prefix), "\(query) in \(source)")
    }
    #expect(found[0].count > 500)
    #expect(found[4].isEmpty)
    #expect(handle.records(ofKind: .function) == (1..<handle.typeCount).filter { handle.kind(of: $0) == .function })
  }

  @Test func comparesNamesOnBytes() throws {
    let types = try KernelTypes.loadRunningKernel()
    let skb = try #require(types.structure("sk_buff"))
    #expect(types.handle.name(of: skb, equals: "sk_buff"))
    #expect(!types.handle.name(of: skb, equals: "sk_buf"))
    #expect(!types.handle.name(of: skb, equals: "sk_buff_head"))
    #expect(!types.handle.name(of: skb, equals: ""))
    #expect(types.handle.name(of: skb, hasPrefix: "sk_"))
    #expect(types.handle.name(of: skb, hasPrefix: ""))
    #expect(!types.handle.name(of: skb, hasPrefix: "sk_buff_"))
    #expect(types.handle.name(of: skb, droppingFirst: 3) == "buff")
    #expect(types.handle.name(of: skb, droppingFirst: 7) == "")
    #expect(types.handle.name(of: skb, droppingFirst: 8) == "")
    // Void has no name.
    #expect(types.handle.name(of: 0, equals: ""))
  }
}

@Suite struct UndecodedReads {
  /// Typedef chains followed by decoding each record, as `resolved` used to.
  private func resolvedByDecoding(_ types: KernelTypes, _ id: BTFTypeID) -> BTFTypeID {
    var current = id
    for _ in 0..<64 {
      switch types.handle.type(current) {
      case .typedef(_, let next), .volatile(let next), .const(let next), .restrict(let next), .typeTag(_, let next):
        current = next
      default:
        return current
      }
    }
    return current
  }

  @Test(arguments: sources)
  func followTypedefsAndPointersAsDecodingDoes(source: String) throws {
    let types = try load(source)
    let handle = types.handle
    for id in 1..<handle.typeCount {
      switch handle.kind(of: id) {
      case .typedef, .const, .volatile, .restrict, .typeTag:
        #expect(types.resolved(id) == resolvedByDecoding(types, id), "type \(id) of \(source)")
      case .pointer:
        // Pointee names by decoding, for pointers to records that are cheap to decode.
        let pointee = resolvedByDecoding(types, handle.sizeOrType(of: id))
        switch handle.type(pointee) {
        case .forward(let name, _):
          #expect(types.pointeeStructName(id) == name)
          #expect(types.isPointer(id, toStruct: name))
        case .integer, .enumeration, .pointer, .void:
          #expect(types.pointeeStructName(id) == nil)
        default:
          break
        }
      case .functionPrototype:
        guard case .functionPrototype(_, let parameters, _) = handle.type(id) else {
          Issue.record("type \(id) of \(source) is not a prototype")
          continue
        }
        #expect(handle.parameterTypes(of: id) == parameters.map(\.type), "prototype \(id) of \(source)")
      default:
        #expect(handle.parameterTypes(of: id) == nil)
      }
    }
    let skb = try #require(types.structure("sk_buff"))
    #expect(types.pointeeStructName(skb) == nil)
  }
}

@Suite struct FilteredAttachPoints {
  @Test(arguments: sources)
  func skbTracepointsAreTheFullListFiltered(source: String) throws {
    let types = try load(source)
    let reference = types.tracepoints().filter { tracepoint in
      tracepoint.parameters.contains { types.isPointer($0.type, toStruct: "sk_buff") }
    }
    #expect(types.tracepoints(where: { _ in true }, takingPointerTo: "sk_buff") == reference)
    #expect(types.tracepoints(where: { $0.hasPrefix("net_dev_") }, takingPointerTo: "sk_buff")
      == reference.filter { $0.name.hasPrefix("net_dev_") })
    #expect(types.tracepoints(where: { $0.hasPrefix("sys_") }) == types.tracepoints().filter { $0.name.hasPrefix("sys_") })
    let kfree = try #require(types.tracepoint(named: "kfree_skb"))
    #expect(kfree == types.tracepoints().first { $0.name == "kfree_skb" })
  }

  /// Every function, first record per name, by decoding every FUNC: what `functions()` did
  /// before it had an index.
  private func functionsByDecoding(_ types: KernelTypes) -> [FunctionDescription] {
    var result: [FunctionDescription] = []
    var seen = Set<String>()
    for id in 1..<types.handle.typeCount where types.handle.kind(of: id) == .function {
      guard case .function(let name, let protoID, _) = types.handle.type(id),
        case .functionPrototype(let returnType, let parameters, _) = types.handle.type(protoID),
        seen.insert(name).inserted
      else { continue }
      result.append(
        FunctionDescription(
          name: name, functionID: id, parameters: parameters.map { BTFParameter(name: $0.name, type: $0.type) },
          returnType: returnType))
    }
    return result.sorted { $0.name < $1.name }
  }

  @Test(arguments: Fixtures.kernelReleases)
  func functionsAreThoseDecodingEveryRecordFinds(release: String) throws {
    let types = try load(release)
    let reference = functionsByDecoding(types)
    #expect(types.functions() == reference)
    let skb = reference.filter { function in function.parameters.contains { types.isPointer($0.type, toStruct: "sk_buff") } }
    #expect(skb.count > 1000)
    #expect(types.functions(where: { _ in true }, takingPointerTo: "sk_buff") == skb)
    #expect(types.functions(where: { $0.hasPrefix("tcp_v4_") }, takingPointerTo: "sk_buff")
      == skb.filter { $0.name.hasPrefix("tcp_v4_") })
    #expect(types.functions(where: { $0 == "ip_rcv" }) == reference.filter { $0.name == "ip_rcv" })
    #expect(types.function(named: "ip_rcv") == reference.first { $0.name == "ip_rcv" })
    #expect(types.function(named: "no_such_function") == nil)
    #expect(types.functionNames() == reference.map(\.name))
  }
}
