#!/usr/bin/env python3
"""Judges one VM run: the guest's console log against the fixture's truth.

The guest (guest-init.sh) ran kpeer many ways and printed each run as
==KPEER-BEGIN id== stdout ==KPEER-STDERR== stderr ==KPEER-END id status=N kptr=N==.
The truth is what the fixture printed about the sockets it made itself; the
offset truth is what pahole said on the host about the same vmlinux.
Prints one line per check, then `vm[KERNEL]: N passed, M failed`.
"""
import argparse
import json
import re
import sys

ap = argparse.ArgumentParser()
ap.add_argument("log")
ap.add_argument("--kernel", required=True)
ap.add_argument("--package", default="")
ap.add_argument("--pahole", type=int, required=True)
ap.add_argument("--pahole-addr", type=int, required=True, help="offsetof(unix_sock, addr) by pahole")
ap.add_argument("--tally", help="write 'PASSED FAILED' here")
args = ap.parse_args()

text = open(args.log, "rb").read().decode("utf-8", "replace").replace("\r", "")
runs = {}
for m in re.finditer(r"^==KPEER-BEGIN (\S+)==\n(.*?)^==KPEER-STDERR==\n(.*?)^==KPEER-END \1 status=(\d+) kptr=(\d+)==$",
                     text, re.S | re.M):
    runs[m.group(1)] = {"out": m.group(2), "err": m.group(3), "status": int(m.group(4)), "kptr": int(m.group(5))}

passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"  ok    {name}")
    else:
        failed += 1
        print(f"  FAIL  {name}" + (f": {detail}" if detail else ""))
    return ok


def run(rid):
    r = runs.get(rid)
    if r is None:
        check(f"{rid}: ran in the guest", False, "no output for it on the console")
    return r


def lines(s):
    return [l for l in s.split("\n") if l]


print(f"vm[{args.kernel}] {args.package}")
check("guest finished (==KPEER-DONE==)", "==KPEER-DONE==" in text)

# The truth.
procs, socks, want_dump, want_links = {}, [], [], []
t = runs.get("truth")
if t:
    for l in lines(t["out"]):
        f = l.split(" ")
        if f[0] == "proc":
            procs[int(f[1])] = f[2]
        elif f[0] == "sock":
            socks.append({"inode": int(f[1]), "role": f[2], "pids": [int(p) for p in f[3].split(",")]})
        elif f[0] == "dump":
            want_dump.append(l[5:])
        elif f[0] == "link":
            want_links.append(l[5:])
check("fixture is ready", t is not None and "ready" in lines(t["out"]), t and t["out"][-500:])
fixture_inodes = {s["inode"] for s in socks}
fixture_pids = set(procs)
by_role = {}
for s in socks:
    by_role.setdefault(s["role"], []).append(s)


def fixture_lines(out):
    """The --dump lines about the fixture's own sockets (ignore the guest's others)."""
    return sorted(l for l in lines(out) if int(l.split(":")[2]) in fixture_inodes)


def owner_column(inode):
    """--all's owner column for a fixture socket: the lowest-pid holder, ,+N for N more."""
    pids = sorted(next((s["pids"] for s in socks if s["inode"] == inode), []))
    if not pids:
        return None
    return f"{pids[0]}/{procs.get(pids[0], '?')}" + (f",+{len(pids) - 1}" if len(pids) > 1 else "")


def expected_answer(inode):
    seen, out = set(), []
    for l in want_links:
        f = l.split(":")
        if int(f[2]) == inode and (f[4], f[5]) not in seen:
            seen.add((f[4], f[5]))
            out.append(f"{f[4]} {f[5]}")
    return sorted(out, key=lambda s: int(s.split(" ")[0]))


# kptr_restrict is never left changed.
info = runs.get("info")
start_kptr = int(lines(info["out"])[-1]) if info and lines(info["out"]) else 0
check("kptr_restrict is 0 at boot", start_kptr == 0, str(start_kptr))
for rid, r in runs.items():
    if rid == "kptr2":
        check(f"{rid}: kptr_restrict left at 2", r["kptr"] == 2, str(r["kptr"]))
    elif not check(f"{rid}: kptr_restrict left at {start_kptr}", r["kptr"] == start_kptr, str(r["kptr"])):
        pass
check("unix_diag loaded", run("insmod") is not None and run("insmod")["status"] == 0, runs.get("insmod", {}).get("err"))

# --dump: kcore, netlink, and each offset source equal the truth, exactly.
for rid in ["dump_auto_v", "dump_kcore", "dump_netlink", "dump_dwarf", "dump_btf", "dump_offset", "dump_calibrated",
            "dump_remembered_v", "dump_cache_wrong_v", "dump_cache_writable_v"]:
    r = run(rid)
    if r is None:
        continue
    got = fixture_lines(r["out"]) if r["status"] == 0 else None
    check(f"{rid}: exit 0", r["status"] == 0, r["err"].strip())
    if got is not None:
        missing = sorted(set(want_dump) - set(got))
        extra = sorted(set(got) - set(want_dump))
        check(f"{rid}: equals the fixture's truth ({len(want_dump)} links)", got == sorted(want_dump),
              f"missing {missing}, extra {extra}")
r = runs.get("dump_auto_v")
if r:
    check("dump_auto_v: auto chose kcore with BTF", "method kcore" in r["err"] and "from btf" in r["err"], r["err"].strip())
# The remembered offset: written after the first kcore run, used after, and
# forgotten when it fails the self-check or anyone may write the file.


def cache_fields(rid):
    r = run(rid)
    ls = lines(r["out"]) if r else []
    return ls[-1].split(" ", 6) if ls else []


def remembered(rid):
    r = runs.get(rid)
    return r is not None and "remembered in /run/kpeer/offsets" in r["err"]


f = cache_fields("cache_written")
check("cache: the BTF offset is remembered under the build-id",
      len(f) == 7 and f[1] == "unix_sock.peer" and f[2] == str(args.pahole) and f[5] == "btf"
      and f[4] == str(args.pahole_addr)
      and re.fullmatch(r"[0-9a-f]{40}", f[0]) is not None, " ".join(f))
check("cache: the first run read BTF itself", run("dump_auto_v") is not None and not remembered("dump_auto_v"),
      runs.get("dump_auto_v", {}).get("err", "").strip())
check("cache: the next run used it", remembered("dump_remembered_v"), runs.get("dump_remembered_v", {}).get("err", "").strip())
check("cache: a wrong remembered offset is not used (BTF read again)",
      run("dump_cache_wrong_v") is not None and "from btf" in runs["dump_cache_wrong_v"]["err"]
      and not remembered("dump_cache_wrong_v"), runs.get("dump_cache_wrong_v", {}).get("err", "").strip())
f = cache_fields("cache_healed")
check("cache: ... and replaced by the right one", len(f) == 7 and f[2] == str(args.pahole), " ".join(f))
check("cache: a file anyone may write is not believed",
      run("dump_cache_writable_v") is not None and not remembered("dump_cache_writable_v"),
      runs.get("dump_cache_writable_v", {}).get("err", "").strip())
r = run("cache_replaced")
check("cache: ... and is replaced, mode 644", r is not None and lines(r["out"])[:1] == ["644"], r and r["out"])

r = runs.get("dump_calibrated")
if r:
    check("dump_calibrated: offset came from calibration", "from calibration" in r["err"], r["err"].strip())
rk, rn = runs.get("dump_kcore"), runs.get("dump_netlink")
if rk and rn:
    check("dump: kcore and netlink agree on every socket in the guest",
          sorted(lines(rk["out"])) == sorted(lines(rn["out"])),
          f"kcore only {sorted(set(lines(rk['out'])) - set(lines(rn['out'])))}; netlink only {sorted(set(lines(rn['out'])) - set(lines(rk['out'])))}")

# --all: same table both ways; every fixture link appears in its row.
rk, rn = run("all_kcore"), run("all_netlink")
if rk and rn:
    check("all: kcore and netlink tables are identical", rk["out"] == rn["out"] and rk["status"] == 0,
          "\n" + rk["out"] + "\n---\n" + rn["out"])
    rows = {}
    for row in lines(rk["out"])[1:]:
        ino = row[50:58].strip()
        if ino.isdigit():
            rows[int(ino)] = row
    bad = []
    for l in want_links:
        f = l.split(":")
        row = rows.get(int(f[2]))
        cols = row[59:].split() if row else []
        if len(cols) < 2 or cols[0] != owner_column(int(f[2])) or cols[1] != owner_column(int(f[3])):
            bad.append(l)
    check("all: every fixture link is in its row (owner and peer columns)", not bad, f"{bad}")
    unlinked = [s["inode"] for s in by_role.get("lonely", []) + by_role.get("listener", [])]
    check("all: sockets without a peer show '-'",
          all(int(i) in rows and rows[int(i)][59:].split()[1] == "-" for i in unlinked), f"{unlinked}")

# --json: parses, kcore == netlink except for the method fields, and the
# fixture's links, pending clients and senders are in it.
docs = {}
for m in ["kcore", "netlink"]:
    r = run(f"json_{m}")
    if r is None:
        continue
    try:
        docs[m] = json.loads(r["out"])
        check(f"json_{m}: valid JSON, method {m}", docs[m]["method"] == m, docs[m]["method"])
    except ValueError as e:
        check(f"json_{m}: valid JSON", False, str(e))
if len(docs) == 2:
    # "kernel" (SocketFacts) is what only kernel memory tells: the facts
    # checks judge it; everything else must agree.
    def plain(doc):
        return [{k: v for k, v in s.items() if k != "kernel"} for s in doc["sockets"]]
    check("json: kcore and netlink give the same sockets", plain(docs["kcore"]) == plain(docs["netlink"]))
    def claims(k):
        return k is not None and any(v not in (None, []) for key, v in k.items() if key != "connector")
    check("json: kcore has kernel facts for every fixture socket; netlink claims none but connectors",
          all(s["kernel"] is not None for s in docs["kcore"]["sockets"] if s["inode"] in fixture_inodes)
          and not any(claims(s["kernel"]) for s in docs["netlink"]["sockets"]))
    # Connectors: SO_PEERCRED through pidfd_getfd (netlink) = sk_peer_pid/cred (kcore).
    kc = {s["inode"]: (s["kernel"] or {}).get("connector") for s in docs["kcore"]["sockets"]}
    nc = {s["inode"]: (s["kernel"] or {}).get("connector") for s in docs["netlink"]["sockets"]}
    both = [i for i in fixture_inodes if nc.get(i) is not None]
    check("json: the fixture's connectors by netlink equal kcore's",
          both and all(nc[i] == kc.get(i) for i in both), f"{[(i, nc[i], kc.get(i)) for i in both if nc[i] != kc.get(i)][:5]}")
    check("json: kcore names its offset source", docs["kcore"].get("offset", {}).get("value") == args.pahole,
          json.dumps(docs["kcore"].get("offset")))
    sj = {s["inode"]: s for s in docs["kcore"]["sockets"]}
    bad = []
    for l in want_links:
        f = l.split(":")
        s = sj.get(int(f[2]))
        ref = s and (s["peer"] or s["pending_on"])
        if not ref or ref["inode"] != int(f[3]) or int(f[4]) not in [o["pid"] for o in ref["owners"]]:
            bad.append(l)
    check("json: every fixture link", not bad, f"{bad}")
    lst = by_role["listener"][0]["inode"]
    pend = by_role["pending"][0]["inode"]
    check("json: the listener lists its pending client",
          [p["inode"] for p in sj.get(lst, {}).get("pending", [])] == [pend], json.dumps(sj.get(lst)))
    dgs, dgc = by_role["dgserver"][0]["inode"], by_role["dgclient"][0]["inode"]
    check("json: the dgram server lists its sender",
          [p["inode"] for p in sj.get(dgs, {}).get("senders", [])] == [dgc], json.dumps(sj.get(dgs)))

# kpeer INODE, both methods.
for role in ["pair", "accepted", "client", "seqclient", "seqaccepted", "shared", "sharedpeer", "dgclient"]:
    ino = by_role[role][0]["inode"]
    for m in ["kcore", "netlink"]:
        r = run(f"one_{m}_{role}_{ino}")
        if r:
            check(f"kpeer --method {m} INODE ({role} {ino})",
                  r["status"] == 0 and lines(r["out"]) == expected_answer(ino),
                  f"status {r['status']}, got {lines(r['out'])}, want {expected_answer(ino)}; {r['err'].strip()}")
lst = by_role["listener"][0]
server = procs.get(lst["pids"][0])
for role, status, needle in [("pending", 3, f"listener {lst['inode']}"), ("lonely", 1, "not connected"),
                             ("dgserver", 1, str(by_role["dgclient"][0]["inode"]))]:
    ino = by_role[role][0]["inode"]
    for m in ["kcore", "netlink"]:
        r = run(f"one_{m}_{role}_{ino}")
        if r:
            err = lines(r["err"])
            check(f"kpeer --method {m} INODE ({role}): status {status}, one line naming it, no stdout",
                  r["status"] == status and r["out"] == "" and len(err) == 1 and needle in err[0]
                  and (role != "pending" or server in err[0]),
                  f"status {r['status']}, stdout {r['out']!r}, stderr {r['err']!r}")
# A listener's inode lists its clients, as `kpeer PATH` of its file does.
ino = lst["inode"]
for m, path_run in [("kcore", "forge_before_path"), ("netlink", "forge_before_path_netlink")]:
    r, p = run(f"one_{m}_listener_{ino}"), run(path_run)
    if r and p:
        check(f"kpeer --method {m} INODE (listener): its clients, as kpeer PATH lists them",
              r["status"] == 0 and p["status"] == 0 and lines(r["out"]) == lines(p["out"]) and lines(r["out"]),
              f"INODE: {r}; PATH: {p}")
r = run("one_kcore_missing_999999999")
if r:
    check("kpeer --method kcore 999999999: status 2, one line", r["status"] == 2 and r["out"] == "" and len(lines(r["err"])) == 1,
          f"{r}")

# Offsets: BTF, DWARF (this build's vmlinux) and calibration agree with pahole.
for rid in ["findoff", "findoff_inode"]:
    r = run(rid)
    if r is None:
        continue
    vals = {}
    for l in lines(r["out"]):
        f = l.split()
        if len(f) >= 2 and f[0] in ("btf", "dwarf", "calibration", "option"):
            vals[f[0]] = f[1]
    want = {"btf": str(args.pahole), "dwarf": str(args.pahole), "calibration": str(args.pahole)}
    check(f"{rid}: btf = dwarf = calibration = pahole ({args.pahole})", vals == want and r["status"] == 0,
          f"{vals}; {r['out']} {r['err']}")

# Refusals: no false link is ever printed.
for rid, status, needle in [("wrong_offset_plus", 70, "--find-offset"), ("wrong_offset_minus", 70, "--find-offset"),
                            ("wrong_offset_all", 70, "--find-offset"), ("foreign", 65, "build-id"),
                            ("notelf", 65, "kpeer-test.env"), ("kptr2", 69, "kptr_restrict"),
                            ("nonroot", 77, "root")]:
    r = run(rid)
    if r:
        err = lines(r["err"])
        check(f"{rid}: status {status}, nothing on stdout, one line on stderr",
              r["status"] == status and r["out"] == "" and len(err) == 1 and needle in err[0],
              f"status {r['status']}, stdout {r['out'][:300]!r}, stderr {r['err']!r}")

# SocketFacts (guest.d/facts.sh): what kernel memory told, against what the
# facts fixture made and printed (SO_PEERCRED, stat, SIOCINQ/SIOCOUTQ).
def facts_checks():
    t = runs.get("facts_truth")
    if t is None:
        return
    truth = [l.split() for l in lines(t["out"]) if l and l[0].isalpha() and l != "ready"]
    check("facts fixture is ready", "ready" in lines(t["out"]), t["out"][-300:] + t["err"][-300:])

    def judge(rid, label):
        r = run(rid)
        if not r:
            return
        try:
            doc = json.loads(r["out"])
        except ValueError as e:
            check(f"{rid}: JSON", False, f"{e}: {r['out'][:300]!r} {r['err']!r}")
            return
        check(f"{rid}: status 0, no kernel_unavailable", r["status"] == 0 and "kernel_unavailable" not in doc,
              f"status {r['status']}, {doc.get('kernel_unavailable')}, {r['err']!r}")
        by = {s["inode"]: s for s in doc.get("sockets", [])}

        def k(inode):
            return (by.get(int(inode)) or {}).get("kernel") or {}
        for f in truth:
            what = f[0]
            if what == "backlog":
                got = k(f[1]).get("backlog")
                check(f"{label}: listener {f[1]} backlog {f[2]} of {f[3]}", got == {"pending": int(f[2]), "max": int(f[3])}, f"{got}")
            elif what == "file":
                got = k(f[1]).get("bound_file")
                check(f"{label}: socket {f[1]} bound to inode {f[2]} on {f[3]}:{f[4]} (stat)",
                      got == {"inode": int(f[2]), "device": f"{f[3]}:{f[4]}"}, f"{got}")
            elif what == "sender":
                senders = k(f[1]).get("senders") or []
                want = {"inode": int(f[2]), "datagrams": int(f[4]), "bytes": int(f[5])}
                owners = [o["pid"] for o in (by.get(int(f[2])) or {}).get("owners", [])]
                check(f"{label}: receiver {f[1]} holds {f[4]} datagrams ({f[5]} bytes) from {f[2]}, held by pid {f[3]}",
                      want in senders and int(f[3]) in owners, f"senders {senders}, owners of {f[2]} {owners}")
            elif what == "queue":
                got = k(f[1]).get("receive_queue")
                check(f"{label}: receiver {f[1]} queue {f[2]} skbs, {f[3]} bytes",
                      got == {"skbs": int(f[2]), "bytes": int(f[3]), "partial": False}, f"{got}")
            elif what == "connector":
                got = k(f[1]).get("connector")
                check(f"{label}: socket {f[1]} connected by pid {f[2]} uid {f[3]} gid {f[4]} (SO_PEERCRED)",
                      got == {"pid": int(f[2]), "uid": int(f[3]), "gid": int(f[4])}, f"{got}")
            elif what == "holder":
                owners = [o["pid"] for o in (by.get(int(f[1])) or {}).get("owners", [])]
                check(f"{label}: socket {f[1]} held by pid {f[2]}", int(f[2]) in owners, f"{owners}")
            elif what == "inq":
                got = (k(f[1]).get("receive_queue") or {}).get("bytes")
                check(f"{label}: socket {f[1]} has {f[2]} bytes to read (SIOCINQ)", got == int(f[2]), f"{got}")
            elif what == "inflight":
                carrying = k(f[2]).get("carrying")
                to = ((by.get(int(f[1])) or {}).get("in_flight_to") or {}).get("inode")
                check(f"{label}: socket {f[1]} is in flight to {f[2]} (SCM_RIGHTS, sender closed it)",
                      carrying == [int(f[1])] and to == int(f[2]), f"carrying {carrying}, in_flight_to {to}")
            elif what == "outq":
                got = k(f[1]).get("send_queue_bytes")
                check(f"{label}: socket {f[1]} has {f[2]} bytes unread by its peer (SIOCOUTQ)", got == int(f[2]), f"{got}")

    judge("facts_json", "facts (BTF)")
    judge("facts_json_dwarf", "facts (DWARF)")
    r = run("facts_json_netlink")
    if r:
        try:
            doc = json.loads(r["out"])
            by = {s["inode"]: s for s in doc["sockets"]}
            want = [f for f in truth if f[0] == "connector"]
            bad = [f for f in want if ((by.get(int(f[1])) or {}).get("kernel") or {}).get("connector")
                   != {"pid": int(f[2]), "uid": int(f[3]), "gid": int(f[4])}]
            check(f"facts (netlink): {len(want)} connectors equal SO_PEERCRED (pidfd_getfd)", want and not bad, f"{bad}")
        except (ValueError, KeyError) as e:
            check("facts (netlink): JSON", False, str(e))
    r = run("facts_all_e")
    if r:
        backlog = [f for f in truth if f[0] == "backlog"]
        rows = [l for l in lines(r["out"]) if backlog and f" {backlog[0][1]} " in l]
        check("facts: --all -e has the Recv-Q column and the listener's backlog 3/4",
              r["status"] == 0 and "Recv-Q" in r["out"].split("\n")[0] and rows and " 3/4 " in rows[0], f"{rows} {r['err']!r}")
    r = run("facts_v_listener")
    if r:
        check("facts: -v PATH says how many wait to be accepted",
              r["status"] == 0 and "3 of 4 connections waiting to be accepted" in r["err"], f"{r['err']!r}")
    inflight = [f for f in truth if f[0] == "inflight"]
    r = run("facts_inflight_kcore")
    if r and inflight:
        check("facts: kpeer INODE names where its peer is in flight (status 3)",
              r["status"] == 3 and f"queued on socket {inflight[0][2]}, held by" in r["err"] and len(lines(r["err"])) == 1,
              f"{r['status']} {r['err']!r}")
    r = run("facts_inflight_netlink")
    if r and inflight:
        check("facts: netlink does not claim what it cannot see (status 3, 'may be in flight')",
              r["status"] == 3 and "may be in flight" in r["err"], f"{r['status']} {r['err']!r}")
    r = run("facts_nodiag_netlink_fails")
    if r:
        check("facts: with unix_diag unloaded, --method netlink cannot answer", r["status"] != 0, f"status {r['status']}")
    for a, b in [("facts_nodiag_path_kcore", "facts_diag_path_netlink"),
                 ("facts_nodiag_main_path_kcore", "facts_diag_main_path_netlink")]:
        ra, rb = run(a), run(b)
        if ra and rb:
            check(f"facts: {a} (no unix_diag, bound file from kernel memory) = {b}",
                  ra["status"] == 0 and rb["status"] == 0 and ra["out"] == rb["out"] and ra["out"],
                  f"{ra['status']} {ra['out']!r} {ra['err']!r} vs {rb['status']} {rb['out']!r}")
    ra, rb = run("facts_nodiag_dump_kcore"), run("facts_diag_dump_netlink")
    if ra and rb:
        check("facts: the fixture's --dump without unix_diag (kcore) = with it (netlink)",
              ra["status"] == 0 and fixture_lines(ra["out"]) == fixture_lines(rb["out"]) == sorted(want_dump),
              f"{ra['err']!r}")
    nodiag = sorted(k for k in runs if k.startswith("facts_nodiag_one_"))
    same = [k for k in nodiag if (runs[k]["status"], runs[k]["out"], runs[k]["err"])
            == tuple(runs.get("one_kcore_" + k[len("facts_nodiag_one_"):], {}).get(x) for x in ("status", "out", "err"))]
    check(f"facts: every fixture INODE answer without unix_diag equals the one with it ({len(same)} of {len(nodiag)})",
          nodiag and len(same) == len(nodiag), f"{[k for k in nodiag if k not in same]}")
    r = run("facts_nodiag_json")
    if r:
        try:
            doc = json.loads(r["out"])
            ok = r["status"] == 0 and doc["listener"]["kernel"]["bound_file"] is not None and len(doc["clients"]) == 1
        except (ValueError, KeyError, TypeError):
            ok = False
        check("facts: --json PATH without unix_diag names the client and the bound file", ok, f"{r['out'][:400]!r} {r['err']!r}")


facts_checks()


# Forged rows (guest.d/forge.sh): the kcore answers do not move.
def forge_checks():
    r = run("forge_rows") if "forge_rows" in runs else None
    if r is None:
        return
    check("forge: the attacker's rows are in /proc/net/unix (481 at address 0)",
          r["status"] == 0 and int((r["out"].strip() or "0")) >= 481, r["out"])
    r = run("forge_pair_rows") if "forge_pair_rows" in runs else None
    check("forge: a connected socket's inode is listed twice (the forged twin)",
          r is not None and r["out"].strip() == "2", r["out"] if r else "no run")
    for before, after in [("forge_before_path", "forge_path"), ("forge_before_inode", "forge_inode"),
                          ("forge_before_pair", "forge_pair"),
                          ("forge_before_path_netlink", "forge_path_netlink"),
                          ("forge_before_inode_netlink", "forge_inode_netlink"),
                          ("forge_before_cut", "forge_cut"), ("forge_before_cut_netlink", "forge_cut_netlink")]:
        a, b = run(before), run(after)
        if a and b:
            check(f"forge: {after} answers as before the forging", (a["status"], a["out"], a["err"]) == (b["status"], b["out"], b["err"])
                  and a["out"] + a["err"] != "", f"before {a['status']} {a['out']!r} {a['err']!r}, after {b['status']} {b['out']!r} {b['err']!r}")
    r = run("forge_dump_auto_v")
    if r:
        check("forge: auto still uses kcore and --dump equals the truth",
              r["status"] == 0 and "method kcore" in r["err"] and fixture_lines(r["out"]) == sorted(want_dump), f"{r['err']!r}")
    r = run("forge_dump_netlink")
    if r:
        check("forge: --method netlink --dump equals the truth", r["status"] == 0 and fixture_lines(r["out"]) == sorted(want_dump),
              f"{r['err']!r}")
    r = run("forge_all_kcore")
    if r:
        # A forged row is one whose own inode is a forged one; the forger's
        # real rows carry those numbers inside their (escaped) whole names.
        forged = [l for l in lines(r["out"]) if any(t.isdigit() and 9000000 <= int(t) < 9000480 for t in l.split())]
        check("forge: no forged row in --all", r["status"] == 0 and not forged, f"{forged[:3]}")


forge_checks()


def nothing_bound(rid, what):
    """A name query that must find nothing: status 2, one line, no output."""
    r = run(rid)
    if r:
        check(what, r["status"] == 2 and r["out"] == "" and len(lines(r["err"])) == 1, f"{r['status']} {r['out']!r} {r['err']!r}")


def cut_checks():
    t = runs.get("forge_cut_truth")
    if t is None:
        return
    cut = [l.split()[1] for l in lines(t["out"]) if l.startswith("cut ")]
    name = [l.split()[1] for l in lines(t["out"]) if l.startswith("name ")]
    printed = [l.split()[1] for l in lines(t["out"]) if l.startswith("printed ")]
    check("cut: the forger's socket is printed as bound to the fixture's name, and another to a vacant one",
          bool(cut) and name and name[0] != "@" and printed == name and lines(t["out"])[-1] == "1", t["out"] + t["err"])
    for m, before in [("kcore", "forge_before_cut"), ("netlink", "forge_before_cut_netlink")]:
        r = run(before)
        if r:
            check(f"cut ({m}): the fixture's abstract listener answers before the forging", r["status"] == 0 and r["out"] != "",
                  f"{r['status']} {r['out']!r} {r['err']!r}")
    for m in ["kcore", "netlink"]:
        nothing_bound(f"forge_cut_vacant_{m}", f"cut ({m}): nothing is bound to @kpeer-vacant (status 2, one line)")
        r = run(f"forge_cut_all_{m}")
        if r and cut:
            rows = [l for l in lines(r["out"]) if cut[0] in l.split()[4:8]]
            check(f"cut ({m}): --all lists the forger's socket by its whole name",
                  r["status"] == 0 and len(rows) == 1 and "\\x0a0000000000000000:" in rows[0], f"{rows}")


cut_checks()


def relabel_checks():
    t = runs.get("forge_relabel_truth")
    if t is None:
        return
    pair = [l.split()[1] for l in lines(t["out"]) if l.startswith("pair ")]
    check("relabel: the forger made its pair and its row", bool(pair), t["out"] + t["err"])
    if not pair:
        return
    for m in ["kcore", "netlink"]:
        nothing_bound(f"forge_relabel_{m}", f"relabel ({m}): nothing is bound to @victim-svc (status 2, one line)")
        r = run(f"forge_relabel_all_{m}")
        if r:
            rows = [l for l in lines(r["out"]) if len(l.split()) > 5 and pair[0] in l.split()[4:8]]
            check(f"relabel ({m}): the pair's rows name no path and live in the forger's namespace",
                  r["status"] == 0 and rows and all("victim-svc" not in l and "net:[" in l for l in rows), f"{rows}")


relabel_checks()

# Extension runs (Tests/VM/guest.d): each judges itself by its exit status.
for rid in sorted(k for k in runs if k.startswith("x_")):
    r = runs[rid]
    check(f"{rid}: exit 0, kptr_restrict left at 0", r["status"] == 0 and r["kptr"] == 0,
          f"status {r['status']}, stdout {r['out'][-2000:]!r}, stderr {r['err'][-2000:]!r}")

# Lockdown (when the kernel has the LSM): kcore refused, auto falls back.
if "lockdown_kcore" in runs:
    r = runs["lockdown_kcore"]
    check("lockdown: --method kcore refused with status 69", r["status"] == 69 and r["out"] == ""
          and "lockdown" in r["err"], f"{r}")
    r = runs["lockdown_auto"]
    check("lockdown: auto falls back to netlink and still equals the truth",
          r["status"] == 0 and fixture_lines(r["out"]) == sorted(want_dump) and "method netlink" in r["err"], f"{r}")
else:
    print("  skip  lockdown: this kernel has no lockdown LSM")

print(f"vm[{args.kernel}]: {passed} passed, {failed} failed")
if args.tally:
    open(args.tally, "w").write(f"{passed} {failed}\n")
sys.exit(1 if failed else 0)
