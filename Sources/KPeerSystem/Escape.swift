/// Escaping for every output but JSON: whatever could break a line, a
/// column or a field, or change how a terminal shows the text, becomes
/// `\xNN`, one per byte (a character of several UTF-8 bytes is written as
/// all of them: U+202E is `\xe2\x80\xae`). Decoding every `\xNN` gives
/// back the exact bytes. Escaped:
/// - ASCII: controls, space, DEL, and `\` itself;
/// - every byte that is not part of valid UTF-8 (one `\xNN` each, the valid
///   characters around it stay as they are);
/// - characters that are controls (C1, U+0080–U+009F, such as U+0085 NEL
///   and U+009B CSI), format characters (zero-width U+200B–U+200D, U+FEFF,
///   bidi controls U+200E/F, U+202A–U+202E, U+2066–U+2069, U+061C), space
///   separators (U+00A0, U+2007, U+202F, U+3000, …), the line and paragraph
///   separators U+2028/U+2029, any other default-ignorable (invisible)
///   character, and characters this Unicode version does not assign;
/// - the output's own separator, when it passes one (`,` between the owners
///   of an --all row, `:` between --dump fields).
public enum Escape {
    public static func bytes(_ raw: [UInt8], also extra: UInt8? = nil) -> String {
        // Printable ASCII with nothing to escape, the usual name: as is.
        var plain = true
        for b in raw where b <= 0x20 || b >= 0x7F || b == 0x5C || b == extra {
            plain = false
            break
        }
        if plain { return String(decoding: raw, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count + 16)
        let hex = Array("0123456789abcdef".utf8)
        func escape(_ b: UInt8) { out += [0x5C, 0x78, hex[Int(b >> 4)], hex[Int(b & 15)]] }
        var i = 0
        while i < raw.count {
            let b = raw[i]
            if b < 0x80 {
                if b <= 0x20 || b == 0x7F || b == 0x5C || b == extra { escape(b) } else { out.append(b) }
                i += 1
                continue
            }
            guard let (scalar, n) = decode(raw, at: i) else {
                escape(b)  // not valid UTF-8: this byte alone
                i += 1
                continue
            }
            if hidesOrMoves(scalar) {
                for k in i..<i + n { escape(raw[k]) }
            } else {
                out += raw[i..<i + n]
            }
            i += n
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The well-formed UTF-8 sequence (Unicode's table 3-7: no overlong
    /// forms, no surrogates, nothing past U+10FFFF) of 2–4 bytes at `i`.
    static func decode(_ raw: [UInt8], at i: Int) -> (Unicode.Scalar, Int)? {
        let b0 = raw[i]
        let n: Int
        var lo: UInt8 = 0x80, hi: UInt8 = 0xBF  // the second byte's range
        switch b0 {
        case 0xC2...0xDF: n = 2
        case 0xE0: n = 3; lo = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: n = 3
        case 0xED: n = 3; hi = 0x9F
        case 0xF0: n = 4; lo = 0x90
        case 0xF1...0xF3: n = 4
        case 0xF4: n = 4; hi = 0x8F
        default: return nil
        }
        guard i + n <= raw.count, (lo...hi).contains(raw[i + 1]) else { return nil }
        var v = UInt32(b0) & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07)
        for k in 1..<n {
            let c = raw[i + k]
            guard c & 0xC0 == 0x80 else { return nil }
            v = v << 6 | UInt32(c & 0x3F)
        }
        return Unicode.Scalar(v).map { ($0, n) }
    }

    /// A character that breaks a line, moves the cursor, reorders the text
    /// around it, or shows as nothing (or as a plain space).
    static func hidesOrMoves(_ c: Unicode.Scalar) -> Bool {
        let p = c.properties
        switch p.generalCategory {
        case .control, .format, .spaceSeparator, .lineSeparator, .paragraphSeparator, .surrogate, .unassigned:
            return true
        default:
            return p.isDefaultIgnorableCodePoint
        }
    }

    /// A process name for `--dump`, where `:` separates fields.
    public static func dumpField(_ name: [UInt8]) -> String {
        bytes(name, also: UInt8(ascii: ":"))
    }

    public static func dumpField(_ name: String) -> String { dumpField(Array(name.utf8)) }

    /// A process name in an `--all` owner column, where `,` separates the
    /// owners. `/` is left: the pid before it is all digits, so a
    /// `PID/NAME` splits at its first `/`.
    public static func ownerName(_ name: [UInt8]) -> String {
        bytes(name, also: UInt8(ascii: ","))
    }

    public static func ownerName(_ name: String) -> String { ownerName(Array(name.utf8)) }
}
