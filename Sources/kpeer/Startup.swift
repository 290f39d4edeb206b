import Glibc

// MARK: - First of all: no program named by the environment

// The Swift runtime reads SWIFT_BACKTRACE (and SWIFT_ROOT, which places the
// backtracer) in a static initializer, before main, and on SIGQUIT, SIGSEGV
// and the other crash signals runs the program they name: as root, here.
//
// - Startup.early, an .init_array entry of priority 101: in the static
//   binary it runs before the runtime's initializers, so the runtime never
//   sees a SWIFT_* variable of the caller's. Any SWIFT_* but
//   SWIFT_BACKTRACE=enable=no: execve /proc/self/exe, same argv, with an
//   environment without them plus SWIFT_BACKTRACE=enable=no (no backtracer
//   at all, not even the toolchain's, which would be handed
//   LD_LIBRARY_PATH). If that exec fails: they are removed in place and
//   enable=no takes the first freed slot. environ itself is never
//   reallocated (no setenv): the runtime finds argv by walking back from
//   it on the initial stack, later in the same initializer pass.
// - Startup.inMain, the first thing main does: the same check once more (in
//   a dynamically linked build libswiftCore's initializers run before the
//   entry above, which then re-execs), and a handler found on one of the
//   runtime's crash signals (only the runtime's: handlers never survive an
//   exec) goes back to the default, so SIGQUIT or a crash ends kpeer and
//   runs nothing.
//
// early may run before the runtime is initialised: C calls, raw pointers
// and static strings only; nothing that allocates or needs type metadata.
enum Startup {
    typealias CStrings = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>

    static func cString(_ s: StaticString) -> UnsafePointer<CChar> {
        UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
    }

    /// The one SWIFT_ setting kpeer runs with.
    static var disabled: UnsafePointer<CChar> { cString("SWIFT_BACKTRACE=enable=no") }

    static func isSwift(_ p: UnsafePointer<CChar>) -> Bool { strncmp(p, cString("SWIFT_"), 6) == 0 }

    static func early(_ argv: CStrings?) {
        let env = environ  // at exec, never NULL: the kernel passes an array, if empty
        var count = 0
        var foreign = false
        while let p = env[count] {
            if isSwift(p) && strcmp(p, disabled) != 0 { foreign = true }
            count += 1
        }
        guard foreign else { return }
        if let argv { reexec(argv, env, count) }
        // The exec failed: drop them here, in place.
        var kept = 0
        var i = 0
        while i < count {
            if let p = env[i], !isSwift(p) {
                env[kept] = p
                kept += 1
            }
            i += 1
        }
        env[kept] = UnsafeMutablePointer(mutating: disabled)  // at least one slot was freed
        env[kept + 1] = nil
    }

    static func inMain() {
        early(CommandLine.unsafeArgv)
        defaultIfHandled(SIGQUIT)
        defaultIfHandled(SIGABRT)
        defaultIfHandled(SIGBUS)
        defaultIfHandled(SIGFPE)
        defaultIfHandled(SIGILL)
        defaultIfHandled(SIGSEGV)
        defaultIfHandled(SIGTRAP)
    }

    /// execve(/proc/self/exe) with the SWIFT_* variables left out; returns
    /// only if it failed.
    static func reexec(_ argv: CStrings, _ env: CStrings, _ count: Int) {
        guard let raw = malloc((count + 2) * 8) else { return }
        let clean = raw.assumingMemoryBound(to: UnsafeMutablePointer<CChar>?.self)
        var n = 0
        var i = 0
        while i < count {
            if let p = env[i], !isSwift(p) {
                clean[n] = p
                n += 1
            }
            i += 1
        }
        clean[n] = UnsafeMutablePointer(mutating: disabled)
        clean[n + 1] = nil
        execve(cString("/proc/self/exe"), argv, clean)
        free(raw)
    }

    /// SIG_DFL for `sig` if a handler (not SIG_DFL, not SIG_IGN) is on it.
    static func defaultIfHandled(_ sig: Int32) {
        var old = sigaction()
        guard sigaction(sig, nil, &old) == 0 else { return }
        if unsafeBitCast(old.__sigaction_handler, to: UInt.self) > 1 {
            var dfl = sigaction()  // zeroed: SIG_DFL, no flags, empty mask
            sigaction(sig, &dfl, nil)
        }
    }
}

/// The .init_array entry: glibc calls it with (argc, argv, envp).
@used @section(".init_array.00101")
let kpeerStartup: @convention(c) (Int32, Startup.CStrings?, Startup.CStrings?) -> Void = { _, argv, _ in
    Startup.early(argv)
}
