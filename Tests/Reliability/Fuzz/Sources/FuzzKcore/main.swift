import FuzzDriver
import Glibc
import KernelMemory
import KPeerSystem

/// An ELF core file → its segment map → reads, as kpeer reads /proc/kcore.
/// A malformed core must be a KPeerError, never a trap.
/// (Static, so lazily made: libFuzzer's main never runs this file's top level.)
enum Scratch {
    static let path = "/dev/shm/kpeer-fuzz-kcore-\(getpid())"
    static let file = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    // On tmpfs, rewritten in place for each input.
    let (file, path) = (Scratch.file, Scratch.path)
    precondition(ftruncate(file, 0) == 0)
    if size > 0 { precondition(pwrite(file, data, size, 0) == size) }
    guard let memory = try? KernelMemory(path: path) else { return 0 }
    for s in memory.segments.prefix(8) {
        // The first and last words of each segment, and one just past it.
        for a in [s.vaddr, s.vaddr &+ s.memsz &- 8, s.vaddr &+ s.memsz, s.vaddr &+ 4093] {
            _ = try? memory.readWord(a)
        }
        _ = try? memory.read(s.vaddr, count: 5000)
    }
    return 0
}

runFuzzer(fuzz)
