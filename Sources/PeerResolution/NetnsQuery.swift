import KPeerSystem
import SocketInventory

/// `kpeer --netns PID|PATH @NAME`: an abstract name looked up in another
/// network namespace, as `ip netns exec NS kpeer @NAME` would, without the
/// user entering it. Abstract names belong to a network namespace (the
/// same name can be bound once in each), so the question needs one.
public enum NetnsQuery {
    /// `options` that also read `ns`, which no process may be in (a
    /// namespace kept only by its /run/netns file).
    public static func options(_ options: ResolverOptions, reading ns: NetNamespace) -> ResolverOptions {
        var o = options
        if !o.extraNamespaces.contains(where: { $0.inode == ns.inode }) { o.extraNamespaces.append(ns) }
        return o
    }

    /// Checks that kpeer may enter `ns` (CAP_SYS_ADMIN), before a whole
    /// resolution that would otherwise leave it out as skipped.
    public static func checkEnterable(_ ns: NetNamespace, own: UInt64) throws(KPeerError) {
        guard ns.inode != own else { return }
        try NetNamespaces.inside(ns) { () throws(KPeerError) in () }
    }

    /// Resolves with `ns` read and answers for `@name` there.
    public static func resolve(_ name: [UInt8], in ns: NetNamespace,
                               options: ResolverOptions) throws(KPeerError) -> (resolution: Resolution, answer: PathAnswer) {
        try checkEnterable(ns, own: NetNamespaces.current(procRoot: options.procRoot) ?? 0)
        let r = try Resolver.resolve(Self.options(options, reading: ns))
        return (r, try answer(name, in: ns.inode, from: r))
    }

    /// The answer for `@name` bound in namespace `netns`, from a resolution
    /// that read it. PathQuery answers for kpeer's own namespace; here it is
    /// given a view of the resolution that holds only the sockets of
    /// `netns`, with `netns` as its own (so no socket of another namespace
    /// can be taken for one there). Clients' owners come from the whole
    /// owner table, wherever their processes are.
    public static func answer(_ name: [UInt8], in netns: UInt64, from r: Resolution) throws(KPeerError) -> PathAnswer {
        var view = r
        view.map = r.map.restricted(to: Set(r.map.sockets.filter { r.netns(of: $0.entry) == netns }.map(\.inode)))
        view.ownNetns = netns
        do {
            return try PathQuery.answer(.abstract(name), in: view)
        } catch where error.kind == .notFound {
            let shown = SocketPath(bytes: name, isAbstract: true).display
            throw KPeerError(.notFound, "no socket is bound to \(shown) in network namespace \(NetNamespace.label(netns))",
                             fix: "list that namespace's abstract names with kpeer --all --listening (rows marked \(NetNamespace.label(netns)))")
        }
    }
}
