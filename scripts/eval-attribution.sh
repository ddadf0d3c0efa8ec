#!/usr/bin/env bash
# Attribution / calibration / cohort evaluation on the `small` preset (issue 4).
#
#   scripts/eval-attribution.sh [SEEDS...]        default seeds: 1 2 3 4 5
#
# For each seed: synthesise /tmp/asmall-$seed once (inputs are kept), drop its logs and meta,
# run the pipeline and evaluate. Prints per-seed and mean top-1, top-3, per-cause top-1/top-3,
# high_tier_precision and cohort pairwise precision/recall (strict per-report matching), then the
# by-anomaly attribution (aT1, aT3) and SKU-aware cohort figures (skP, skR), plus pooled per-cause
# (strict, SKU-aware and by anomaly) and calibration tables.
# Env: MRS (binary, default $CARGO_TARGET_DIR/release/mrs), PRESET (small), PREFIX (/tmp/asmall-).
set -euo pipefail
MRS=${MRS:-${CARGO_TARGET_DIR:-target}/release/mrs}
PRESET=${PRESET:-small}
PREFIX=${PREFIX:-/tmp/asmall-}
SEEDS=("$@")
[ ${#SEEDS[@]} -eq 0 ] && SEEDS=(1 2 3 4 5)
OUT=$(mktemp -d)
for s in "${SEEDS[@]}"; do
  lake="$PREFIX$s"
  if [ ! -f "$lake/truth/synth.json" ]; then
    "$MRS" synth --preset "$PRESET" --seed "$s" --lake "$lake" >/dev/null
  fi
  rm -rf "$lake/logs" "$lake/meta" "$lake/protection" "$lake/state"
  "$MRS" run --lake "$lake" >/dev/null
  "$MRS" eval --lake "$lake" --format json >"$OUT/$s.json"
done
python3 - "$OUT" "${SEEDS[@]}" <<'PY'
import json, sys
out, seeds = sys.argv[1], sys.argv[2:]
causes = ["Data Error", "Marketing Misattribution", "Competitor Stockout", "Social/Viral Event", "Operational/Store Issue"]
short = {"Data Error": "DE", "Marketing Misattribution": "MM", "Competitor Stockout": "CS", "Social/Viral Event": "SV", "Operational/Store Issue": "OP"}
rows, pooled, pooled_a, pooled_k, sku_n = [], {}, {}, {}, [0, 0.0, 0.0]
cal = [[0, 0.0, 0] for _ in range(10)]
print(f"{'seed':>5} {'n':>4} {'top1':>6} {'top3':>6} " + " ".join(f"{short[c]+'1':>6} {short[c]+'3':>6}" for c in causes) + f" {'high':>6} {'nHigh':>5} {'coP':>6} {'coR':>6} {'recall':>6} {'aT1':>6} {'aT3':>6} {'skP':>6} {'skR':>6}")
def fmt(x):
    return f"{x:6.3f}" if x is not None else "   n/a"
for s in seeds:
    r = json.load(open(f"{out}/{s}.json"))
    a, c = r["attribution"], r["cohort"]
    nh = sum(b["n"] for b in r["calibration"] if b["decile"] >= 0.8 - 1e-9)
    row = {"top1": a["top1"], "top3": a["top3"], "high": r.get("high_tier_precision"),
           "coP": c["pairwise_precision"], "coR": c["pairwise_recall"], "recall": r["detection"]["recall"],
           "aT1": a["by_anomaly"]["top1"], "aT3": a["by_anomaly"]["top3"],
           "skP": c["pairwise_precision_sku_matched"], "skR": c["pairwise_recall_sku_matched"]}
    for cz in causes:
        pc = a["per_cause"].get(cz)
        row[cz + "1"] = pc["top1"] if pc else None
        row[cz + "3"] = pc["top3"] if pc else None
        if pc:
            p = pooled.setdefault(cz, [0, 0.0, 0.0])
            p[0] += pc["n"]; p[1] += pc["top1"] * pc["n"]; p[2] += pc["top3"] * pc["n"]
        pa = a["by_anomaly"]["per_cause"].get(cz)
        if pa:
            p = pooled_a.setdefault(cz, [0, 0.0, 0.0])
            p[0] += pa["n"]; p[1] += pa["top1"] * pa["n"]; p[2] += pa["top3"] * pa["n"]
    k = a.get("sku_matched")
    if k:
        sku_n[0] += k["evaluated"]; sku_n[1] += k["top1"] * k["evaluated"]; sku_n[2] += k["top3"] * k["evaluated"]
        for cz, pc in k["per_cause"].items():
            p = pooled_k.setdefault(cz, [0, 0.0, 0.0])
            p[0] += pc["n"]; p[1] += pc["top1"] * pc["n"]; p[2] += pc["top3"] * pc["n"]
    for b in r["calibration"]:
        d = int(round(b["decile"] * 10))
        cal[d][0] += b["n"]; cal[d][1] += b["mean_confidence"] * b["n"]; cal[d][2] += b["accuracy"] * b["n"]
    rows.append(row)
    print(f"{s:>5} {a['evaluated']:>4} {fmt(a['top1'])} {fmt(a['top3'])} " + " ".join(f"{fmt(row[cz+'1'])} {fmt(row[cz+'3'])}" for cz in causes) + f" {fmt(row['high'])} {nh:>5} {fmt(row['coP'])} {fmt(row['coR'])} {fmt(row['recall'])}"
          f" {fmt(row['aT1'])} {fmt(row['aT3'])} {fmt(row['skP'])} {fmt(row['skR'])}")
def mean(k):
    v = [r[k] for r in rows if r[k] is not None]
    return sum(v) / len(v) if v else None
print(f"{'mean':>5} {'':>4} {fmt(mean('top1'))} {fmt(mean('top3'))} " + " ".join(f"{fmt(mean(cz+'1'))} {fmt(mean(cz+'3'))}" for cz in causes) + f" {fmt(mean('high'))} {'':>5} {fmt(mean('coP'))} {fmt(mean('coR'))} {fmt(mean('recall'))}"
      f" {fmt(mean('aT1'))} {fmt(mean('aT3'))} {fmt(mean('skP'))} {fmt(mean('skR'))}")
print("pooled per cause (n, top1, top3): " + "; ".join(f"{short[c]} {p[0]} {p[1]/p[0]:.3f} {p[2]/p[0]:.3f}" for c, p in pooled.items() if p[0]))
print("pooled per cause by anomaly (n, top1, top3): " + "; ".join(f"{short[c]} {p[0]} {p[1]/p[0]:.3f} {p[2]/p[0]:.3f}" for c, p in pooled_a.items() if p[0]))
if sku_n[0]:
    print(f"pooled per report, SKU-aware matching: top1 {sku_n[1]/sku_n[0]:.3f} top3 {sku_n[2]/sku_n[0]:.3f}; " + "; ".join(f"{short[c]} {p[0]} {p[1]/p[0]:.3f} {p[2]/p[0]:.3f}" for c, p in pooled_k.items() if p[0] and c in short))
print("pooled calibration (decile: n, mean confidence, accuracy):")
for d, (n, sc, sa) in enumerate(cal):
    if n:
        print(f"  {d/10:.1f}: {n:4d} {sc/n:.3f} {sa/n:.3f}")
PY
rm -rf "$OUT"
