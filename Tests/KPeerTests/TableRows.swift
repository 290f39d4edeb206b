/// One row of the `--all` table (`-e` too), read word by word rather than
/// cut at byte offsets: a wide owner column moves every column after it.
/// Words are unambiguous because names and paths are escaped (no blanks in
/// them), the flags are `[ ]` or `[ ACC ]`, and the state is one of
/// netstat's words or nothing at all.
struct TableRow: Equatable {
    var refCount: Int
    var accepting: Bool
    var type: String
    /// "" where netstat prints no state (an unconnected datagram socket).
    var state: String
    var inode: UInt64
    /// The first holder and `,+N`, or every holder under -e; "-" for none.
    var owners: String
    /// The peer's holders, or the listener's for a pending client; "-" for none.
    var peer: String
    /// The peer column ends in "(pending)".
    var pending: Bool
    /// Every word after the peer: under -e the six fact cells and the three
    /// identity cells first; then the path, and a `net:[N]` mark.
    var rest: [String]
    /// The row as printed.
    var line: String

    static let states: Set<Substring> = ["FREE", "LISTENING", "CONNECTING", "CONNECTED", "DISCONNECTING", "UNKNOWN"]

    init?<S: StringProtocol>(_ text: S) {
        let w = text.split(separator: " ", omittingEmptySubsequences: true).map { Substring($0) }
        guard w.count >= 8, w[0] == "unix", let refs = Int(w[1]), w[2] == "[" else { return nil }
        var i = 3
        accepting = w[i] == "ACC"
        if accepting { i += 1 }
        guard w[i] == "]" else { return nil }
        i += 1
        type = String(w[i])
        i += 1
        state = i < w.count && Self.states.contains(w[i]) ? String(w[i]) : ""
        if !state.isEmpty { i += 1 }
        guard i + 2 < w.count, let inode = UInt64(w[i]) else { return nil }
        refCount = refs
        self.inode = inode
        owners = String(w[i + 1])
        peer = String(w[i + 2])
        i += 3
        pending = i < w.count && w[i] == "(pending)"
        if pending { i += 1 }
        rest = w[i...].map(String.init)
        line = String(text)
    }

    /// The rows of a table, by inode (the header and other lines skipped).
    static func rows(_ table: String) -> [UInt64: TableRow] {
        var out: [UInt64: TableRow] = [:]
        for line in table.split(separator: "\n") {
            if let r = TableRow(line) { out[r.inode] = r }
        }
        return out
    }
}
