"""Turns the raw outputs of scripts/bench.sh into a JSON file and a markdown table.

Usage: report.py RAW_DIR --preset P --seed S --days D --out PATH_WITHOUT_EXTENSION
"""

import argparse
import json
import re
import statistics
from pathlib import Path

GIB = 1024 ** 3


def read(raw, name):
    p = raw / name
    return p.read_text() if p.exists() else None


def time_v(raw, name):
    """(wall seconds, peak RSS bytes) from a /usr/bin/time -v report."""
    text = read(raw, f"{name}.time")
    if text is None:
        return None
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
    parts = [float(x) for x in wall.split(":")]
    seconds = sum(v * 60 ** i for i, v in enumerate(reversed(parts)))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) * 1024
    cpu = sum(float(re.search(rf"{k} time \(seconds\): ([0-9.]+)", text).group(1)) for k in ("User", "System"))
    return {"wall_seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "peak_rss_bytes": rss}


def stage_seconds(raw, name, summary):
    """The run summary's stage_seconds, else stage durations from the runner's log lines
    (second resolution; the last stage has no end there and is left out)."""
    if "stage_seconds" in summary:
        return dict(summary["stage_seconds"]), "run summary"
    import datetime
    marks = re.findall(r"\[(\S+Z) INFO\s+mrs_pipeline::runner\] stage (\S+)", read(raw, f"{name}.err") or "")
    at = [(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")), n) for t, n in marks]
    return {n: (b - a).total_seconds() for (a, n), (b, _) in zip(at, at[1:])}, "runner log, 1 s resolution"


def query(raw, name):
    text = read(raw, f"q_{name}.out")
    if text is None:
        return None
    runs = [float(x) for x in re.findall(r"Elapsed ([0-9.]+) seconds", text)]
    first = text.strip().splitlines()[:2]
    out = {"runs_seconds": runs, "median_seconds": statistics.median(runs), "result": first}
    out.update({"process": time_v(raw, f"q_{name}")})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--preset")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--days", type=int)
    ap.add_argument("--out")
    a = ap.parse_args()
    raw = Path(a.raw)
    machine = dict(line.split(": ", 1) for line in read(raw, "machine.txt").splitlines() if ": " in line)
    synth = read(raw, "synth.out")
    m = re.search(r"(\d+) sales rows in \d+ files, (\d+) stores, (\d+) SKUs", synth)
    rows, stores, skus = int(m.group(1)), int(m.group(2)), int(m.group(3))
    full = json.loads(read(raw, "run_full.out"))
    one_out = read(raw, "run_one_pass.out")
    one = json.loads(one_out) if one_out else None
    rec_out = read(raw, "run_recompute.out")
    rec = json.loads(rec_out) if rec_out else None
    hour_out = read(raw, "run_hour.out")
    hour = json.loads(hour_out) if hour_out else None
    res = {
        "preset": a.preset, "seed": a.seed, "days": a.days, "machine": machine,
        "lake": {"sales_rows": rows, "stores": stores, "skus": skus, "series": stores * skus,
                 "sales_parquet_bytes": int(read(raw, "sales_bytes.txt"))},
        "synth": time_v(raw, "synth"),
        "full_run": {**time_v(raw, "run_full"), "stage_seconds": stage_seconds(raw, "run_full", full)[0],
                     "stage_seconds_source": stage_seconds(raw, "run_full", full)[1],
                     "reports_new": full["reports_new"], "events": full["events"],
                     "slices": full.get("slices", 1)},
        "one_pass_run": one and {**time_v(raw, "run_one_pass"), "reports_new": one["reports_new"],
                                 "events": one["events"]},
        "recompute_run": rec and {**time_v(raw, "run_recompute"), "reports_new": rec["reports_new"],
                                  "reports_updated": rec["reports_updated"],
                                  "reports_retracted": rec["reports_retracted"]},
        "queries": {q: query(raw, q) for q in ("floor", "detect_raw", "detect_stage")},
        "peers": {},
        "incremental": hour and {**time_v(raw, "run_hour"), "stage_seconds": stage_seconds(raw, "run_hour", hour)[0],
                                 "reports_new": hour["reports_new"], "reports_updated": hour["reports_updated"]},
        "peer_check": (read(raw, "check.txt") or "").strip().splitlines(),
    }
    for peer in ("duckdb", "polars"):
        out = read(raw, f"peer_{peer}.out")
        if out:
            res["peers"][peer] = {**json.loads(out.strip().splitlines()[-1]), "process": time_v(raw, f"peer_{peer}")}
    q = res["queries"]
    floor, det = q["floor"]["median_seconds"], q["detect_stage"]["median_seconds"]
    stage = res["full_run"]["stage_seconds"].get("pipeline/01_detect.sql")
    ratios = {
        "detect_stage_query_over_floor": det / floor,
        "detect_udaf_raw_over_floor": q["detect_raw"] and q["detect_raw"]["median_seconds"] / floor,
        "detect_stage_in_run_over_floor": stage / floor if stage else None,
        "incremental_over_full": hour and res["incremental"]["wall_seconds"] / res["full_run"]["wall_seconds"],
        "full_run_peak_gib": res["full_run"]["peak_rss_bytes"] / GIB,
        "one_pass_peak_gib": one and res["one_pass_run"]["peak_rss_bytes"] / GIB,
        "incremental_over_one_pass": hour and one and res["incremental"]["wall_seconds"] / res["one_pass_run"]["wall_seconds"],
        "incremental_over_recompute": hour and rec and res["incremental"]["wall_seconds"] / res["recompute_run"]["wall_seconds"],
    }
    per_run_cpu = lambda n: q[n]["process"]["cpu_seconds"] / len(q[n]["runs_seconds"])
    ratios["detect_stage_query_over_floor_cpu"] = per_run_cpu("detect_stage") / per_run_cpu("floor")
    for peer, p in res["peers"].items():
        ratios[f"{peer}_over_detect"] = p["process"]["wall_seconds"] / det
        ratios[f"{peer}_over_detect_cpu"] = p["process"]["cpu_seconds"] / per_run_cpu("detect_stage")
    res["ratios"] = ratios
    res["targets"] = {
        "detection stage <= 2.0x floor": ratios["detect_stage_query_over_floor"] <= 2.0,
        "peak memory <= 3 GiB": ratios["full_run_peak_gib"] <= 3.0,
    }
    if hour:
        # against the first run in one pass when it was timed: a backfill's slices cost more
        vs = ratios["incremental_over_one_pass"] or ratios["incremental_over_full"]
        res["targets"]["incremental hour <= 0.2x full run (one pass)"] = vs <= 0.2
    for peer in res["peers"]:
        res["targets"][f"detection >= 3x faster than {peer}"] = ratios[f"{peer}_over_detect"] >= 3.0
    Path(a.out + ".json").write_text(json.dumps(res, indent=2) + "\n")

    f = lambda s: f"{s:.2f}"
    # a query's process ran it `runs` times after one session set-up: CPU per run
    cpu = lambda n: f"{q[n]['process']['cpu_seconds'] / len(q[n]['runs_seconds']):.2f} (per run, with set-up)"
    gib = lambda b: f"{b / GIB:.2f}"
    L = res["lake"]
    md = [f"Preset `{a.preset}` seed {a.seed}, {a.days} days: {rows:,} sales rows, {stores} stores x {skus} SKUs "
          f"({L['series']:,} series), {L['sales_parquet_bytes'] / 1e6:.0f} MB of Parquet. "
          f"Machine: {machine['nproc']} cores ({machine['cpu']}), {machine['memory']}; load "
          f"{machine['load_before']} before, {machine.get('load_after', '?')} after; {machine['date']}, {machine['git']}.",
          "", "| measure | wall s | CPU s | rows/s (wall) | peak RSS GiB | ratio (wall) |", "|---|---|---|---|---|---|"]
    fr = res["full_run"]
    passes = f", a backfill in {fr['slices']} slices" if fr["slices"] > 1 else ""
    md.append(f"| full `mrs run` (first run{passes}) | {f(fr['wall_seconds'])} | {f(fr['cpu_seconds'])} | {rows / fr['wall_seconds']:,.0f} | {gib(fr['peak_rss_bytes'])} | |")
    for name, s in fr["stage_seconds"].items():
        md.append(f"| &nbsp; {name} ({fr['stage_seconds_source']}) | {f(s)} | | | | |")
    op = res["one_pass_run"]
    if op:
        md.append(f"| the same first run in one pass (`--backfill-slice-days 0`; {op['reports_new']} reports, {op['events']} events) | {f(op['wall_seconds'])} | {f(op['cpu_seconds'])} | {rows / op['wall_seconds']:,.0f} | {gib(op['peak_rss_bytes'])} | |")
    rc = res["recompute_run"]
    if rc:
        md.append(f"| full recompute over the backfilled lake (`mrs run --full`; {rc['reports_new']} new, {rc['reports_updated']} updated, {rc['reports_retracted']} retracted reports) | {f(rc['wall_seconds'])} | {f(rc['cpu_seconds'])} | {rows / rc['wall_seconds']:,.0f} | {gib(rc['peak_rss_bytes'])} | |")
    md.append(f"| floor: `GROUP BY store_id, sku` scan (DataFusion, median of the runs) | {f(floor)} | {cpu('floor')} | {rows / floor:,.0f} | {gib(q['floor']['process']['peak_rss_bytes'])} | 1.00 |")
    md.append(f"| detection stage query (`mrs_detect` over `sales_clean` minus holidays) | {f(det)} | {cpu('detect_stage')} | {rows / det:,.0f} | {gib(q['detect_stage']['process']['peak_rss_bytes'])} | {f(ratios['detect_stage_query_over_floor'])} x floor |")
    if q["detect_raw"]:
        dr = q["detect_raw"]["median_seconds"]
        md.append(f"| `mrs_detect` over the raw files | {f(dr)} | {cpu('detect_raw')} | {rows / dr:,.0f} | {gib(q['detect_raw']['process']['peak_rss_bytes'])} | {f(ratios['detect_udaf_raw_over_floor'])} x floor |")
    # detector 0.4's peers sweep daily blocks; older ones iterated to a fixed point
    sweep = lambda p: f"{p['blocks']} daily blocks" if "blocks" in p else f"{p['iterations']} iterations"
    for peer, p in res["peers"].items():
        s = p["seconds"]
        md.append(f"| {peer} {p['version']} peer (per-bucket model only; {sweep(p)}; model {f(s['model'])} s) | "
                  f"{f(p['process']['wall_seconds'])} | {f(p['process']['cpu_seconds'])} | {rows / p['process']['wall_seconds']:,.0f} | {gib(p['process']['peak_rss_bytes'])} | "
                  f"{f(ratios[peer + '_over_detect'])} x detection |")
    inc = res["incremental"]
    if inc:
        vs_one = "".join(f", {f(ratios[k])} x {what}" for k, what in
                         (("incremental_over_one_pass", "one pass"), ("incremental_over_recompute", "recompute"))
                         if ratios[k])
        md.append(f"| one more hour: incremental `mrs run` | {f(inc['wall_seconds'])} | {f(inc['cpu_seconds'])} | | {gib(inc['peak_rss_bytes'])} | {f(ratios['incremental_over_full'])} x full run{vs_one} |")
    if res["peer_check"]:
        md += ["", "Peers against mrs-detect's scorer (`bench/check_peers.py`, tiny lake seed 1):", ""]
        md += [f"- {line.split('/')[-1]}" for line in res["peer_check"] if "reference buckets" in line]
    md += ["", "| target | met |", "|---|---|"]
    md += [f"| {k} | {'yes' if v else 'no'} |" for k, v in res["targets"].items()]
    Path(a.out + ".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
