// watch_check: judges `kpeer --watch --json` against churn's own logs.
//
//   watch_check LOGDIR EVENTS
//
// churn (Tests/Reliability/churn.c) writes LOGDIR/log.PID: P (a client
// connected to a listener), L (a link: accepted, or a socketpair), X (a
// socket closed). Every one of them must be an event of kpeer's with the
// right inodes and pids (missed), and every event of a churn process must be
// one of them (invented):
//
//   P client listener t pid        connect: inode=client pid=pid listener_inode=listener
//   L a b t pa pb (a was a P)      accept:  inode=b pid=pb peer_inode=a peer_pid=pa
//   L a b t p p   (a was no P)     pair:    {inode, peer_inode} = {a, b}, pid=p
//   X ino t (in log.PID)           close:   inode=ino pid=PID
//
// An accepted socket whose client's message did not arrive has only its X
// line; its accept is checked against the acceptor's pid alone. Prints the
// counts and "missed N invented M lost L"; exits 0 when all three are 0.
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { K_CONNECT, K_ACCEPT, K_PAIR, K_CLOSE, K_N };
static const char *kinds[K_N] = {"connect", "accept", "pair", "close"};

struct fact {
    int kind;
    uint64_t ino, peer, listener;
    long pid, peer_pid;  // -1: not checked
    int seen;
};

static struct fact *facts;
static size_t nfacts, capfacts;
static long pids[64];
static int npids;

static struct fact *add(int kind, uint64_t ino, uint64_t peer, uint64_t listener, long pid, long peer_pid) {
    if (nfacts == capfacts) {
        capfacts = capfacts ? capfacts * 2 : 4096;
        facts = realloc(facts, capfacts * sizeof *facts);
        if (!facts) exit(2);
    }
    struct fact *f = &facts[nfacts++];
    *f = (struct fact){kind, ino, peer, listener, pid, peer_pid, 0};
    return f;
}

// Hash of (kind, inode) → fact index, open addressing.
static size_t *slots;
static size_t nslots;

static size_t hash(int kind, uint64_t ino) { return (size_t)((ino * 0x9E3779B97F4A7C15ull) ^ (uint64_t)kind) % nslots; }

static void index_facts(void) {
    nslots = nfacts * 2 + 1;
    slots = malloc(nslots * sizeof *slots);
    for (size_t i = 0; i < nslots; i++) slots[i] = SIZE_MAX;
    for (size_t i = 0; i < nfacts; i++) {
        size_t h = hash(facts[i].kind, facts[i].ino);
        while (slots[h] != SIZE_MAX) h = (h + 1) % nslots;
        slots[h] = i;
    }
}

static struct fact *find(int kind, uint64_t ino) {
    for (size_t h = hash(kind, ino); slots[h] != SIZE_MAX; h = (h + 1) % nslots) {
        struct fact *f = &facts[slots[h]];
        if (f->kind == kind && f->ino == ino) return f;
    }
    return NULL;
}

// A number after "KEY": in a JSON line; -1 for null or missing. Names are
// JSON strings whose quotes are escaped, so `,"KEY":` cannot occur in them.
static long long field(const char *line, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, ",\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p) {
        snprintf(pat, sizeof pat, "{\"%s\":", key);
        p = strstr(line, pat);
        if (!p) return -1;
    }
    p += strlen(pat);
    if (*p < '0' || *p > '9') return -1;
    return strtoll(p, NULL, 10);
}

static int kind_of(const char *line) {
    for (int k = 0; k < K_N; k++) {
        char pat[32];
        snprintf(pat, sizeof pat, "\"kind\":\"%s\"", kinds[k]);
        if (strstr(line, pat)) return k;
    }
    return -1;
}

static int churn_pid(long pid) {
    for (int i = 0; i < npids; i++)
        if (pids[i] == pid) return 1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: watch_check LOGDIR EVENTS\n");
        return 2;
    }
    DIR *d = opendir(argv[1]);
    if (!d) {
        perror(argv[1]);
        return 2;
    }
    // Pass 1: P lines (which L lines are accepts), then everything.
    struct dirent *de;
    char path[4096], line[1024];
    size_t clients_cap = 0, nclients = 0;
    uint64_t *clients = NULL;
    for (int pass = 0; pass < 2; pass++) {
        rewinddir(d);
        while ((de = readdir(d))) {
            if (strncmp(de->d_name, "log.", 4) != 0) continue;
            long pid = atol(de->d_name + 4);
            if (pass == 0 && npids < 64) pids[npids++] = pid;
            snprintf(path, sizeof path, "%s/%s", argv[1], de->d_name);
            FILE *f = fopen(path, "r");
            if (!f) return 2;
            while (fgets(line, sizeof line, f)) {
                unsigned long long a, b, t, pa, pb;
                if (pass == 0) {
                    if (sscanf(line, "P %llu %llu %llu %llu", &a, &b, &t, &pa) == 4) {
                        add(K_CONNECT, a, 0, b, (long)pa, -1);
                        if (nclients == clients_cap) {
                            clients_cap = clients_cap ? clients_cap * 2 : 4096;
                            clients = realloc(clients, clients_cap * sizeof *clients);
                        }
                        clients[nclients++] = a;
                    }
                    continue;
                }
                if (sscanf(line, "L %llu %llu %llu %llu %llu", &a, &b, &t, &pa, &pb) == 5) {
                    int accepted = 0;
                    for (size_t i = nclients; i-- > 0;)
                        if (clients[i] == a) {
                            accepted = 1;
                            break;
                        }
                    if (accepted)
                        add(K_ACCEPT, b, a, 0, (long)pb, (long)pa);
                    else {
                        add(K_PAIR, a, b, 0, (long)pa, -1);
                    }
                } else if (sscanf(line, "X %llu %llu", &a, &t) == 2) {
                    add(K_CLOSE, a, 0, 0, pid, -1);
                }
            }
            fclose(f);
        }
    }
    closedir(d);
    // Accepted sockets with no L line (the client's message was lost):
    // known from their X line only; their accept is checked by pid.
    index_facts();

    FILE *ev = fopen(argv[2], "r");
    if (!ev) {
        perror(argv[2]);
        return 2;
    }
    long invented = 0, events = 0, lost = -1, counted[K_N] = {0};
    static char buf[1 << 16];
    while (fgets(buf, sizeof buf, ev)) {
        if (strncmp(buf, "{\"summary\"", 10) == 0) {
            lost = field(buf, "lost");
            continue;
        }
        events++;
        long pid = (long)field(buf, "pid");
        int k = kind_of(buf);
        if (k < 0 || !churn_pid(pid)) continue;  // not churn's
        counted[k]++;
        uint64_t ino = (uint64_t)field(buf, "inode");
        long long peer = field(buf, "peer_inode"), listener = field(buf, "listener_inode"),
                  peer_pid = field(buf, "peer_pid");
        struct fact *f = NULL;
        if (k == K_PAIR) {
            f = find(K_PAIR, ino);
            if (!f && peer > 0) f = find(K_PAIR, (uint64_t)peer);
            if (f && !((f->ino == ino && (long long)f->peer == peer) || (f->peer == ino && (long long)f->ino == peer))) f = NULL;
        } else if (k == K_ACCEPT) {
            f = find(K_ACCEPT, ino);
            if (f) {
                // A peer pid not known (null, polling) is no wrong one.
                if ((long long)f->peer != peer || (peer_pid >= 0 && f->peer_pid != peer_pid)) f = NULL;
            } else if (find(K_CLOSE, ino)) {
                // No L line: accepted from a client whose message never came.
                f = add(K_ACCEPT, ino, 0, 0, pid, -1);
                index_facts();
            }
        } else if (k == K_CONNECT) {
            f = find(K_CONNECT, ino);
            if (f && (long long)f->listener != listener) f = NULL;
        } else {
            f = find(K_CLOSE, ino);
        }
        if (!f || f->pid != pid || f->seen) {
            if (invented < 10) fprintf(stderr, "invented: %s", buf);
            invented++;
            continue;
        }
        f->seen = 1;
    }
    fclose(ev);
    long missed = 0, truth[K_N] = {0}, missing[K_N] = {0};
    for (size_t i = 0; i < nfacts; i++) {
        truth[facts[i].kind]++;
        if (!facts[i].seen) {
            missing[facts[i].kind]++;
            if (missed < 10)
                fprintf(stderr, "missed: %s inode %llu pid %ld\n", kinds[facts[i].kind], (unsigned long long)facts[i].ino,
                        facts[i].pid);
            missed++;
        }
    }
    printf("churn logged: %ld connect, %ld accept, %ld pair, %ld close; kpeer printed %ld events\n", truth[K_CONNECT],
           truth[K_ACCEPT], truth[K_PAIR], truth[K_CLOSE], events);
    printf("missed: %ld connect, %ld accept, %ld pair, %ld close\n", missing[K_CONNECT], missing[K_ACCEPT],
           missing[K_PAIR], missing[K_CLOSE]);
    printf("missed %ld invented %ld lost %ld\n", missed, invented, lost);
    return missed == 0 && invented == 0 && lost == 0 ? 0 : 1;
}
