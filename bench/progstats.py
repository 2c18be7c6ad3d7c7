#!/usr/bin/env python3
"""Print, as one JSON object, the BPF programs a running tracer process has attached.

    progstats.py PID

Programs are the bpf-prog file descriptors of PID (from /proc/PID/fd and fdinfo, which also
give verified_insns). Each is matched to its attach point: for swtrace through its bpf_link
descriptors (fdinfo tp_name), for bpftrace through `bpftool perf show -j` (perf-event
tracepoint attachments of PID). Name, type, bytes_xlated, run_time_ns and run_cnt come from
`bpftool prog show -j` (run_* are present when kernel.bpf_stats_enabled=1; fdinfo is the
fallback). Programs with no tracepoint attachment (bpftrace's BEGIN/interval) are listed
with "attach": null.
"""
import json
import os
import subprocess
import sys
import time


def fdinfo(pid, fd):
    info = {}
    try:
        with open(f"/proc/{pid}/fdinfo/{fd}") as f:
            for line in f:
                key, _, value = line.partition(":")
                info[key.strip()] = value.strip()
    except OSError:
        pass
    return info


def main():
    pid = int(sys.argv[1])
    progs, links = {}, {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target == "anon_inode:bpf-prog":
            info = fdinfo(pid, fd)
            if "prog_id" in info:
                progs[int(info["prog_id"])] = info
        elif target == "anon_inode:bpf_link":
            info = fdinfo(pid, fd)
            if "prog_id" in info and "tp_name" in info:
                links[int(info["prog_id"])] = info["tp_name"]
    perf = json.loads(subprocess.run(["bpftool", "perf", "show", "-j"], capture_output=True,
                                     text=True).stdout or "[]")
    for entry in perf:
        if entry.get("pid") == pid and entry.get("fd_type") == "tracepoint":
            links.setdefault(entry["prog_id"], entry["tracepoint"])
    shown = {p["id"]: p for p in json.loads(
        subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True).stdout or "[]")}
    out = []
    for pid_id, info in sorted(progs.items()):
        bt = shown.get(pid_id, {})
        out.append({
            "id": pid_id,
            "name": bt.get("name"),
            "type": bt.get("type"),
            "attach": links.get(pid_id),
            "xlated_insns": bt.get("bytes_xlated", 0) // 8,
            "verified_insns": int(info.get("verified_insns", -1)),
            "run_time_ns": int(bt.get("run_time_ns", info.get("run_time_ns", 0))),
            "run_cnt": int(bt.get("run_cnt", info.get("run_cnt", 0))),
        })
    json.dump({"time": time.time(), "pid": pid, "progs": out}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
