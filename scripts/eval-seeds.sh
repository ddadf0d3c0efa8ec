#!/usr/bin/env bash
# Detection quality over several seeds of a preset (GitHub issue 3), reproducibly.
#
#   scripts/eval-seeds.sh [--preset small] [--seeds "1 2 3 4 5"] [--no-anomalies] [--fresh]
#
# For each seed: `mrs synth` into /tmp/<preset>-<seed> (or /tmp/<preset>-clean-<seed> with
# --no-anomalies) unless the lake exists (--fresh rewrites it), then detection from scratch
# (logs/ and meta/ removed; inputs and truth kept), `mrs run`, `mrs eval --format json`.
# Prints a per-seed table and the mean. LAKE_PREFIX (default /tmp/) prefixes the lake paths.
# Prints a per-seed table and the mean. With --no-anomalies it prints false reports per 1,000
# store-days instead. Uses $MRS (default: $CARGO_TARGET_DIR/release/mrs).
set -euo pipefail
preset=small
seeds="1 2 3 4 5"
clean=0
fresh=0
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) preset="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --no-anomalies) clean=1; shift ;;
    --fresh) fresh=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
MRS="${MRS:-${CARGO_TARGET_DIR:-target}/release/mrs}"
[ -x "$MRS" ] || { echo "no mrs binary at $MRS (cargo build --release --bin mrs)" >&2; exit 2; }
out=$(mktemp -d)
for s in $seeds; do
  if [ $clean = 1 ]; then lake="${LAKE_PREFIX:-/tmp/}$preset-clean-$s"; else lake="${LAKE_PREFIX:-/tmp/}$preset-$s"; fi
  if [ $fresh = 1 ] || [ ! -d "$lake/input/sales" ]; then
    rm -rf "$lake"
    if [ $clean = 1 ]; then
      "$MRS" synth --preset "$preset" --seed "$s" --lake "$lake" --no-anomalies >/dev/null
    else
      "$MRS" synth --preset "$preset" --seed "$s" --lake "$lake" >/dev/null
    fi
  fi
  rm -rf "$lake/logs" "$lake/meta" "$lake/protection" "$lake/state"
  "$MRS" run --lake "$lake" >/dev/null
  if [ $clean = 1 ]; then
    "$MRS" sql --lake "$lake" -q --format csv -c "SELECT
        (SELECT count(*) FROM minority_reports) AS reports,
        (SELECT count(DISTINCT store_id || '|' || CAST(CAST(ts AS DATE) AS VARCHAR)) FROM sales_clean) AS store_days" \
      | tail -1 > "$out/$s.csv"
  else
    "$MRS" eval --lake "$lake" --format json > "$out/$s.json"
  fi
done
python3 - "$out" "$clean" $seeds <<'PY'
import json, sys, statistics as st
out, clean, seeds = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
if clean:
    rows = []
    print(f"{'seed':>4} {'reports':>8} {'store-days':>10} {'per 1000':>9}")
    for s in seeds:
        r, d = (int(x) for x in open(f"{out}/{s}.csv").read().strip().split(","))
        rows.append((r, d))
        print(f"{s:>4} {r:>8} {d:>10} {1000 * r / d:>9.3f}")
    R, D = sum(r for r, _ in rows), sum(d for _, d in rows)
    print(f"{'all':>4} {R:>8} {D:>10} {1000 * R / D:>9.3f}")
    sys.exit(0)
cols = [("rec>=3", lambda d: d["detection"]["recall_magnitude_ge_3"]),
        ("rec<3", lambda d: d["detection"]["recall_magnitude_lt_3"]),
        ("recall", lambda d: d["detection"]["recall"]),
        ("ev_prec", lambda d: d["detection"]["precision"]),
        ("rep_prec", lambda d: d["detection"]["report_precision"]),
        ("delay", lambda d: d["detection"]["median_delay_buckets"]),
        ("reports", lambda d: d["detection"]["reports"]),
        ("events", lambda d: d["detection"]["events"]),
        ("nv_rec", lambda d: d["naive"]["recall"]),
        ("nv_prec", lambda d: d["naive"]["precision"])]
print(f"{'seed':>4} " + " ".join(f"{c:>8}" for c, _ in cols))
vals = {c: [] for c, _ in cols}
for s in seeds:
    d = json.load(open(f"{out}/{s}.json"))
    row = []
    for c, f in cols:
        v = f(d)
        vals[c].append(v if v is not None else float("nan"))
        row.append(f"{v:>8.3f}" if isinstance(v, float) else f"{v!s:>8}")
    print(f"{s:>4} " + " ".join(row))
print(f"{'mean':>4} " + " ".join(f"{st.mean(vals[c]):>8.3f}" for c, _ in cols))
PY
rm -rf "$out"
