import CKPeer

/// What kpeer sets for its whole process, in one place, once, at start.
public enum ProcessPolicy {
    /// glibc raises its mmap threshold to the size of each large block
    /// freed, so the big arrays of one phase (a whole /proc/net/unix, the
    /// parsed entries) end up on the heap and stay resident after they are
    /// freed, under the next phase's: ~12 MB more peak RSS at 100k sockets.
    /// A fixed threshold (the default, 128 KiB) keeps them in mappings that
    /// go back to the kernel on free.
    public static func apply() {
        _ = kp_fixed_mmap_threshold(128 << 10)
    }
}
