// swift-tools-version: 6.0
import PackageDescription

// One target per pipeline stage; the dependency edges below are the compiler's data flow:
// source text -> SwtraceSyntax -> Sema (with BTF) -> CodeGen (emitting BPF, a leaf) -> Output
// -> Runtime (load, attach, run) -> swtrace (CLI). Each target declares exactly the modules
// its sources import (scripts/module-edges.sh checks it); docs/architecture.md draws them.
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
  ],
  targets: [
    // C headers of libbpf: imported, internally, by BTF (to read BTF) and LibBPF only.
    .systemLibrary(
      name: "CLibBPF",
      pkgConfig: "libbpf",
      providers: [.apt(["libbpf-dev", "libelf-dev"])]
    ),
    // The thin Swift wrapper that owns every unsafe pointer and errno; used by Runtime only.
    .target(name: "LibBPF", dependencies: ["CLibBPF"]),
    // The compiler core: nothing from here to code generation sees libbpf.
    .target(name: "SwtraceSyntax"),
    // The instruction set and the verifier pre-check: a leaf, knowing nothing of the language.
    .target(name: "BPF"),
    // BTF's own type model; libbpf reads the BTF, behind `internal import CLibBPF`.
    .target(name: "BTF", dependencies: ["CLibBPF"]),
    .target(name: "Sema", dependencies: ["SwtraceSyntax", "BTF"]),
    .target(name: "CodeGen", dependencies: ["Sema", "BPF", "BTF", "SwtraceSyntax"]),
    // Decoding and printing what the kernel sends; no libbpf, so it is tested without a kernel.
    .target(name: "Output", dependencies: ["CodeGen", "Sema", "SwtraceSyntax"]),
    // Loading, attaching and reading, the run loop with the BEGIN/END interpreter, and what
    // the kernel allows; the only user of LibBPF.
    .target(
      name: "Runtime", dependencies: ["CodeGen", "BPF", "LibBPF", "BTF", "Sema", "SwtraceSyntax", "Output", "CProcessShims"]),
    // fork, the parent-death signal and exec for the `-c` command's guardian, which Swift
    // cannot do between fork and exec; imported only by Runtime.
    .target(name: "CProcessShims"),
    // Maps as Prometheus metrics in the text format, served by a small HTTP/1.1 server of its
    // own on plain sockets (no Foundation, so the release binary links no libcurl or ICU).
    .target(name: "PrometheusExport", dependencies: ["CodeGen", "Runtime", "Output", "Sema", "CSocketShims"]),
    // accept4(2), which Swift's Glibc module does not declare; imported only by PrometheusExport.
    .target(name: "CSocketShims"),
    .executableTarget(
      name: "swtrace",
      dependencies: [
        "SwtraceSyntax", "BTF", "Sema", "CodeGen", "Runtime", "Output", "PrometheusExport",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]
    ),
    // One input through lexer, parser, Sema, codegen and the pre-check: what Fuzz/ fuzzes.
    .target(name: "SwtraceFuzzing", dependencies: ["SwtraceSyntax", "BTF", "Sema", "CodeGen", "Runtime"]),
    // The project's own traffic generator for tests and benchmarks.
    .executableTarget(name: "swtrace-pktgen"),
    // Fixture kernels' BTF, paths and the language reference's examples, shared by the test targets.
    .target(name: "TestSupport", path: "Tests/TestSupport"),
    // The running kernel for the tests that load programs into it.
    .target(
      name: "KernelTestSupport", dependencies: ["BTF", "Runtime", "Sema", "TestSupport"],
      path: "Tests/KernelTestSupport"),
    .testTarget(name: "SyntaxTests", dependencies: ["SwtraceSyntax", "TestSupport"], resources: [.copy("Golden")]),
    .testTarget(name: "BTFTests", dependencies: ["BTF", "TestSupport"]),
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
    // The Prometheus exposition of a scrape, without a kernel or a server.
    .testTarget(
      name: "PrometheusExportTests", dependencies: ["PrometheusExport", "Output", "Sema", "SwtraceSyntax", "TestSupport"]),
    .testTarget(name: "EndToEndTests", dependencies: ["TestSupport"]),
    // Every input the fuzzer ever crashed on (Fuzz/Regressions) and every seed, replayed.
    .testTarget(name: "FuzzRegressionTests", dependencies: ["SwtraceFuzzing", "BTF", "TestSupport"]),
    // The verifier pre-check against the kernel's verifier, on generated and broken programs,
    // and the language reference's examples loaded into the running kernel.
    .testTarget(
      name: "DifferentialTests",
      dependencies: ["CodeGen", "Runtime", "BPF", "Sema", "BTF", "SwtraceSyntax", "TestSupport", "KernelTestSupport"]),
    // The runtime driven without the command line: decoding of what the kernel hands over,
    // the run loop and the BEGIN/END interpreter on real programs and loopback traffic.
    .testTarget(
      name: "RuntimeTests",
      dependencies: [
        "Runtime", "CodeGen", "Output", "Sema", "BTF", "BPF", "SwtraceSyntax", "TestSupport", "KernelTestSupport",
      ]),
  ]
)
