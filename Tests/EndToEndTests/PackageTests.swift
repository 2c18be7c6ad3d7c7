// The Debian package and the container image, installed where there is no Swift toolchain.
//
// `make test` (and `make pkgtest`) build dist/swtrace_VERSION_ARCH.deb (scripts/package/deb.sh)
// and dist/swtrace-image_VERSION_ARCH.oci.tar (scripts/package/image.sh), then run this suite
// with SWTRACE_PACKAGE_DIR=dist. Each test gets a clean Debian 12 minbase root made by
// debootstrap (scripts/package/root.sh, cached in .build-pkgtest) and runs everything there
// chrooted, with an empty environment: nothing of this machine's /opt/swift or build tree
// is visible.
//
//   - the package: `apt-get install ./swtrace_*.deb` in the root resolves its Depends from
//     Debian's own archive (libbpf1, libelf1, zlib1g), and what dpkg installed is there;
//   - the image: unpacked by umoci (an OCI tool of its own, not our script) into a bundle,
//     whose rootfs gets the same checks, and whose runtime config runs the DaemonSet's command.
//
// In both roots: `ldd` resolves every library inside the root, none from a Swift toolchain;
// `swtrace --version` prints the package's version as dpkg reads it; `swtrace check` accepts
// every spec in specs/; and the mission one-liner prints exactly the marked datagrams that
// swtrace-pktgen sent across a veth pair (payloads 100...104 with mark 0xdead: len p + 42 on
// the sending veth, see WalkingSkeletonTests), and none of the unmarked ones (300...304).

import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

@Suite("Package and image in clean Debian 12 roots", .serialized)
struct PackageTests {
  static let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
  static let rootScript = repositoryRoot.appendingPathComponent("scripts/package/root.sh").path

  /// The directory holding the package and the image, or why the suite does not run.
  static var packageDirectory: Result<URL, SkipReason> {
    let setting = ProcessInfo.processInfo.environment["SWTRACE_PACKAGE_DIR"] ?? ""
    if setting.isEmpty {
      return .failure(SkipReason("set SWTRACE_PACKAGE_DIR to the directory of `make deb image` (make pkgtest does)"))
    }
    if geteuid() != 0 { return .failure(SkipReason("not root: debootstrap, chroot and BPF need root")) }
    return .success(URL(fileURLWithPath: setting, isDirectory: true))
  }

  struct SkipReason: Error { let text: String; init(_ text: String) { self.text = text } }

  /// The one file in `directory` whose name matches.
  static func artifact(in directory: URL, prefix: String, suffix: String) throws -> URL {
    let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
      .filter { $0.hasPrefix(prefix) && $0.hasSuffix(suffix) }.sorted()
    try #require(names.count == 1, "exactly one \(prefix)*\(suffix) in \(directory.path): \(names)")
    return directory.appendingPathComponent(names[0])
  }

  @Test("the .deb installs with apt-get into a clean Debian 12 root and swtrace runs there without the toolchain")
  func packageInCleanRoot() throws {
    let directory: URL
    switch Self.packageDirectory {
    case .failure(let reason): try skip(reason.text)
    case .success(let found): directory = found
    }
    let deb = try Self.artifact(in: directory, prefix: "swtrace_", suffix: ".deb")
    let field = { (name: String) throws -> String in
      let result = try ProcessRunner.run("dpkg-deb", ["-f", deb.path, name], timeout: 30)
      try #require(result.succeeded, "\(result)")
      return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    let version = try field("Version")
    #expect(deb.lastPathComponent == "swtrace_\(version)_\(try field("Architecture")).deb")
    let installedSize = Int(try field("Installed-Size")) ?? .max
    #expect(installedSize <= 20 * 1024, "Installed-Size \(installedSize) KiB: the aim is at most 20 MiB")
    let depends = try field("Depends")
    for package in ["libbpf1", "libelf1", "zlib1g"] {
      #expect(depends.contains(package), "Depends: \(depends)")
    }
    #expect(!depends.contains("swift"), "Depends: \(depends)")
    if let lintian = Tools.ensure("lintian", package: "lintian") {
      let result = try ProcessRunner.run(lintian, [deb.path], timeout: 300)
      let errors = result.stdoutLines.filter { $0.hasPrefix("E:") }
      #expect(errors.isEmpty, "lintian errors:\n\(result)")
    }

    let root = try CleanRoot("deb")
    defer { root.remove() }
    try FileManager.default.copyItem(atPath: deb.path, toPath: root.path("/tmp/" + deb.lastPathComponent))
    // The root's apt cache already holds libbpf1 and libelf1 as Debian's archive has them
    // (root.sh cache), and the root has no name server: nothing comes from this host.
    let install = try root.run(
      ["apt-get", "install", "-y", "-q", "--no-install-recommends", "/tmp/\(deb.lastPathComponent)"],
      timeout: 300)
    try #require(install.succeeded, "apt-get install of the package in the clean root:\n\(install)")
    let files = try root.run(["dpkg", "-L", "swtrace"])
    for path in [
      "/usr/bin/swtrace", "/usr/share/man/man1/swtrace.1.gz", "/usr/share/bash-completion/completions/swtrace",
      "/usr/share/zsh/vendor-completions/_swtrace", "/usr/share/fish/vendor_completions.d/swtrace.fish",
      "/lib/systemd/system/swtrace.service", "/etc/swtrace/spec.spec", "/usr/share/doc/swtrace/copyright",
    ] {
      #expect(files.stdoutLines.contains(path), "dpkg -L swtrace lists \(path):\n\(files)")
      #expect(FileManager.default.fileExists(atPath: root.path(path)), "\(path) is installed")
    }
    let unit = try String(contentsOfFile: root.path("/lib/systemd/system/swtrace.service"), encoding: .utf8)
    #expect(unit.contains("ExecStart=/usr/bin/swtrace --metrics 0.0.0.0:9464 /etc/swtrace/spec.spec"), "\(unit)")
    try checkSwtrace(in: root, version: version)
  }

  @Test("the image, unpacked by umoci, holds the package and runs the DaemonSet's command")
  func imageRoot() throws {
    let directory: URL
    switch Self.packageDirectory {
    case .failure(let reason): try skip(reason.text)
    case .success(let found): directory = found
    }
    guard let umoci = Tools.ensure("umoci", package: "umoci") else {
      try skip("umoci is not installed and could not be installed (apt-get install -y umoci)")
    }
    let image = try Self.artifact(in: directory, prefix: "swtrace-image_", suffix: ".oci.tar")
    let deb = try Self.artifact(in: directory, prefix: "swtrace_", suffix: ".deb")
    let version = try ProcessRunner.run("dpkg-deb", ["-f", deb.path, "Version"], timeout: 30).stdout
      .trimmingCharacters(in: .whitespacesAndNewlines)
    let scratch = try ScratchDirectory("image")
    defer { scratch.remove() }
    let layout = scratch.path("layout")
    try FileManager.default.createDirectory(atPath: layout, withIntermediateDirectories: true)
    let untar = try ProcessRunner.run("tar", ["-C", layout, "-xf", image.path], timeout: 120)
    try #require(untar.succeeded, "\(untar)")
    let bundle = scratch.path("bundle")
    let unpack = try ProcessRunner.run(umoci, ["unpack", "--image", "\(layout):\(version)", bundle], timeout: 300)
    try #require(unpack.succeeded, "umoci unpack of the image tagged \(version):\n\(unpack)")

    // The runtime configuration umoci derived from the image's config: the DaemonSet's command.
    let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: bundle + "/config.json")))
    let process = (config as? [String: Any])?["process"] as? [String: Any]
    #expect(
      process?["args"] as? [String] == ["/usr/bin/swtrace", "--metrics", "0.0.0.0:9464", "/etc/swtrace/spec.spec"],
      "process.args of the bundle: \(String(describing: process?["args"]))")

    // deploy/daemonset.yaml runs this image's version with the same command.
    let daemonSet = try String(
      contentsOf: Self.repositoryRoot.appendingPathComponent("deploy/daemonset.yaml"), encoding: .utf8)
    #expect(daemonSet.contains("image: registry.example.com/swtrace:\(version)\n"), "the DaemonSet names version \(version)")
    #expect(daemonSet.contains("command: [\"/usr/bin/swtrace\"]"))
    #expect(daemonSet.contains("args: [\"--metrics\", \"0.0.0.0:9464\", \"/etc/swtrace/spec.spec\"]"))

    let root = CleanRoot(existing: bundle + "/rootfs")
    let status = try root.run(["dpkg-query", "-W", "-f", "${Version} ${db:Status-Status}", "swtrace"])
    #expect(status.stdout == "\(version) installed", "dpkg in the image knows the package:\n\(status)")
    try checkSwtrace(in: root, version: version)
    try daemonSetCapabilities(in: root)
  }

  /// The DaemonSet's command in the image's root as root with only CAP_BPF and CAP_PERFMON
  /// (its container drops every other capability but SYS_RESOURCE and SYSLOG, which the
  /// fleet spec does not need): it serves the fleet spec's metrics.
  func daemonSetCapabilities(in root: CleanRoot) throws {
    if let reason = TestEnvironment.tracingSkipReason { try skip(reason) }
    let port = try MetricsHTTP.freePort()
    let process = try RunningProcess(
      Self.rootScript,
      [
        "run", root.rootPath, "setpriv", "--bounding-set=-all,+bpf,+perfmon", "--inh-caps=-all",
        "/usr/bin/swtrace", "--metrics", "127.0.0.1:\(port)", "-d", "60", "/etc/swtrace/spec.spec",
      ])
    let run = MetricsRun(started: process, port: port)
    defer { run.stop() }
    let served = try run.waitUntilServing()
    #expect(served.types["swtrace_tcp_retransmits_total"] == "counter", "the fleet spec's metrics:\n\(served.text)")
    #expect(served.samples(named: "swtrace_tcp_retransmits_total").count == 1, "\(served.text)")
    let result = run.stop()
    #expect(result.status == 0, "\(result)")
  }

  // MARK: - What is checked in both roots

  func checkSwtrace(in root: CleanRoot, version: String) throws {
    #expect(!FileManager.default.fileExists(atPath: root.path("/opt/swift")), "no toolchain in the root")
    let which = try root.run(["/bin/sh", "-c", "command -v swtrace"])
    #expect(which.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "/usr/bin/swtrace", "\(which)")

    // Every library resolved inside the root, by the root's own loader; none from Swift.
    let ldd = try root.run(["ldd", "/usr/bin/swtrace"])
    try #require(ldd.succeeded, "\(ldd)")
    #expect(!ldd.stdout.contains("not found"), "\(ldd)")
    #expect(!ldd.stdout.lowercased().contains("swift"), "nothing of the Swift toolchain:\n\(ldd)")
    let libraries = ldd.stdoutLines.compactMap { line -> String? in
      guard let arrow = line.range(of: "=> ") else { return nil }
      return String(line[arrow.upperBound...].prefix { $0 != " " })
    }
    #expect(libraries.count >= 5, "\(ldd)")
    for library in libraries {
      #expect(library.hasPrefix("/lib/") || library.hasPrefix("/usr/lib/"), "\(library) from the root's own libraries")
    }
    let names = Set(libraries.map { URL(fileURLWithPath: $0).lastPathComponent })
    #expect(names.isSuperset(of: ["libbpf.so.1", "libelf.so.1", "libz.so.1", "libc.so.6"]), "\(names)")

    let printed = try root.run(["swtrace", "--version"])
    #expect(printed.succeeded && printed.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == version, "\(printed)")

    // Every spec of the repository, checked against the running kernel's BTF from the root.
    let specs = try FileManager.default.contentsOfDirectory(atPath: Self.repositoryRoot.appendingPathComponent("specs").path)
      .filter { $0.hasSuffix(".spec") }.sorted()
    try #require(!specs.isEmpty)
    try FileManager.default.createDirectory(atPath: root.path("/tmp/specs"), withIntermediateDirectories: true)
    for spec in specs {
      try? FileManager.default.removeItem(atPath: root.path("/tmp/specs/" + spec))
      try FileManager.default.copyItem(
        atPath: Self.repositoryRoot.appendingPathComponent("specs/" + spec).path, toPath: root.path("/tmp/specs/" + spec))
    }
    let check = try root.run(["swtrace", "check"] + specs.map { "/tmp/specs/" + $0 }, timeout: 300)
    #expect(check.succeeded, "swtrace check on specs/ in the root:\n\(check)")
    for spec in specs {
      #expect(
        check.stderrLines.contains { $0.hasPrefix("swtrace: /tmp/specs/\(spec): ok (") }, "\(spec) is ok:\n\(check)")
    }

    try missionOneLiner(in: root)
  }

  /// `swtrace -e 'skb:* /mark==0xdead/ < print(len, gso_type) >'` run in the root against
  /// datagrams sent from a namespace pair; its lines against what was sent.
  func missionOneLiner(in root: CleanRoot) throws {
    if let reason = TestEnvironment.tracingSkipReason { try skip(reason) }
    let spec = "skb:* /mark==0xdead/ < print(len, gso_type) >"
    // How many probes the root's swtrace attaches: its own check says.
    let plan = try root.run(["swtrace", "check", "-e", spec], timeout: 120)
    let programs = plan.stderrLines.lazy.compactMap { line -> Int? in
      guard let open = line.range(of: ": ok ("), let space = line[open.upperBound...].firstIndex(of: " ") else { return nil }
      return Int(line[open.upperBound..<space])
    }.first
    let probes = try #require(programs, "swtrace check -e '\(spec)':\n\(plan)")

    let pair = try NetworkNamespacePair(subnet: 84)
    defer { pair.remove() }
    let swtrace = try RunningProcess(Self.rootScript, ["run", root.rootPath, "swtrace", "-d", "60", "-e", spec])
    let attached = BPFObjects.waitForAttach(pid: swtrace.pid, links: probes, timeout: 60)
    try #require(attached.links.count >= probes, "swtrace in the root did not attach \(probes) probes:\n\(swtrace.stop())")
    let marked = Array(100...104)
    let unmarked = Array(300...304)
    try pair.sendUDP(count: marked.count, sizes: marked, mark: "0xdead", port: 9084)
    try pair.sendUDP(count: unmarked.count, sizes: unmarked, mark: "0x0", port: 9084)
    // Lines are written as events arrive; the summary at the end says nothing was lost.
    Thread.sleep(forTimeInterval: 1)
    let result = swtrace.stop()
    #expect(result.status == 0, "\(result)")
    // `<ns timestamp> <cpu> <probe> (len: N gso_type: T)`
    let events = result.stdoutLines.compactMap { line -> (probe: String, len: Int, gso: String)? in
      let words = line.split(separator: " ").map(String.init)
      guard words.count == 7, words[3] == "(len:", words[5] == "gso_type:", words[6].hasSuffix(")"),
        let len = Int(words[4])
      else { return nil }
      return (words[2], len, String(words[6].dropLast()))
    }
    #expect(events.count == result.stdoutLines.count, "every line is an event line:\n\(result)")
    let queued = events.filter { $0.probe == "net_dev_queue" }.map(\.len).sorted()
    #expect(queued == marked.map { $0 + 42 }, "one net_dev_queue line per marked datagram (len = payload + 42):\n\(result)")
    // Before the Ethernet header is pushed (or after it is pulled) a datagram is 28 bytes
    // longer than its payload, with it 42.
    let markedLengths = Set(marked.flatMap { [$0 + 28, $0 + 42] })
    let unmarkedLengths = Set(unmarked.flatMap { [$0 + 28, $0 + 42] })
    #expect(events.allSatisfy { markedLengths.contains($0.len) }, "only marked datagrams' lengths:\n\(result)")
    #expect(!events.contains { unmarkedLengths.contains($0.len) }, "no unmarked datagram:\n\(result)")
    #expect(events.allSatisfy { $0.gso == "none" }, "\(result)")
    #expect(summary(of: result)?.lost == 0, "\(result)")
    #expect(summary(of: result)?.samples == events.count, "\(result)")
  }
}

/// A Debian 12 root file system made by scripts/package/root.sh, and commands run in it.
struct CleanRoot {
  let rootPath: String
  private let owned: Bool

  /// A fresh root from the cached debootstrap tarball (made on first use).
  init(_ label: String) throws {
    let directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("swtrace-root-\(label)-\(getpid())-\(UUID().uuidString.prefix(8))").path
    let made = try ProcessRunner.run(PackageTests.rootScript, ["new", directory], timeout: 900)
    guard made.succeeded else {
      try? FileManager.default.removeItem(atPath: directory)
      throw ProcessRunnerError(description: "scripts/package/root.sh new failed:\n\(made)")
    }
    rootPath = directory
    owned = true
  }

  /// A root made by someone else (umoci's bundle); not removed here.
  init(existing path: String) {
    rootPath = path
    owned = false
  }

  func path(_ inside: String) -> String { rootPath + inside }

  func run(_ command: [String], timeout: Double = 60) throws -> ProcessResult {
    try ProcessRunner.run(PackageTests.rootScript, ["run", rootPath] + command, timeout: timeout)
  }

  func remove() {
    if owned { try? FileManager.default.removeItem(atPath: rootPath) }
  }
}
