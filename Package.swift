// swift-tools-version:6.0
// kpeer: which process is at the other end of this unix socket?
//
// The targets follow the data: kernel memory → type offsets → socket
// inventory → peer resolution → rendering, with a C shim underneath for what
// needs C (libelf, libdw, libbpf, netlink structs) and a thin CLI on top.
import PackageDescription

let package = Package(
    name: "kpeer",
    products: [
        .executable(name: "kpeer", targets: ["kpeer"]),
        // The libraries, for packages that build on kpeer by path (the
        // fuzzers in Tests/Reliability/Fuzz).
        .library(name: "KPeerSystem", targets: ["KPeerSystem"]),
        .library(name: "KernelMemory", targets: ["KernelMemory"]),
        .library(name: "TypeOffsets", targets: ["TypeOffsets"]),
        .library(name: "KernelObjects", targets: ["KernelObjects"]),
        .library(name: "SocketInventory", targets: ["SocketInventory"]),
        .library(name: "PeerResolution", targets: ["PeerResolution"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // C: libelf (kcore program headers, build-ids), libdw (DWARF offsets),
        // libbpf (BTF offsets), the kptr_restrict signal guard, netlink headers.
        .target(
            name: "CKPeer",
            linkerSettings: [
                .linkedLibrary("elf"),
                .linkedLibrary("dw"),
                .linkedLibrary("bpf"),
            ]
        ),
        // One error type, typed wrappers over the few syscalls kpeer makes.
        .target(name: "KPeerSystem", dependencies: ["CKPeer"]),
        // Kernel virtual address → bytes, through an ELF core (/proc/kcore).
        .target(name: "KernelMemory", dependencies: ["CKPeer", "KPeerSystem"]),
        // Struct layouts (BTF, DWARF) and where unix_sock.peer lives:
        // --offset, BTF, DWARF (calibration is in PeerResolution, since it
        // needs live sockets).
        .target(name: "TypeOffsets", dependencies: ["CKPeer", "KPeerSystem"]),
        // Typed reads of kernel structs: memory plus layouts, pointers
        // checked before they are followed, lists walked with a bound.
        .target(name: "KernelObjects", dependencies: ["KernelMemory", "KPeerSystem", "TypeOffsets"]),
        // Every unix socket (/proc/net/unix, sock_diag) and who holds it (/proc/PID/fd).
        .target(name: "SocketInventory", dependencies: ["CKPeer", "KPeerSystem"]),
        // Socket → peer: through kernel memory, or through sock_diag.
        .target(
            name: "PeerResolution",
            dependencies: ["CKPeer", "KPeerSystem", "KernelMemory", "KernelObjects", "TypeOffsets", "SocketInventory"]
        ),
        // The seed's table, --dump, one-line answers, JSON.
        .target(name: "Rendering", dependencies: ["KPeerSystem", "SocketInventory", "PeerResolution"]),
        // kpeer --watch: connections as they happen, from a BPF program
        // (BPF/, compiled by the UnixWatchBPF plugin with Debian's clang) or,
        // where it cannot load, from sock_diag polled.
        .target(
            name: "Watch",
            dependencies: ["CKPeer", "KPeerSystem", "SocketInventory", "Rendering"],
            exclude: ["BPF"],
            plugins: ["UnixWatchBPF"]
        ),
        .plugin(name: "UnixWatchBPF", capability: .buildTool()),
        .executableTarget(
            name: "kpeer",
            dependencies: [
                "KPeerSystem", "TypeOffsets", "SocketInventory", "PeerResolution", "Rendering", "Watch",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Test-only: writes synthetic ELF core files with libelf.
        .target(name: "CoreWriter", path: "Tests/CoreWriter", linkerSettings: [.linkedLibrary("elf")]),
        // Test-only: struct members sampled from BTF by libbpf's full parse.
        .target(name: "BTFSample", path: "Tests/BTFSample", linkerSettings: [.linkedLibrary("bpf")]),
        .testTarget(
            name: "KPeerTests",
            dependencies: [
                "BTFSample", "CKPeer", "CoreWriter", "KPeerSystem", "KernelMemory", "KernelObjects", "TypeOffsets",
                "SocketInventory", "PeerResolution", "Rendering", "Watch",
            ]
        ),
    ]
)
