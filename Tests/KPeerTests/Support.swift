import Foundation

/// Helpers shared by the tests: temporary files, running programs, gcc.
enum Support {
    /// A fresh directory for one test, inside this test process's own
    /// directory, which goes at exit: runs leave nothing in /tmp.
    static func tempDir() -> String {
        var template = Array((root + "/t.XXXXXX").utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    /// This test process's directory: 0711, so a test's unprivileged user
    /// can reach a directory the test opens to it inside.
    private static let root: String = {
        var template = Array("/tmp/kpeer-test.XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        chmod(dir, 0o711)
        rootForExit = strdup(dir)
        atexit {
            guard let dir = Support.rootForExit else { return }
            try? FileManager.default.removeItem(atPath: String(cString: dir))
        }
        return dir
    }()
    nonisolated(unsafe) private static var rootForExit: UnsafeMutablePointer<CChar>?

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs a program to completion, capturing both streams.
    @discardableResult
    static func run(_ path: String, _ args: [String], environment: [String: String]? = nil) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        if let environment { p.environment = environment }
        let out = Pipe()
        // stderr goes to a file: reading two pipes needs two threads.
        let errDir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: errDir) }
        let errPath = errDir + "/stderr"
        guard FileManager.default.createFile(atPath: errPath, contents: nil),
              let errHandle = FileHandle(forWritingAtPath: errPath) else { throw Failure("cannot make \(errPath)") }
        p.standardOutput = out
        p.standardError = errHandle
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        try? errHandle.close()
        let errData = FileManager.default.contents(atPath: errPath) ?? Data()
        return Result(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    private static let builtLock = NSLock()
    nonisolated(unsafe) private static var built: [String: String] = [:]

    /// A C program of the package (`source`, from the package root)
    /// compiled once per test run, whichever suite asks first.
    static func program(_ source: String, named name: String, flags: [String] = ["-O2", "-Wall"]) throws -> String {
        builtLock.lock()
        defer { builtLock.unlock() }
        if let out = built[source] { return out }
        let out = tempDir() + "/" + name
        try gcc([packageRoot + "/" + source], output: out, flags: flags)
        built[source] = out
        return out
    }

    /// Compiles C sources with gcc into `output`.
    static func gcc(_ sources: [String], output: String, flags: [String] = []) throws {
        let r = try run("/usr/bin/gcc", flags + sources + ["-o", output])
        guard r.status == 0 else { throw Failure("gcc failed: \(r.stderr)") }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    /// The package root, from this file's location.
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The kpeer binary built beside this test bundle.
    static var kpeerBinary: String {
        if let env = ProcessInfo.processInfo.environment["KPEER_BIN"] { return env }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("kpeer").path
    }

    /// Starts `command` with stdin and stdout on pipes and reads stdout up to
    /// a line `ready`: the fixtures' convention (they hold their sockets
    /// until EOF on stdin). Returns the process, its stdin, and what it said.
    static func startUntilReady(_ command: [String], what: String) throws -> (process: Process, input: Pipe, text: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        var text = ""
        while !text.hasSuffix("ready\n") {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { throw Failure("\(what) ended before ready: \(text)") }
            text += String(decoding: chunk, as: UTF8.self)
        }
        return (process, input, text)
    }

    static func which(_ name: String) -> String? {
        for dir in ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"] {
            let p = dir + "/" + name
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }
}
