// swift-tools-version: 6.0
import PackageDescription

// The libFuzzer target over swtrace's front end. A package of its own so that the main
// package's build and tests never need libFuzzer: scripts/fuzz.sh builds it with
// `--sanitize=fuzzer --sanitize=address`, which instruments the front end's modules too.
let package = Package(
  name: "swtrace-fuzz",
  dependencies: [.package(name: "swtrace", path: "..")],
  targets: [
    .executableTarget(
      name: "swtrace-fuzz",
      dependencies: [.product(name: "SwtraceFuzzing", package: "swtrace")],
      // libFuzzer brings its own main(); the target only defines LLVMFuzzerTestOneInput.
      swiftSettings: [.unsafeFlags(["-parse-as-library"])]
    )
  ]
)
