import Foundation

extension Support {
    /// What `kpeer --version` must print, read from the one place the
    /// version is written: the CommandConfiguration in
    /// Sources/kpeer/KPeerCommand.swift (the Debian package takes it from
    /// the binary's --version too). Empty if that line is missing, which
    /// fails every test that compares with it.
    static let versionLine: String = {
        let source = (try? String(contentsOfFile: packageRoot + "/Sources/kpeer/KPeerCommand.swift", encoding: .utf8)) ?? ""
        guard let match = source.firstMatch(of: /\n\s*version: "(kpeer [0-9][A-Za-z0-9.+~]*)"/) else { return "" }
        return String(match.1) + "\n"
    }()
}
