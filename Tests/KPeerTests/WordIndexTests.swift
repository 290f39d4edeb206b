import Testing
@testable import PeerResolution

/// A small seeded generator (SplitMix64), so a failing case can be run
/// again from the seed its message prints.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// WordIndex against a Dictionary built from the same words: the first row
/// of each word, and the repeated words in the order of their second row.
@Suite(.layered) struct WordIndexTests {
    /// Fixed seeds, so a run is reproducible, and one fresh seed a run for
    /// coverage (printed with any failure).
    static let seeds: [UInt64] = [1, 0xdead_beef, 0x0123_4567_89ab_cdef, UInt64.random(in: 0...UInt64.max)]
    static let slabBase: UInt64 = 0xffff_8880_0000_0000

    struct Truth {
        var first: [UInt64: Int] = [:]
        var repeated: [UInt64] = []
        init(_ words: [UInt64], skipping: UInt64?) {
            var listings: [UInt64: Int] = [:]
            for (row, w) in words.enumerated() where w != skipping {
                let n = listings[w, default: 0]
                if n == 0 { first[w] = row }
                if n == 1 { repeated.append(w) }
                listings[w] = n + 1
            }
        }
    }

    /// Checks both initialisers against the truth; `label` names the case
    /// (and its seed) in every message.
    func check(_ words: [UInt64], skipping: UInt64?, _ label: String, absent: [UInt64] = []) {
        let truth = Truth(words, skipping: skipping)
        let byRow = WordIndex(count: words.count, skipping: skipping) { words[$0] }
        let byArray = WordIndex(words, skipping: skipping)

        var wrong: [String] = []
        for (w, row) in truth.first {
            for (name, index) in [("count:", byRow), ("array", byArray)] where index[w] != row || !index.contains(w) {
                wrong.append("\(name) [0x\(String(w, radix: 16))] = \(index[w].map(String.init) ?? "nil"), first row \(row)")
            }
        }
        // Absent words: neighbours of present ones (same low bits, same
        // high bits), the skipped word, and whatever the case adds.
        var probes = absent + [0, 1, UInt64.max, UInt64.max - 1, Self.slabBase]
        if let skipping { probes.append(skipping) }
        for w in words.prefix(2000) {
            probes += [w &+ 1, w &- 1, w ^ (1 << 63), w &+ 1024, w &- 1024, w ^ 0xffff_ffff]
        }
        for w in probes where truth.first[w] == nil {
            for (name, index) in [("count:", byRow), ("array", byArray)] where index[w] != nil || index.contains(w) {
                wrong.append("\(name) [0x\(String(w, radix: 16))] = \(index[w].map(String.init) ?? "nil"), but it is not listed")
            }
        }
        #expect(wrong.isEmpty, "\(label): \(wrong.count) wrong lookups, first: \(wrong.prefix(5))")

        for (name, index) in [("count:", byRow), ("array", byArray)] {
            #expect(Set(index.repeated) == Set(truth.repeated),
                    "\(label) \(name): repeated \(index.repeated.count) words, truth \(truth.repeated.count)")
            #expect(index.repeated.count == Set(index.repeated).count, "\(label) \(name): a word repeated twice in `repeated`")
            #expect(index.repeated == truth.repeated, "\(label) \(name): `repeated` not in the order of second listings")
        }
    }

    /// `n` words, about a third drawn from a small pool (so many repeat),
    /// some zero, the rest anything.
    static func mixed(_ n: Int, _ rng: inout SplitMix64) -> [UInt64] {
        let pool = (0..<max(1, n / 4)).map { _ in rng.next() }
        return (0..<n).map { _ in
            switch rng.next() % 6 {
            case 0, 1: pool[Int(rng.next() % UInt64(pool.count))]
            case 2: 0
            default: rng.next()
            }
        }
    }

    @Test func randomListsOfEverySize() {
        for seed in Self.seeds {
            var rng = SplitMix64(seed: seed)
            // Around the table's growth points (16 slots, then doubling at
            // twice the count), powers of two among them.
            for n in [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 100, 1000, 1024, 4096, 5000, 65536] {
                let words = Self.mixed(n, &rng)
                let absent = (0..<200).map { _ in rng.next() }
                check(words, skipping: nil, "seed \(seed) n \(n)", absent: absent)
                check(words, skipping: 0, "seed \(seed) n \(n) skipping 0", absent: absent)
            }
        }
    }

    @Test func distinctWordsFillingHalfTheTable() {
        // n distinct words where the table is exactly 2n slots: the
        // fullest it gets, so probing wraps past the end most often.
        for seed in Self.seeds {
            var rng = SplitMix64(seed: seed)
            for n in [8, 16, 128, 2048, 32768] {
                var set = Set<UInt64>()
                while set.count < n { set.insert(rng.next()) }
                var words = Array(set)
                words.shuffle(using: &rng)
                check(words, skipping: nil, "seed \(seed) distinct \(n)")
            }
        }
    }

    @Test func slabAddressesSharingLowBits() {
        // unix_sock objects in a 1 KiB slab: every address has the same low
        // ten bits and they differ only in a narrow band.
        for seed in Self.seeds {
            var rng = SplitMix64(seed: seed)
            for n in [3000, 4096] {
                var words = (0..<UInt64(n)).map { Self.slabBase + $0 * 1024 }
                // Twins: some addresses listed again, some three times.
                for _ in 0..<(n / 10) { words.append(words[Int(rng.next() % UInt64(n))]) }
                words += [UInt64](repeating: 0, count: 50)
                words.shuffle(using: &rng)
                let absent = (0..<500).map { Self.slabBase + UInt64(n + $0) * 1024 } + (0..<500).map { Self.slabBase + UInt64($0) * 1024 + 8 }
                check(words, skipping: 0, "seed \(seed) slab \(n)", absent: absent)
                check(words, skipping: nil, "seed \(seed) slab \(n) zeros kept", absent: absent)
            }
            // Only high bits differ (pages of a huge mapping, inodes << 32).
            let high = (0..<UInt64(1024)).map { $0 << 54 } + (0..<UInt64(1024)).map { ($0 << 32) | 0xabcd }
            check(high.shuffled(using: &rng), skipping: 0, "seed \(seed) high bits")
        }
    }

    @Test func degenerateLists() {
        check([], skipping: nil, "empty", absent: [0, 42])
        check([], skipping: 0, "empty skipping 0", absent: [0, 42])
        check([0], skipping: nil, "one zero")
        check([0], skipping: 0, "one zero skipped")
        check([Self.slabBase], skipping: 0, "one address")
        check([UInt64.max], skipping: nil, "one max")
        for n in [2, 16, 1000] {
            check([UInt64](repeating: 0, count: n), skipping: nil, "\(n) zeros")
            check([UInt64](repeating: 0, count: n), skipping: 0, "\(n) zeros skipped")
            check([UInt64](repeating: Self.slabBase, count: n), skipping: 0, "\(n) equal")
        }
        // A skipped word other than 0, around others.
        check([5, 7, 5, 9, 7, 7, 5], skipping: 7, "skipping 7")
    }

    @Test func mostlyRepeatedLargeList() {
        for seed in Self.seeds {
            var rng = SplitMix64(seed: seed)
            // 100k rows over 300 words: each repeated hundreds of times.
            let pool = (0..<300).map { _ in Self.slabBase + (rng.next() % 100_000) * 64 }
            let words = (0..<100_000).map { _ in pool[Int(rng.next() % 300)] }
            check(words, skipping: 0, "seed \(seed) 100k over 300")
        }
    }
}
