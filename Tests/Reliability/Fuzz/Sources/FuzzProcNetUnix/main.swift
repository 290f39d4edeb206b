import FuzzDriver
import Glibc
import SocketInventory

/// /proc/net/unix text → entries. Never a crash; every entry is a record
/// the parser could justify (its fields fit their C types).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let entries = ProcNetUnix.parse(bytes, netns: 1)
    // A record is at least "0: 0 0 0 0 0 0" (14 bytes); the header line is skipped.
    precondition(entries.count <= size / 14 + 1)
    for e in entries {
        precondition(e.netns == 1)
        _ = e.state; _ = e.type; _ = e.path?.display
    }
    return 0
}

runFuzzer(fuzz)
