// swift-tools-version:6.0
// libFuzzer targets for kpeer's Swift parsers, built apart from kpeer so
// kpeer's own build never carries -sanitize=fuzzer:
//
//   swift build -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address \
//       --scratch-path ../../../.build-fuzz/swift
//
//
// (make fuzz / make fuzz-smoke in Tests/Reliability/reliability.mk do this.)
import PackageDescription

// kpeer's package is three levels up; a path dependency is known by its
// directory's name, whatever the checkout is called.
let kpeerDir = Context.packageDirectory.split(separator: "/").dropLast(3).last.map(String.init) ?? "kpeer"

let package = Package(
    name: "kpeer-fuzz",
    dependencies: [.package(path: "../../..")],
    targets: [
        // libFuzzer's driver, entered from Swift's main.
        .target(name: "FuzzDriver"),
        .executableTarget(name: "FuzzProcNetUnix",
                          dependencies: ["FuzzDriver", .product(name: "SocketInventory", package: kpeerDir)]),
        .executableTarget(name: "FuzzNetlink",
                          dependencies: ["FuzzDriver", .product(name: "SocketInventory", package: kpeerDir)]),
        .executableTarget(name: "FuzzKcore",
                          dependencies: ["FuzzDriver", .product(name: "KernelMemory", package: kpeerDir),
                                         .product(name: "KPeerSystem", package: kpeerDir)]),
    ]
)
