// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The BPF side of `kpeer --watch`: every unix socket connection as it
// happens, from the kernel's own af_unix paths, into one ring buffer.
//
// Compiled at build time by Debian's clang (-target bpf, CO-RE), embedded in
// kpeer by the UnixWatchBPF plugin, loaded by Sources/CKPeer/watch.c. Every
// hook exists twice: fentry/fexit (BTF trampolines, cheap) and kprobe/
// kretprobe (where fentry cannot attach); watch.c loads one of each pair.
//
// The struct layouts below are the few members read, not the kernel's
// structs: preserve_access_index makes libbpf move each read to where the
// running kernel has that member (its BTF), so one object fits 6.1 and 6.12.
#include <linux/types.h>
#include <linux/bpf.h>

// Kernel x86-64 register names for bpf_tracing.h's PT_REGS_* (the kprobe flavour).
#define __VMLINUX_H__ 1
struct pt_regs {
    unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
} __attribute__((preserve_access_index));

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "kpwatch_event.h"

// The kernel runs tracing programs that use GPL-only helpers
// (bpf_probe_read_kernel) only under a GPL-compatible licence: this file,
// unlike the rest of kpeer, is dual-licensed (see the SPDX line).
char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TCP_LISTEN 10

struct inode {
    unsigned long i_ino;
} __attribute__((preserve_access_index));

struct upid {
    int nr;
} __attribute__((preserve_access_index));

struct pid {
    struct upid numbers[1];
} __attribute__((preserve_access_index));

struct sock_common {
    unsigned char skc_state;
} __attribute__((preserve_access_index));

struct socket;

struct sock {
    struct sock_common __sk_common;
    struct socket *sk_socket;
    __u16 sk_type;
    struct pid *sk_peer_pid;
} __attribute__((preserve_access_index));

struct socket {
    struct sock *sk;
} __attribute__((preserve_access_index));

// sock_alloc() allocates the struct socket and its inode together:
// SOCK_INODE(sock) is this vfs_inode, and its i_ino the inode ss shows.
struct socket_alloc {
    struct socket socket;
    struct inode vfs_inode;
} __attribute__((preserve_access_index));

struct unix_sock {
    struct sock sk;
    struct sock *peer;
} __attribute__((preserve_access_index));

struct msghdr;
struct sockaddr;

// Events to user space. Its size is set by watch.c before load.
struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 22);
} events SEC(".maps");

// Events the ring buffer had no room for: kpeer reports them, never
// pretends it saw everything.
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} lost SEC(".maps");

// A connection not accepted yet: the server end (an embryo, no inode yet)
// → the client's inode. accept() finds the client here even when it has
// already closed (its struct socket is gone by then).
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 65536);
    __type(key, __u64);
    __type(value, __u64);
} pending SEC(".maps");

struct send_pair {
    __u64 from, to;
};

// security_unix_may_send() names the receiver of a datagram about to be
// sent; its sendmsg's return says whether it was sent. Per thread.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, struct send_pair);
} sending SEC(".maps");

// (sender, receiver) pairs already reported: only a first send is an event.
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 65536);
    __type(key, struct send_pair);
    __type(value, __u8);
} seen SEC(".maps");

// Arguments saved at a kprobe for its kretprobe (which has none), per thread.
struct args3 {
    __u64 a, b, c;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, struct args3);
} kargs SEC(".maps");

static __always_inline __u64 sock_ino(struct socket *sock)
{
    if (!sock)
        return 0;
    struct socket_alloc *a = (struct socket_alloc *)sock;
    return BPF_CORE_READ(a, vfs_inode.i_ino);
}

static __always_inline __u64 sk_ino(struct sock *sk)
{
    if (!sk)
        return 0;
    return sock_ino(BPF_CORE_READ(sk, sk_socket));
}

static __always_inline struct sock *unix_peer(struct sock *sk)
{
    return BPF_CORE_READ((struct unix_sock *)sk, peer);
}

// The pid as the initial pid namespace numbers it (as bpf_get_current_pid_tgid).
static __always_inline __u32 pid_nr(struct pid *p)
{
    if (!p)
        return 0;
    return BPF_CORE_READ(p, numbers[0].nr);
}

static __always_inline void emit(__u8 kind, __u16 type, __u64 ino, __u64 peer, __u64 listener, __u32 peer_pid,
                                 __u16 flags)
{
    struct kp_watch_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e) {
        __u32 zero = 0;
        __u64 *n = bpf_map_lookup_elem(&lost, &zero);
        if (n)
            __sync_fetch_and_add(n, 1);
        return;
    }
    __u64 id = bpf_get_current_pid_tgid();
    e->time_ns = bpf_ktime_get_ns();
    e->inode = ino;
    e->peer_inode = peer;
    e->listener_inode = listener;
    e->pid = id >> 32;
    e->tid = (__u32)id;
    e->peer_pid = peer_pid;
    e->kind = kind;
    e->sock_type = (__u8)type;
    e->flags = flags;
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    bpf_ringbuf_submit(e, 0);
}

// security_unix_stream_connect(sk, other, newsk) returned 0: from here on
// unix_stream_connect() cannot fail. sk is the client, other the listener,
// newsk the server end that accept() will hand out.
static __always_inline void on_connect(struct sock *sk, struct sock *other, struct sock *newsk)
{
    __u64 client = sk_ino(sk);
    __u64 key = (__u64)newsk;
    bpf_map_update_elem(&pending, &key, &client, BPF_ANY);
    // The listener's sk_peer_pid is the process that called listen().
    emit(KPW_CONNECT, BPF_CORE_READ(sk, sk_type), client, 0, sk_ino(other),
         pid_nr(BPF_CORE_READ(other, sk_peer_pid)), 0);
}

// unix_accept(sock, newsock) returned: newsock->sk is set only on success.
static __always_inline void on_accept(struct socket *sock, struct socket *newsock)
{
    struct sock *sk = BPF_CORE_READ(newsock, sk);
    if (!sk)
        return;
    __u64 key = (__u64)sk;
    __u64 client = 0;
    __u64 *c = bpf_map_lookup_elem(&pending, &key);
    if (c) {
        client = *c;
        bpf_map_delete_elem(&pending, &key);
    } else {
        client = sk_ino(unix_peer(sk));  // connected before the watch began
    }
    // An accepted socket's sk_peer_pid is the process that called connect().
    emit(KPW_ACCEPT, BPF_CORE_READ(sk, sk_type), sock_ino(newsock), client, sock_ino(sock),
         pid_nr(BPF_CORE_READ(sk, sk_peer_pid)), 0);
}

// unix_release_sock(sk, embrion), on entry: sk_socket is still there.
static __always_inline void on_release(struct sock *sk)
{
    struct socket *sock = BPF_CORE_READ(sk, sk_socket);
    if (!sock) {
        // A server end never accepted (its listener closed, or connect failed).
        __u64 key = (__u64)sk;
        bpf_map_delete_elem(&pending, &key);
        return;
    }
    __u16 flags = BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_LISTEN ? KPW_LISTENER : 0;
    emit(KPW_CLOSE, BPF_CORE_READ(sk, sk_type), sock_ino(sock), sk_ino(unix_peer(sk)), 0, 0, flags);
}

static __always_inline void on_pair(struct socket *a, struct socket *b)
{
    struct sock *sk = BPF_CORE_READ(a, sk);
    emit(KPW_PAIR, sk ? BPF_CORE_READ(sk, sk_type) : 0, sock_ino(a), sock_ino(b), 0,
         bpf_get_current_pid_tgid() >> 32, 0);
}

// unix_dgram_connect(sock, ...) returned 0: connected, or disconnected (AF_UNSPEC).
static __always_inline void on_dgram_connect(struct socket *sock)
{
    __u64 id = bpf_get_current_pid_tgid();
    bpf_map_delete_elem(&sending, &id);  // its security_unix_may_send() was no send
    struct sock *sk = BPF_CORE_READ(sock, sk);
    if (!sk)
        return;
    struct sock *peer = unix_peer(sk);
    if (!peer)
        return;
    emit(KPW_DGRAM_CONNECT, BPF_CORE_READ(sk, sk_type), sock_ino(sock), sk_ino(peer), 0, 0, 0);
}

static __always_inline void on_may_send(struct socket *sock, struct socket *other)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct send_pair p = {sock_ino(sock), sock_ino(other)};
    bpf_map_update_elem(&sending, &id, &p, BPF_ANY);
}

static __always_inline void on_sent(long ret)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct send_pair *p = bpf_map_lookup_elem(&sending, &id);
    if (!p)
        return;  // a seqpacket send, or none that got as far as a receiver
    struct send_pair pair = *p;
    bpf_map_delete_elem(&sending, &id);
    if (ret < 0)
        return;
    __u8 one = 1;
    if (bpf_map_update_elem(&seen, &pair, &one, BPF_NOEXIST) != 0)
        return;  // sent before
    emit(KPW_SEND, 2, pair.from, pair.to, 0, 0, 0);
}

// ---- fentry / fexit ----

SEC("fexit/security_unix_stream_connect")
int BPF_PROG(kpw_connect, struct sock *sk, struct sock *other, struct sock *newsk, int ret)
{
    if (ret == 0)
        on_connect(sk, other, newsk);
    return 0;
}

// Only the first two arguments: unix_accept() has four on 6.1 and three on
// 6.12, and newsock->sk says whether it succeeded.
SEC("fexit/unix_accept")
int BPF_PROG(kpw_accept, struct socket *sock, struct socket *newsock)
{
    on_accept(sock, newsock);
    return 0;
}

SEC("fentry/unix_release_sock")
int BPF_PROG(kpw_release, struct sock *sk)
{
    on_release(sk);
    return 0;
}

SEC("fexit/unix_socketpair")
int BPF_PROG(kpw_pair, struct socket *a, struct socket *b, int ret)
{
    if (ret == 0)
        on_pair(a, b);
    return 0;
}

SEC("fexit/unix_dgram_connect")
int BPF_PROG(kpw_dconnect, struct socket *sock, struct sockaddr *addr, int alen, int flags, int ret)
{
    if (ret == 0)
        on_dgram_connect(sock);
    return 0;
}

SEC("fentry/security_unix_may_send")
int BPF_PROG(kpw_maysend, struct socket *sock, struct socket *other)
{
    on_may_send(sock, other);
    return 0;
}

SEC("fexit/unix_dgram_sendmsg")
int BPF_PROG(kpw_sent, struct socket *sock, struct msghdr *msg, __u64 len, int ret)
{
    on_sent(ret);
    return 0;
}

// ---- kprobe / kretprobe ----

static __always_inline void save(__u64 a, __u64 b, __u64 c)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct args3 v = {a, b, c};
    bpf_map_update_elem(&kargs, &id, &v, BPF_ANY);
}

static __always_inline int restore(struct args3 *out)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct args3 *v = bpf_map_lookup_elem(&kargs, &id);
    if (!v)
        return 0;
    *out = *v;
    bpf_map_delete_elem(&kargs, &id);
    return 1;
}

SEC("kprobe/security_unix_stream_connect")
int BPF_KPROBE(kpwk_connect_in, struct sock *sk, struct sock *other, struct sock *newsk)
{
    save((__u64)sk, (__u64)other, (__u64)newsk);
    return 0;
}

SEC("kretprobe/security_unix_stream_connect")
int BPF_KRETPROBE(kpwk_connect_out, int ret)
{
    struct args3 v;
    if (restore(&v) && ret == 0)
        on_connect((struct sock *)v.a, (struct sock *)v.b, (struct sock *)v.c);
    return 0;
}

SEC("kprobe/unix_accept")
int BPF_KPROBE(kpwk_accept_in, struct socket *sock, struct socket *newsock)
{
    save((__u64)sock, (__u64)newsock, 0);
    return 0;
}

SEC("kretprobe/unix_accept")
int BPF_KRETPROBE(kpwk_accept_out, int ret)
{
    struct args3 v;
    if (restore(&v) && ret == 0)
        on_accept((struct socket *)v.a, (struct socket *)v.b);
    return 0;
}

SEC("kprobe/unix_release_sock")
int BPF_KPROBE(kpwk_release, struct sock *sk)
{
    on_release(sk);
    return 0;
}

// unix_socketpair() always returns 0.
SEC("kprobe/unix_socketpair")
int BPF_KPROBE(kpwk_pair, struct socket *a, struct socket *b)
{
    on_pair(a, b);
    return 0;
}

SEC("kprobe/unix_dgram_connect")
int BPF_KPROBE(kpwk_dconnect_in, struct socket *sock)
{
    save((__u64)sock, 0, 0);
    return 0;
}

SEC("kretprobe/unix_dgram_connect")
int BPF_KRETPROBE(kpwk_dconnect_out, int ret)
{
    struct args3 v;
    if (restore(&v) && ret == 0)
        on_dgram_connect((struct socket *)v.a);
    return 0;
}

SEC("kprobe/security_unix_may_send")
int BPF_KPROBE(kpwk_maysend, struct socket *sock, struct socket *other)
{
    on_may_send(sock, other);
    return 0;
}

SEC("kretprobe/unix_dgram_sendmsg")
int BPF_KRETPROBE(kpwk_sent, int ret)
{
    on_sent(ret);
    return 0;
}
