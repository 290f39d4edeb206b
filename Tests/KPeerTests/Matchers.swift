import KPeerSystem

/// The kind of KPeerError `body` throws, or nil when it throws none.
func kindOf(_ body: () throws -> Void) -> KPeerError.Kind? {
    do {
        try body()
        return nil
    } catch let e as KPeerError {
        return e.kind
    } catch {
        return nil
    }
}

/// The error a call throws, if it throws a KPeerError.
func errorOf(_ body: () throws -> Void) -> KPeerError? {
    do { try body() } catch let e as KPeerError { return e } catch { return nil }
    return nil
}
