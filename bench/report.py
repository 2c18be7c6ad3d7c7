#!/usr/bin/env python3
"""Turn bench/run.sh's raw measurements into medians, ratios and target checks.

    report.py RAW.jsonl OUT.json

Writes OUT.json (raw records plus the summary) and prints a markdown report to stdout.
Ratios are always swtrace / bpftrace (below 1 means swtrace is smaller or faster).
"""
import json
import math
import statistics
import sys

CASES = {
    "a": "a: 1 tracepoint, mark filter, print(len)",
    "b": "b: 1 tracepoint, @c[ifname]=count(), @h=hist(len)",
    "c": "c: skb:* /mark==0xdead/ print(len, gso_type)",
    "floor": "floor: 1 tracepoint, empty program",
}


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(x, unit="", _digits=None):
    if x is None:
        return "n/a"
    if isinstance(x, float) and not x.is_integer():
        text = f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"
    else:
        text = f"{int(x):,}"
    return text + unit


def fr(x):
    return "n/a" if x is None else f"{x:.2f}x"


def yes(flag):
    return "n/a" if flag is None else ("**yes**" if flag else "no")


def startup(records):
    out = {}
    for case in ("a", "b", "c"):
        row = {}
        for tool in ("swtrace", "bpftrace"):
            runs = [r for r in records if r["tool"] == tool and r["case"] == case]
            ok = [r for r in runs if r["status"] == 0]
            row[tool] = {
                "runs": len(runs),
                "failed": len(runs) - len(ok),
                "wall_s": med([r["wall_s"] for r in ok]),
                "rss_kb": med([r["rss_kb"] for r in ok]),
                "cpu_s": med([r["user_s"] + r["sys_s"] for r in ok]),
                "attached": sorted({r["attached"] for r in ok}),
                "wall_all_s": [r["wall_s"] for r in ok],
            }
        for key in ("wall_s", "rss_kb", "cpu_s"):
            row[key + "_ratio"] = ratio(row["swtrace"][key], row["bpftrace"][key])
        out[case] = row
    return out


def kernel(records, lost):
    out = {}
    for case in ("floor", "a", "b", "c"):
        row = {}
        for tool in ("swtrace", "bpftrace"):
            samples = [r for r in records if r["tool"] == tool and r["case"] == case]
            if not samples:
                continue
            # One session per tracer process: raw files of several runs may be concatenated.
            sessions = {}
            for r in samples:
                sessions.setdefault(r["sample"].get("pid"), []).append(r)
            per_burst, events = [], []
            for session in sessions.values():
                session.sort(key=lambda r: r["burst"])
                for before, after in zip(session, session[1:]):
                    prev = {p["id"]: p for p in before["sample"]["progs"] if p["attach"]}
                    d_time = d_cnt = 0
                    for p in after["sample"]["progs"]:
                        if p["attach"] and p["id"] in prev:
                            d_time += p["run_time_ns"] - prev[p["id"]]["run_time_ns"]
                            d_cnt += p["run_cnt"] - prev[p["id"]]["run_cnt"]
                    per_burst.append(d_time / d_cnt if d_cnt else None)
                    events.append(d_cnt)
            samples.sort(key=lambda r: r["burst"])
            progs = [p for p in samples[0]["sample"]["progs"] if p["attach"]]
            row[tool] = {
                "ns_per_event": med(per_burst),
                "ns_per_event_bursts": per_burst,
                "events_per_burst": med(events),
                "lost": lost.get((tool, case)),
                "programs": len(progs),
                "xlated_total": sum(p["xlated_insns"] for p in progs),
                "xlated_max": max((p["xlated_insns"] for p in progs), default=None),
                "verified_total": sum(p["verified_insns"] for p in progs),
                "verified_max": max((p["verified_insns"] for p in progs), default=None),
                "per_attach": {p["attach"]: {"xlated": p["xlated_insns"], "verified": p["verified_insns"]}
                               for p in progs},
            }
        if "swtrace" in row and "bpftrace" in row:
            sw, bt = row["swtrace"], row["bpftrace"]
            row["ns_ratio"] = ratio(sw["ns_per_event"], bt["ns_per_event"])
            common = sorted(set(sw["per_attach"]) & set(bt["per_attach"]))
            row["common_attach_points"] = len(common)
            row["xlated_le_count"] = sum(sw["per_attach"][a]["xlated"] <= bt["per_attach"][a]["xlated"]
                                         for a in common)
            row["verified_le_count"] = sum(sw["per_attach"][a]["verified"] <= bt["per_attach"][a]["verified"]
                                           for a in common)
            row["xlated_ratio"] = ratio(sw["xlated_max"], bt["xlated_max"])
            row["verified_ratio"] = ratio(sw["verified_max"], bt["verified_max"])
        out[case] = row
    return out


FLOOD = 0  # the rate recorded for RATES=max: the sender as fast as it goes


def rate_order(rate):
    return math.inf if rate == FLOOD else rate


def rate_name(rate):
    return "flood (no --rate)" if rate == FLOOD else f"{rate:,}"


def delivery(records):
    out = {}
    rates = sorted({r["rate"] for r in records}, key=rate_order)
    for tool in ("swtrace", "swtrace-text", "bpftrace"):
        rows = {}
        for rate in rates:
            runs = [r for r in records if r["tool"] == tool and r["rate"] == rate]
            rows[rate] = {
                "runs": len(runs),
                "runs_with_loss": sum(r["lost"] != 0 for r in runs),
                "lost_median": med([r["lost"] for r in runs]),
                "samples_median": med([r["samples"] for r in runs]),
                "achieved_pps_median": med([r["sent"] / r["seconds"] for r in runs if r["seconds"] > 0]),
                "events_per_s_median": med([r["samples"] / r["seconds"] for r in runs if r["seconds"] > 0]),
                "sent_median": med([r["sent"] for r in runs]),
            }
        clean = [rate for rate in rates if rows[rate]["runs"] and rows[rate]["runs_with_loss"] == 0]
        first_loss = next((rate for rate in rates if rows[rate]["runs_with_loss"]), None)
        best = max(clean, key=rate_order) if clean else None
        out[tool] = {"rates": rows, "highest_lossless_rate": best, "lowest_lossy_rate": first_loss,
                     # What the sender reached and the events delivered per second at that rate.
                     "highest_lossless_pps": rows[best]["achieved_pps_median"] if clean else None,
                     "highest_lossless_events_per_s": rows[best]["events_per_s_median"] if clean else None,
                     "flood_clean": (rows[FLOOD]["runs"] > 0 and rows[FLOOD]["runs_with_loss"] == 0)
                     if FLOOD in rows else None}
    return out


def eventpath(records):
    out = {}
    for fmt_ in ("text", "json"):
        ns = [r["ns_per_event"] for r in records if r["format"] == fmt_]
        out[fmt_] = {"runs": len(ns), "ns_per_event_median": med(ns), "min": min(ns) if ns else None,
                     "max": max(ns) if ns else None}
    return out


def frontend(records):
    out = {}
    for r in records:
        if r["section"] == "frontend_specs":
            out["specs"] = {"files": r["count"], "programs": r["programs"]}
            continue
        times = r["times"]
        out[r["name"]] = {"median_s": med(times), "runs": len(times), "min_s": min(times), "max_s": max(times),
                          "timer": r["tool"]}
    sw, bt = out.get("swtrace_check_c"), out.get("bpftrace_emit_elf_c")
    if sw and bt:
        out["check_c_ratio"] = ratio(sw["median_s"], bt["median_s"])
    return out


def main():
    raw_path, out_path = sys.argv[1], sys.argv[2]
    records = [json.loads(line) for line in open(raw_path) if line.strip()]
    by = lambda s: [r for r in records if r["section"] == s]
    meta = by("meta")[0] if by("meta") else {}
    lost = {(r["tool"], r["case"]): r["lost"] for r in by("kernel_lost")}
    summary = {
        "meta": meta,
        "startup": startup(by("startup")),
        "kernel": kernel(by("kernel"), lost),
        "delivery": delivery(by("delivery")),
        "eventpath": eventpath(by("eventpath")),
        "frontend": frontend(by("frontend") + by("frontend_specs")),
    }
    targets = targets_of(summary)
    summary["targets"] = targets
    with open(out_path, "w") as f:
        json.dump({"summary": summary, "raw": records}, f, indent=1, default=str)
    print(markdown(summary))


def targets_of(s):
    t = {}
    st, k, d = s["startup"], s["kernel"], s["delivery"]
    for case in ("a", "b", "c"):
        w, r = st[case]["wall_s_ratio"], st[case]["rss_kb_ratio"]
        t[f"startup_wall_{case}"] = {"ratio": w, "target": 0.1, "met": None if w is None else w <= 0.1}
        t[f"peak_rss_{case}"] = {"ratio": r, "target": 0.3, "met": None if r is None else r <= 0.3}
        kr = k[case].get("ns_ratio")
        t[f"kernel_cost_{case}"] = {"ratio": kr, "target": 0.5, "met": None if kr is None else kr <= 0.5}
        floor = k["floor"].get("swtrace", {}).get("ns_per_event")
        own = k[case].get("swtrace", {}).get("ns_per_event")
        fr_ = ratio(own, floor)
        t[f"kernel_vs_floor_{case}"] = {"ratio": fr_, "target": 3.0, "met": None if fr_ is None else fr_ <= 3.0}
        row = k[case]
        if "common_attach_points" in row:
            n = row["common_attach_points"]
            t[f"insns_{case}"] = {
                "xlated_le": f"{row['xlated_le_count']}/{n}", "verified_le": f"{row['verified_le_count']}/{n}",
                "met": row["xlated_le_count"] == n and row["verified_le_count"] == n and n > 0}
    t["delivery"] = {"met": d["swtrace"]["flood_clean"]}
    j = s["eventpath"]["json"]["ns_per_event_median"]
    t["eventpath_json"] = {"ns_per_event": j, "target": 1000, "met": None if j is None else j < 1000}
    return t


def lossless(dd):
    rate = dd["highest_lossless_rate"]
    if rate is None:
        return "none"
    return (f"{rate_name(rate)} offered, {fmt(dd['highest_lossless_pps'], ' datagrams/s')} sent, "
            f"{fmt(dd['highest_lossless_events_per_s'], ' events/s')}")


def markdown(s):
    m, st, k, d, fe, t = s["meta"], s["startup"], s["kernel"], s["delivery"], s["frontend"], s["targets"]
    L = []
    L.append(f"swtrace {m.get('swtrace', '?')} ({m.get('swtrace_source', '?')}) vs {m.get('bpftrace', '?')}; "
             f"{m.get('date', '?')}; kernel {m.get('kernel', '?')}; {m.get('cpu', '?')}, {m.get('cores', '?')} cores; "
             f"load average at start {m.get('loadavg', '?')}; {m.get('repeats', '?')} repeats; delivery pinned to "
             f"cores {m.get('pin') or '(none)'} (tracer, sender).")
    L.append("Medians; ratio = swtrace / bpftrace.")
    L.append("")
    L.append("Targets (issue 22):")
    L.append("")
    L.append("| target | case | swtrace | bpftrace | ratio | met |")
    L.append("|---|---|---:|---:|---:|---|")
    sw_d, bt_d = d["swtrace"], d["bpftrace"]
    flood = sw_d["rates"].get(FLOOD)
    if flood:
        L.append(f"| delivery: 0 lost under the one-core flood, -f json | c | "
                 f"{fmt(flood['lost_median'])} lost ({flood['runs_with_loss']}/{flood['runs']} runs with loss), "
                 f"{fmt(flood['events_per_s_median'], ' events/s')} | - | - | {yes(t['delivery']['met'])} |")
    L.append(f"| delivery: highest rate with 0 lost in every run (json / text / printf) | c | "
             f"json: {lossless(sw_d)}; text: {lossless(d['swtrace-text'])} | {lossless(bt_d)} | "
             f"{fr(ratio(sw_d['highest_lossless_events_per_s'], bt_d['highest_lossless_events_per_s']))} (events/s) | - |")
    j = t["eventpath_json"]["ns_per_event"]
    L.append(f"| event path: >= 1,000,000 JSON events/s on one core (< 1,000 ns/event) | print(len, ifname, ip.saddr, udp.dport) | "
             f"{fmt(j, ' ns/event', 3)} ({fmt(1e9 / j if j else None, ' events/s')}) | - | - | "
             f"{yes(t['eventpath_json']['met'])} |")
    for case in ("a", "b", "c"):
        row = k[case]
        sw, bt = row.get("swtrace", {}), row.get("bpftrace", {})
        L.append(f"| in-kernel ns per program run <= 0.5x | {CASES[case]} | {fmt(sw.get('ns_per_event'), ' ns', 3)} | "
                 f"{fmt(bt.get('ns_per_event'), ' ns', 3)} | {fr(row.get('ns_ratio'))} | {yes(t[f'kernel_cost_{case}']['met'])} |")
    for case in ("a", "b", "c"):
        sw, bt = st[case]["swtrace"], st[case]["bpftrace"]
        L.append(f"| start-up wall <= 0.1x (n={sw['runs']}/{bt['runs']}) | {CASES[case]} | {fmt(sw['wall_s'], ' s', 3)} | "
                 f"{fmt(bt['wall_s'], ' s', 3)} | {fr(st[case]['wall_s_ratio'])} | {yes(t[f'startup_wall_{case}']['met'])} |")
    for case in ("a", "b", "c"):
        sw, bt = st[case]["swtrace"], st[case]["bpftrace"]
        L.append(f"| peak RSS <= 0.3x | {CASES[case]} | {fmt(sw['rss_kb'] / 1024 if sw['rss_kb'] else None, ' MiB', 3)} | "
                 f"{fmt(bt['rss_kb'] / 1024 if bt['rss_kb'] else None, ' MiB', 3)} | {fr(st[case]['rss_kb_ratio'])} | "
                 f"{yes(t[f'peak_rss_{case}']['met'])} |")
    for case in ("a", "b", "c"):
        row = k[case]
        sw, bt = row.get("swtrace", {}), row.get("bpftrace", {})
        n = row.get("common_attach_points", 0)
        L.append(f"| xlated insns per program <= bpftrace's (max; programs <=: {row.get('xlated_le_count', 0)}/{n}) | "
                 f"{CASES[case]} | {fmt(sw.get('xlated_max'))} | {fmt(bt.get('xlated_max'))} | {fr(row.get('xlated_ratio'))} | "
                 f"{yes(t.get(f'insns_{case}', {}).get('met'))} |")
    L.append("")
    L.append("Details:")
    L.append("")
    L.append("| measure | case | swtrace | bpftrace | ratio |")
    L.append("|---|---|---:|---:|---:|")
    for case in ("a", "b", "c"):
        sw, bt = st[case]["swtrace"], st[case]["bpftrace"]
        L.append(f"| start-up CPU time (user+sys) | {CASES[case]} | {fmt(sw['cpu_s'], ' s', 3)} | {fmt(bt['cpu_s'], ' s', 3)} | "
                 f"{fr(st[case]['cpu_s_ratio'])} |")
    for case in ("a", "b", "c"):
        sw, bt = st[case]["swtrace"], st[case]["bpftrace"]
        L.append(f"| probes attached | {CASES[case]} | {','.join(map(str, sw['attached']))} | "
                 f"{','.join(map(str, bt['attached']))} | - |")
    row = k["floor"]
    L.append(f"| in-kernel ns per program run | {CASES['floor']} | {fmt(row.get('swtrace', {}).get('ns_per_event'), ' ns', 3)} | "
             f"{fmt(row.get('bpftrace', {}).get('ns_per_event'), ' ns', 3)} | {fr(row.get('ns_ratio'))} |")
    for case in ("a", "b", "c"):
        tt = t[f"kernel_vs_floor_{case}"]
        L.append(f"| swtrace in-kernel cost / swtrace empty-program floor | {CASES[case]} | {fr(tt['ratio'])} | - | - |")
    for case in ("floor", "a", "b", "c"):
        row = k[case]
        sw, bt = row.get("swtrace", {}), row.get("bpftrace", {})
        L.append(f"| xlated insns per program (max; total over {sw.get('programs', 0)}/{bt.get('programs', 0)} programs) | "
                 f"{CASES[case]} | {fmt(sw.get('xlated_max'))} ({fmt(sw.get('xlated_total'))}) | "
                 f"{fmt(bt.get('xlated_max'))} ({fmt(bt.get('xlated_total'))}) | {fr(row.get('xlated_ratio'))} |")
        L.append(f"| verifier-processed insns per program (max; total; programs <=: {row.get('verified_le_count', 0)}/"
                 f"{row.get('common_attach_points', 0)}) | {CASES[case]} | "
                 f"{fmt(sw.get('verified_max'))} ({fmt(sw.get('verified_total'))}) | "
                 f"{fmt(bt.get('verified_max'))} ({fmt(bt.get('verified_total'))}) | {fr(row.get('verified_ratio'))} |")
    for case in ("floor", "a", "b", "c"):
        row = k[case]
        sw, bt = row.get("swtrace", {}), row.get("bpftrace", {})
        L.append(f"| events lost in the in-kernel sessions | {CASES[case]} | {fmt(sw.get('lost'))} | {fmt(bt.get('lost'))} | - |")
    sf, bf = fe.get("swtrace_check_c", {}), fe.get("bpftrace_emit_elf_c", {})
    L.append(f"| front end: compile without loading | c (`check` vs `--emit-elf`) | {fmt(sf.get('median_s'), ' s', 3)} | "
             f"{fmt(bf.get('median_s'), ' s', 3)} | {fr(fe.get('check_c_ratio'))} |")
    sc = fe.get("swtrace_check_specs", {})
    sp = fe.get("specs", {})
    L.append(f"| front end: `swtrace check specs/*.spec` (n={sc.get('runs', 0)}, {sc.get('timer', '?')}) | "
             f"{sp.get('files', '?')} specs, {sp.get('programs', '?')} programs | "
             f"{fmt(sc.get('median_s'), ' s', 3)} | - | - |")
    L.append("")
    L.append("Event delivery per offered rate (case c, all datagrams marked; medians over runs):")
    L.append("")
    L.append("| offered pps | tool | achieved pps | events printed | events/s | lost | runs with loss |")
    L.append("|---:|---|---:|---:|---:|---:|---|")
    for rate in sorted(sw_d["rates"], key=rate_order):
        for tool, dd in (("swtrace -f json", sw_d), ("swtrace -f text", d["swtrace-text"]), ("bpftrace printf", bt_d)):
            r = dd["rates"].get(rate)
            if not r or not r["runs"]:
                continue
            L.append(f"| {rate_name(rate)} | {tool} | {fmt(r['achieved_pps_median'], '', 3)} | {fmt(r['samples_median'])} | "
                     f"{fmt(r['events_per_s_median'])} | {fmt(r['lost_median'])} | {r['runs_with_loss']}/{r['runs']} |")
    ep = s["eventpath"]
    L.append("")
    L.append("The event path alone (user space, `swtrace check --event-path-bench`, "
             "print(len, ifname, ip.saddr, udp.dport); CPU ns per event, median over runs):")
    L.append("")
    L.append("| format | runs | ns/event median | min | max |")
    L.append("|---|---:|---:|---:|---:|")
    for fmt_ in ("text", "json"):
        e = ep[fmt_]
        L.append(f"| {fmt_} | {e['runs']} | {fmt(e['ns_per_event_median'], '', 3)} | {fmt(e['min'], '', 3)} | "
                 f"{fmt(e['max'], '', 3)} |")
    return "\n".join(L)


if __name__ == "__main__":
    main()
