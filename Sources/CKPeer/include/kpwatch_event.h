// One event of `kpeer --watch`, as the BPF program (Sources/Watch/BPF)
// writes it into the ring buffer and watch.c hands it to Swift. Both sides
// compile this one header, so the layout cannot drift.
#ifndef KPWATCH_EVENT_H
#define KPWATCH_EVENT_H

#include <linux/types.h>

enum {
    KPW_CONNECT = 1,        // connect() to a listener succeeded (stream, seqpacket)
    KPW_ACCEPT = 2,         // accept() returned that connection's server end
    KPW_CLOSE = 3,          // a socket's last reference went (close, exit)
    KPW_PAIR = 4,           // socketpair()
    KPW_DGRAM_CONNECT = 5,  // connect() of a datagram socket
    KPW_SEND = 6,           // the first datagram from one socket to another
};

enum {
    KPW_LISTENER = 1,       // close: the socket was listening
};

struct kp_watch_event {
    __u64 time_ns;          // CLOCK_MONOTONIC (bpf_ktime_get_ns)
    __u64 inode;            // the socket acted on
    __u64 peer_inode;       // the other end (0: none or unknown)
    __u64 listener_inode;   // connect, accept: the listening socket
    __u32 pid;              // the task that acted: its process (tgid)
    __u32 tid;              // and its thread
    __u32 peer_pid;         // connect: who listened; accept: who connected; pair: its maker (0: unknown)
    __u8 kind;              // KPW_*
    __u8 sock_type;         // SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_SEQPACKET 5
    __u16 flags;            // KPW_LISTENER
    char comm[16];          // the acting task's comm: any bytes at all
};

#endif
