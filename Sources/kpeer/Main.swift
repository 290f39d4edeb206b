import ArgumentParser
import Glibc
import KPeerSystem

@main
enum Main {
    static func main() {
        // Before anything else (see Startup): no program named by the environment.
        Startup.inMain()
        ProcessPolicy.apply()
        _ = Output.closedAtStart
        // Debug builds (every CLI test) hold the written-out help to the table.
        assert(Help.discussion == Help.generatedDiscussion, "Help.discussion differs from KPeerError.exitStatuses")
        let command: KPeerCommand
        do {
            command = try KPeerCommand.parse()
        } catch {
            var error = error
            var code = KPeerCommand.exitCode(for: error)
            if code == .failure {  // validate() refused it: does ArgumentParser have a word first?
                KPeerCommand.checksOff = true
                do { _ = try KPeerCommand.parse() } catch let first where KPeerCommand.exitCode(for: first) == .validationFailure {
                    error = first
                    code = .validationFailure
                } catch {}
            }
            if code == .success {  // --help, --version, a completion script
                do { try Output.answer(KPeerCommand.fullMessage(for: error) + "\n") } catch { fail(error) }
                exit(0)
            }
            let message = KPeerCommand.message(for: error).split(separator: "\n").first.map(String.init) ?? "bad usage"
            // ArgumentParser's own complaints (64) say nothing of what to do;
            // those of validate() are KPeerErrors, usage errors all, that do.
            fail(code == .validationFailure ? KPeerError(.usage, message, fix: "see kpeer --help") : KPeerError(.usage, message))
        }
        do {
            try Trace.phase("run") { () throws(KPeerError) in try command.execute() }
        } catch {
            fail(error)
        }
    }

    static func fail(_ error: KPeerError) -> Never {
        Output.message("kpeer: \(error)\n")
        exit(error.exitStatus)
    }
}
