// swift-tools-version: 6.0
import PackageDescription

// One target per pipeline stage; the dependency edges below are the compiler's data flow:
// source text -> SwtraceSyntax -> Sema (with BTF) -> CodeGen -> BPF (verifier pre-check)
// -> Runtime (load, attach, read) -> Output -> swtrace (CLI).
let package = Package(
  name: "swtrace",
  platforms: [.macOS(.v13)],
  products: [
    .executable(name: "swtrace", targets: ["swtrace"]),
    .executable(name: "swtrace-pktgen", targets: ["swtrace-pktgen"]),
    // The whole front end on one input, for the libFuzzer package in Fuzz/ (built on its own
    // with -sanitize=fuzzer, so that the normal build never needs libFuzzer).
    .library(name: "SwtraceFuzzing", targets: ["SwtraceFuzzing"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    .package(url: "https://github.com/swhitty/FlyingFox", from: "0.27.1"),
  ],
  targets: [
    // C headers of libbpf; imported only by LibBPF.
    .systemLibrary(
      name: "CLibBPF",
      pkgConfig: "libbpf",
      providers: [.apt(["libbpf-dev", "libelf-dev"])]
    ),
    // The thin Swift wrapper that owns every unsafe pointer and errno.
    .target(name: "LibBPF", dependencies: ["CLibBPF"]),
    .target(name: "SwtraceSyntax"),
    .target(name: "BTF", dependencies: ["LibBPF"]),
    .target(name: "Sema", dependencies: ["SwtraceSyntax", "BTF"]),
    .target(name: "BPF", dependencies: ["SwtraceSyntax"]),
    .target(name: "CodeGen", dependencies: ["Sema", "BPF", "BTF", "SwtraceSyntax"]),
    .target(name: "Runtime", dependencies: ["CodeGen", "BPF", "LibBPF", "BTF"]),
    .target(name: "Output", dependencies: ["CodeGen", "Runtime", "Sema"]),
    // Maps as Prometheus metrics, served over HTTP at scrape time.
    .target(
      name: "PrometheusExport",
      dependencies: [
        "CodeGen", "Runtime", "Output", "Sema",
        .product(name: "Prometheus", package: "swift-prometheus"),
        .product(name: "FlyingFox", package: "FlyingFox"),
      ]),
    .executableTarget(
      name: "swtrace",
      dependencies: [
        "SwtraceSyntax", "BTF", "Sema", "BPF", "CodeGen", "Runtime", "Output", "PrometheusExport",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]
    ),
    // One input through lexer, parser, Sema, codegen and the pre-check: what Fuzz/ fuzzes.
    .target(name: "SwtraceFuzzing", dependencies: ["SwtraceSyntax", "BTF", "Sema", "CodeGen", "Runtime"]),
    // The project's own traffic generator for tests and benchmarks.
    .executableTarget(name: "swtrace-pktgen"),
    // Fixture kernels' BTF, paths and the language reference's examples, shared by the test targets.
    .target(name: "TestSupport", path: "Tests/TestSupport"),
    .testTarget(name: "SyntaxTests", dependencies: ["SwtraceSyntax", "TestSupport"], resources: [.copy("Golden")]),
    .testTarget(name: "BTFTests", dependencies: ["BTF", "LibBPF", "TestSupport"]),
    .testTarget(
      name: "SemaTests", dependencies: ["Sema", "BTF", "SwtraceSyntax", "TestSupport"],
      // Golden files are read from the source tree.
      exclude: ["Golden"]),
    .testTarget(name: "BPFTests", dependencies: ["BPF"]),
    // Event decoding and formatting, without the kernel: printf against the C library.
    .testTarget(name: "OutputTests", dependencies: ["Output", "CodeGen", "Sema", "SwtraceSyntax", "TestSupport"]),
    .testTarget(
      name: "CodeGenTests",
      dependencies: ["CodeGen", "Sema", "BTF", "BPF", "SwtraceSyntax", "Output", "TestSupport"],
      resources: [.copy("Golden")]),
    .testTarget(name: "EndToEndTests", dependencies: ["TestSupport"]),
    // Every input the fuzzer ever crashed on (Fuzz/Regressions) and every seed, replayed.
    .testTarget(name: "FuzzRegressionTests", dependencies: ["SwtraceFuzzing", "BTF", "TestSupport"]),
    // The verifier pre-check against the kernel's verifier, on generated and broken programs,
    // and the language reference's examples loaded into the running kernel.
    .testTarget(
      name: "DifferentialTests",
      dependencies: ["CodeGen", "Runtime", "BPF", "Sema", "BTF", "SwtraceSyntax", "TestSupport"]),
  ]
)
