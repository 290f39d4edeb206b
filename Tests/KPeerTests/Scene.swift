import Foundation

/// Tests/Fixture/scenes.c, running one scene: processes it named, holding
/// sockets it made, and the truth it printed about them.
final class Scene {
    struct Socket {
        var inode: UInt64
        var role: String
        var pid: Int32
    }

    let process: Process
    let input: Pipe
    var names: [Int32: String] = [:]
    var sockets: [Socket] = []

    func sockets(_ role: String) -> [Socket] { sockets.filter { $0.role == role } }
    func socket(_ role: String) throws -> Socket {
        guard let s = sockets(role).first else { throw Support.Failure("the scene has no \(role) socket") }
        return s
    }
    /// The scene's processes, by pid.
    var pids: [Int32] { names.keys.sorted() }

    static func binary() throws -> String {
        try Support.program("Tests/Fixture/scenes.c", named: "kpeer-scenes")
    }

    init(_ arguments: [String]) throws {
        let started = try Support.startUntilReady([try Self.binary()] + arguments, what: "scene \(arguments)")
        process = started.process
        input = started.input
        let text = started.text
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            switch f.first {
            case "proc": names[Int32(f[1])!] = String(f[2])
            case "sock": sockets.append(Socket(inode: UInt64(f[1])!, role: String(f[2]), pid: Int32(f[3])!))
            default: break
            }
        }
    }

    deinit {
        try? input.fileHandleForWriting.close()  // EOF: the scene ends, its children with it
        process.waitUntilExit()
    }
}
