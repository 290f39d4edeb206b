import Foundation
import Testing

/// The layers of the suite, so one can be run or left out (Docs/TESTING.md).
/// A test with none of them runs on synthetic input alone (in memory, or
/// files it writes itself), anywhere, as any user.
extension Tag {
    /// Needs root: other users' /proc/PID/fd, namespaces, cgroups, sysctls,
    /// the kptr_restrict lock, files only root may make.
    @Tag static var root: Self
    /// Makes live sockets and processes on this machine (fixture programs,
    /// socketpairs, namespaces, containers) and checks kpeer against them.
    @Tag static var fixture: Self
    /// Runs the built kpeer executable.
    @Tag static var binary: Self
}

/// Runs a test only in the layers KPEER_TEST_TAGS asks for: `swift test
/// --filter tag:NAME` is newer than the swift-testing of Swift 6.3, so
/// every suite carries this trait and it cancels (skips) the tests of the
/// other layers. A comma-separated list: `root,binary` runs the tests
/// tagged with either, `none` those with no layer tag, `-root` everything
/// but root's. Unset or empty: everything.
struct LayerSelection: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    static let layers: Set<Tag> = [.root, .fixture, .binary]

    /// The words of KPEER_TEST_TAGS: the tag names wanted (any of them),
    /// and the ones left out.
    static let asked: (wanted: Set<String>, unwanted: Set<String>) = {
        let words = (ProcessInfo.processInfo.environment["KPEER_TEST_TAGS"] ?? "")
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return (Set(words.filter { !$0.hasPrefix("-") }), Set(words.filter { $0.hasPrefix("-") }.map { String($0.dropFirst()) }))
    }()

    /// Whether a test with `tags` is in the layers asked for.
    static func selects(_ tags: Set<Tag>, wanted: Set<String> = asked.wanted, unwanted: Set<String> = asked.unwanted) -> Bool {
        let names = Set(tags.intersection(layers).map(name))
        if !names.isDisjoint(with: unwanted) || (names.isEmpty && unwanted.contains("none")) { return false }
        if wanted.isEmpty { return true }
        return !names.isDisjoint(with: wanted) || (names.isEmpty && wanted.contains("none"))
    }

    static func name(_ tag: Tag) -> String {
        switch tag {
        case .root: "root"
        case .fixture: "fixture"
        case .binary: "binary"
        default: "\(tag)"
        }
    }

    /// Asked of each test function before its cases run (so a
    /// parameterized one is left out whole), and of each case.
    func scopeProvider(for test: Test, testCase: Test.Case?) -> Self? {
        test.isSuite ? nil : self
    }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        guard Self.selects(test.tags) else {
            try Test.cancel("not in the layers KPEER_TEST_TAGS asks for")
        }
        try await function()
    }
}

extension Trait where Self == LayerSelection {
    /// See LayerSelection: on every suite.
    static var layered: Self { LayerSelection() }
}
