/// Rows by a 64-bit word of theirs (a kernel address, an inode): open
/// addressing in two flat arrays, built in one pass. Every kcore run builds
/// a few over thousands of rows, and under emulation sorting them (or
/// SipHash, for Set and Dictionary) was a visible share of the run.
///
/// The words come from /proc/net/unix, where any user can forge rows: the
/// hash multiplier is random, drawn once a run, so no table can be made whose
/// words all collide (which would make building it quadratic).
struct WordIndex {
    private var keys: [UInt64]
    /// The first row listing each key; -1: an empty slot.
    private var rows: [Int32]
    private let shift: UInt64
    private let multiplier: UInt64
    /// The words listed more than once, each once, in the order their
    /// second listing came.
    private(set) var repeated: [UInt64] = []

    /// Odd, random, drawn once a run.
    private static let seed = UInt64.random(in: 1...UInt64.max) | 1

    /// Row i's word is `word(i)`, for i below `count`; rows whose word is
    /// `skipping` are left out. A closure over the index, not a mapped
    /// sequence: `rows.lazy.map(\.inode)` copies each whole row (retaining
    /// its name) to read one field.
    init(count: Int, skipping: UInt64? = nil, _ word: (Int) -> UInt64) {
        var bits: UInt64 = 4
        while (1 << bits) < count * 2 { bits += 1 }
        shift = 64 - bits
        multiplier = Self.seed
        keys = [UInt64](repeating: 0, count: 1 << bits)
        rows = [Int32](repeating: -1, count: 1 << bits)
        let mask = (1 << Int(bits)) - 1
        for row in 0..<count {
            let w = word(row)
            if w == skipping { continue }
            var slot = Int(truncatingIfNeeded: (w &* multiplier) >> shift)
            while true {
                if rows[slot] < 0 {
                    keys[slot] = w
                    rows[slot] = Int32(row)
                    break
                }
                if keys[slot] == w {
                    // Noted once, at its second row.
                    if !repeatedSeen(slot) { markRepeated(slot, w) }
                    break
                }
                slot = (slot + 1) & mask
            }
        }
    }

    /// The words of an array.
    init(_ words: [UInt64], skipping: UInt64? = nil) {
        self.init(count: words.count, skipping: skipping) { words[$0] }
    }

    /// Slots whose key is repeated, so each is noted once however often
    /// it is listed: the row's sign bit would be the cheapest mark, but
    /// rows must stay readable, so a small set of slots is kept instead.
    private var repeatedSlots: Set<Int> = []
    private func repeatedSeen(_ slot: Int) -> Bool { repeatedSlots.contains(slot) }
    private mutating func markRepeated(_ slot: Int, _ w: UInt64) {
        repeatedSlots.insert(slot)
        repeated.append(w)
    }

    /// The first row listing `word`, or nil.
    subscript(word: UInt64) -> Int? {
        let mask = keys.count - 1
        var slot = Int(truncatingIfNeeded: (word &* multiplier) >> shift)
        while rows[slot] >= 0 {
            if keys[slot] == word { return Int(rows[slot]) }
            slot = (slot + 1) & mask
        }
        return nil
    }

    func contains(_ word: UInt64) -> Bool { self[word] != nil }
}
