import PeerResolution
import TypeOffsets
import SocketInventory

/// Text for every output form. Each builds one string, written once.
public enum Render {
    /// One line per process: several fds of one process are one owner.
    static func processes(_ owners: [Owner]) -> [Owner] {
        var seen = Set<Int32>()
        return owners.filter { seen.insert($0.pid).inserted }
    }

    static func column(_ owners: [Owner]) -> String {
        let list = processes(owners)
        return list.isEmpty ? "-" : list.map { "\($0.pid)/\(Escape.bytes(Array($0.name.utf8)))" }.joined(separator: ",")
    }

    // MARK: kpeer INODE

    /// `PID NAME` per process holding the peer (the seed's socket_peer).
    public static func answer(_ owners: [Owner]) -> String {
        processes(owners).map { "\($0.pid) \($0.name)\n" }.joined()
    }

    // MARK: kpeer --all

    public static let tableHeader =
        "Proto RefCnt Flags       Type       State         I-Node   PID/Program name     Peer PID/Program name  Path\n"

    static func pad(_ s: String, _ width: Int) -> String {
        let n = s.utf8.count
        return n >= width ? s : s + String(repeating: " ", count: width - n)
    }

    static func typeName(_ raw: UInt16) -> String {
        switch SocketType(rawValue: raw) {
        case .stream?: "STREAM"
        case .dgram?: "DGRAM"
        case .seqpacket?: "SEQPACKET"
        case .raw?: "RAW"
        case .rdm?: "RDM"
        case nil: "UNKNOWN"
        }
    }

    /// netstat's state words, from socket->state and the ACC flag.
    static func stateName(_ e: UnixSocketEntry) -> String {
        switch e.rawState {
        case 0: "FREE"
        case 1: e.isListening ? "LISTENING" : ""
        case 2: "CONNECTING"
        case 3: "CONNECTED"
        case 4: "DISCONNECTING"
        default: "UNKNOWN"
        }
    }

    /// netstat -na --unix -p, plus the peer's processes.
    public static func table(_ map: PeerMap) -> String {
        var out = tableHeader
        out.reserveCapacity(map.sockets.count * 110)
        for s in map.sockets {
            let e = s.entry
            let peer: String
            if let p = s.peer {
                peer = column(map.owners(of: p))
            } else if let l = s.pendingOn {
                peer = column(map.owners(of: l)) + " (pending)"
            } else {
                peer = "-"
            }
            out += "unix  "
            out += pad(String(e.refCount), 6) + " "
            out += pad(e.isListening ? "[ ACC ]" : "[ ]", 11) + " "
            out += pad(typeName(e.rawType), 10) + " "
            out += pad(stateName(e), 13) + " "
            out += pad(String(e.inode), 8) + " "
            out += pad(column(s.owners), 20) + " "
            out += pad(peer, 22) + " "
            out += (e.path?.display ?? "") + "\n"
        }
        return out
    }

    // MARK: kpeer --dump

    /// `name:pid:socket:peer_socket:peer_pid:peer_name` per (owner, peer owner).
    public static func dump(_ map: PeerMap) -> String {
        var out = ""
        for s in map.sockets {
            guard let target = s.peer ?? s.pendingOn else { continue }
            let theirs = processes(map.owners(of: target))
            for mine in processes(s.owners) {
                for other in theirs {
                    out += "\(Escape.dumpField(mine.name)):\(mine.pid):\(s.inode):\(target):\(other.pid):\(Escape.dumpField(other.name))\n"
                }
            }
        }
        return out
    }
}

extension Render {
    // MARK: kpeer --find-offset

    public static func offsetReport(_ report: OffsetReport) -> String {
        var out = "unix_sock.peer offset\n"
        for line in report.lines {
            out += "  " + pad(line.source.rawValue, 12) + " " + pad(line.value.map(String.init) ?? "-", 6) + " " + line.detail + "\n"
        }
        if let v = report.agreed {
            out += "all sources agree: \(v)\n"
        } else if report.lines.allSatisfy({ $0.value == nil }) {
            out += "no source gave an offset\n"
        } else {
            out += "sources disagree\n"
        }
        return out
    }
}
