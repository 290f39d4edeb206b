import FuzzDriver
import Glibc
@testable import SocketInventory
import KPeerSystem

/// One netlink datagram from sock_diag → entries. Malformed input must be a
/// KPeerError or ignored, never a trap (out-of-range slice, overflow).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var entries: [DiagEntry] = []
    _ = try? SockDiag.parse(bytes[...], into: &entries)
    // The same bytes at an offset: slices whose indices do not start at 0.
    if size > 3 {
        var more: [DiagEntry] = []
        _ = try? SockDiag.parse(bytes[3...], into: &more)
    }
    for e in entries { _ = e.name?.display; _ = e.icons.count }
    return 0
}

runFuzzer(fuzz)
