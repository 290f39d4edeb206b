import Foundation
import Glibc

/// Whether this machine hides some processes' descriptors even from root in
/// the initial namespaces (a sandbox's pid 1 whose fd links are refused, a
/// security module): then every answer of kpeer's stands with one more line
/// on stderr saying its owner lists are incomplete. Judged by the kernel's
/// answer to this test process, which runs as kpeer does.
enum OwnerGaps {
    /// Processes whose /proc/PID/fd may not be listed, or whose links may
    /// not be read (EACCES or EPERM).
    static func unreadable() -> [Int32] {
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        var out: [Int32] = []
        while let ent = readdir(dir) {
            let name = withUnsafePointer(to: &ent.pointee.d_name) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
            guard let pid = Int32(name), !readable(pid) else { continue }
            out.append(pid)
        }
        return out.sorted()
    }

    /// True when `pid`'s descriptors can be read (or it is gone).
    private static func readable(_ pid: Int32) -> Bool {
        guard let fds = opendir("/proc/\(pid)/fd") else { return !(errno == EACCES || errno == EPERM) }
        defer { closedir(fds) }
        var link = [CChar](repeating: 0, count: 64)
        while let ent = readdir(fds) {
            let name = withUnsafePointer(to: &ent.pointee.d_name) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
            guard Int32(name) != nil else { continue }
            if readlink("/proc/\(pid)/fd/\(name)", &link, link.count) < 0 && (errno == EACCES || errno == EPERM) { return false }
        }
        return true
    }

    static var hostHides: Bool { !unreadable().isEmpty }

    /// The stderr of an answer or listing that stands, as root in the
    /// initial namespaces: nothing, or (only where this machine hides some
    /// processes) the one line that says owner lists are incomplete.
    static func isQuiet(_ stderr: String) -> Bool {
        if stderr.isEmpty { return true }
        return isNote(stderr) && hostHides
    }

    /// The one line kpeer adds to an answer whose owner scan has holes.
    static func isNote(_ stderr: String) -> Bool {
        let lines = stderr.split(separator: "\n", omittingEmptySubsequences: false)
        return lines.count == 2 && lines[1].isEmpty && lines[0].hasPrefix("kpeer: ")
            && lines[0].contains("a socket held only by processes kpeer could not see shows no owner")
    }
}
