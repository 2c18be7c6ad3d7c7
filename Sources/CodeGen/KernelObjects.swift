import BPF
import BTF
import Sema

extension CodeGenerator {
  /// The BTF layout of each struct a tracing program's pointer arguments point to, for the
  /// rule the kernel applies to plain loads through them (`KernelObjectLayout.access`).
  /// Layouts are built once per struct type and shared through `cache`.
  func kernelObjectLayouts(
    for point: AttachPoint, cache: inout [BTFTypeID: KernelObjectLayout]
  ) -> [Int: KernelObjectLayout] {
    guard ![.kprobe, .kretprobe, .tracepointRecord].contains(point.backend) else { return [:] }
    var layouts: [Int: KernelObjectLayout] = [:]
    for (index, argument) in point.arguments.enumerated() {
      guard types.pointeeStructName(argument.type) != nil,
        case .pointer(let pointee) = types.type(types.resolved(argument.type))
      else { continue }
      let structID = types.resolved(pointee)
      if let layout = cache[structID] {
        layouts[index] = layout
        continue
      }
      var builder = KernelObjectLayoutBuilder(types: types)
      let layout = builder.layout(of: structID)
      cache[structID] = layout
      layouts[index] = layout
    }
    return layouts
  }
}

/// Turns a BTF struct and the structs and unions embedded in it into a `KernelObjectLayout`.
struct KernelObjectLayoutBuilder {
  let types: KernelTypes
  private var structures: [KernelObjectLayout.Structure] = []

  init(types: KernelTypes) { self.types = types }

  mutating func layout(of id: BTFTypeID) -> KernelObjectLayout {
    structures = []
    _ = structure(id, depth: 0)
    return KernelObjectLayout(structures: structures)
  }

  /// Appends the structure `id` (a resolved struct or union) and what it embeds; its index.
  private mutating func structure(_ id: BTFTypeID, depth: Int) -> Int {
    let index = structures.count
    let (name, size, isUnion, members): (String, Int, Bool, [BTFType.Member])
    switch types.type(id) {
    case .structure(let n, let s, let m): (name, size, isUnion, members) = (n, s, false, m)
    case .union(let n, let s, let m): (name, size, isUnion, members) = (n, s, true, m)
    default: (name, size, isUnion, members) = ("", 0, false, [])
    }
    let described = isUnion ? "union \(name.isEmpty ? "(anonymous)" : name)" : "struct \(name.isEmpty ? "(anonymous)" : name)"
    structures.append(KernelObjectLayout.Structure(name: described, size: size, isUnion: isUnion, members: []))
    var laidOut: [KernelObjectLayout.Member] = []
    for member in members {
      let memberType = types.resolved(member.type)
      let memberSize = types.size(of: memberType) ?? 0
      laidOut.append(
        KernelObjectLayout.Member(
          name: member.name.isEmpty ? "(anonymous)" : member.name, bitOffset: Int(member.bitOffset),
          bitfieldSize: Int(member.bitfieldSize), size: memberSize, kind: kind(of: memberType, depth: depth)))
    }
    structures[index].members = laidOut
    return index
  }

  /// How the kernel treats a member of the resolved type `id`.
  private mutating func kind(of id: BTFTypeID, depth: Int) -> KernelObjectLayout.Kind {
    switch types.type(id) {
    case .structure, .union:
      // Deeper nesting than any kernel struct has: treated as opaque bytes the walk refuses.
      guard depth < 16 else { return .array(element: .number, count: 0) }
      return .structure(structure(id, depth: depth + 1))
    case .pointer(let pointee):
      switch types.type(types.resolved(pointee)) {
      case .structure, .union: return .pointer(toStruct: true)
      default: return .pointer(toStruct: false)
      }
    case .array:
      // Multi-dimensional arrays are flattened, as the kernel's walk does.
      var element = id
      var count = 1
      for _ in 0..<8 {
        guard case .array(let inner, let n) = types.type(element) else { break }
        count *= n
        element = types.resolved(inner)
      }
      if case .array = types.type(element) { return .array(element: .number, count: 0) }
      return .array(element: kind(of: element, depth: depth), count: count)
    default:
      return .number
    }
  }
}
