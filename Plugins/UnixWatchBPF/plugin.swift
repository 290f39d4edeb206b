import Foundation
import PackagePlugin

/// Compiles the `kpeer --watch` BPF program (Sources/Watch/BPF) with
/// Debian's clang, /usr/bin/clang, at build time, and hands the Watch module
/// a Swift source holding the object's bytes. Its headers are libbpf-dev's
/// and kpeer's own; no vmlinux.h, so nothing of the build machine's kernel
/// goes into the object (CO-RE: libbpf fits it to the running kernel).
@main
struct UnixWatchBPF: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let root = context.package.directoryURL
        let dir = root.appending(path: "Sources/Watch/BPF")
        let source = dir.appending(path: "unixwatch.bpf.c")
        let script = dir.appending(path: "build.sh")
        let include = root.appending(path: "Sources/CKPeer/include")
        let work = context.pluginWorkDirectoryURL
        let output = work.appending(path: "UnixWatchObject.swift")
        return [
            .buildCommand(
                displayName: "Compiling the unix socket watch BPF program (/usr/bin/clang -target bpf)",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: [script.path, "/usr/bin/clang", source.path, include.path, output.path, work.path],
                inputFiles: [source, script, include.appending(path: "kpwatch_event.h")],
                outputFiles: [output]
            )
        ]
    }
}
