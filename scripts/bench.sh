#!/usr/bin/env bash
# The benchmark suite (issue 7), one command:
#
#   scripts/bench.sh [--preset bench] [--seed 1] [--days N] [--no-peers] [--no-incremental] [--quick] [--out bench/results]
#
# 1. builds the release `mrs` and a Python virtual environment with DuckDB and Polars from PyPI
#    ($CARGO_TARGET_DIR/bench-pyenv, versions pinned below);
# 2. checks that the DuckDB and Polars peers compute mrs-detect's per-bucket baseline and score
#    (every bucket of a `tiny` lake against the anomaly_baseline / anomaly_score functions);
# 3. synthesises the preset (history cut to N days with --days) up to one hour before its end,
#    and times: the full `mrs run` (a first run: a backfill in slices over a long history; per
#    stage, peak memory), the same first run in one pass on a copy of the inputs, a full
#    recompute (`mrs run --full`) over the backfilled lake, the floor (a plain DataFusion
#    GROUP BY store_id, sku scan of the same Parquet files), the detection stage's query through
#    DataFusion alone, the DuckDB and Polars peers; then appends the last hour and times the
#    incremental `mrs run` (--no-peers and --no-incremental skip those parts: the cost-model
#    points in README.md are `--quick` runs: no peers, no incremental run, the floor and the
#    detection stage query once each);
# 4. writes <out>/<date>-<preset>-s<seed>[-<N>d].json and .md (bench/report.py).
# Timed commands run one at a time under /usr/bin/time -v (wall time and peak RSS); queries run
# three times in one session and the median is kept. Work files go to $CARGO_TARGET_DIR/bench-work.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=bench
seed=1
days=""
peers=1
incremental=1
runs=3
queries="floor detect_raw detect_stage"
out=bench/results
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) preset="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --days) days="$2"; shift 2 ;;
    --no-peers) peers=0; shift ;;
    --no-incremental) incremental=0; shift ;;
    --quick) peers=0; incremental=0; runs=1; queries="floor detect_stage"; shift ;;
    --out) out="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$preset" in
  tiny) preset_days=35 ;;
  small) preset_days=84 ;;
  bench) preset_days=112 ;;
  *) echo "unknown preset $preset" >&2; exit 2 ;;
esac
days="${days:-$preset_days}"
[ "$days" -le "$preset_days" ] && [ "$days" -ge 15 ] || { echo "--days must be in 15..$preset_days" >&2; exit 2; }

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -z "${MRS:-}" ]; then # MRS=path uses that binary instead of building one
  cargo build --release --bin mrs -q
  MRS="$CARGO_TARGET_DIR/release/mrs"
fi
# the runner logs each stage's start (older binaries have no stage_seconds in the summary)
export RUST_LOG="${RUST_LOG:-mrs_pipeline::runner=info}"
PY="$CARGO_TARGET_DIR/bench-pyenv/bin/python"
if ! "$PY" -c 'import duckdb, polars' 2>/dev/null; then
  python3 -m venv "$CARGO_TARGET_DIR/bench-pyenv"
  "$PY" -m pip install -q 'duckdb==2.0.1' 'polars==2.1.0'
fi

name="$preset-s$seed"
[ "$days" = "$preset_days" ] || name="$name-${days}d"
work="$CARGO_TARGET_DIR/bench-work/$name"
raw="$work/raw"
rm -rf "$work"
mkdir -p "$raw"
lake="$work/lake"

# Synthetic lakes start at 2025-06-02T00:00:00Z; the last hour is kept back for the incremental run.
start=$(date -u -d 2025-06-02T00:00:00Z +%s)
end=$((start + days * 86400))
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

timed() { # timed NAME CMD... : wall time and peak RSS in raw/NAME.time, output in raw/NAME.out
  local n="$1"; shift
  /usr/bin/time -v -o "$raw/$n.time" "$@" >"$raw/$n.out" 2>"$raw/$n.err" || {
    echo "$n failed:" >&2; tail -20 "$raw/$n.err" >&2; exit 1; }
}

{
  echo "nproc: $(nproc)"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "load_before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "git: $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo '-dirty')"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$raw/machine.txt"

if [ "$peers" = 1 ]; then
  echo "== peers against mrs-detect's scorer on a tiny lake"
  check="$work/check"
  "$MRS" synth --lake "$check" --preset tiny --seed 1 >/dev/null
  sed "s#\${out}#$work/check-ref.csv#" bench/reference.sql >"$work/reference.sql"
  "$MRS" sql --lake "$check" -q -f "$work/reference.sql" >/dev/null
  "$PY" bench/peer_duckdb.py "$check" --out "$work/check-duckdb.csv" >/dev/null
  "$PY" bench/peer_polars.py "$check" --out "$work/check-polars.csv" >/dev/null
  "$PY" bench/check_peers.py "$work/check-ref.csv" "$work/check-duckdb.csv" "$work/check-polars.csv" | tee "$raw/check.txt"
fi

echo "== synth $preset seed $seed, $days days, until $(iso $((end - 3600)))"
timed synth "$MRS" synth --lake "$lake" --preset "$preset" --seed "$seed" --until "$(iso $((end - 3600)))"
du -sb "$lake/input/sales" | cut -f1 >"$raw/sales_bytes.txt"

echo "== full run (a first run: a backfill in slices when the history is long)"
timed run_full "$MRS" run --lake "$lake" --format json
echo "== the same first run in one pass (a fresh copy of the inputs, --backfill-slice-days 0)"
one="$work/one-pass"
mkdir -p "$one"
cp -r "$lake/input" "$one/"
timed run_one_pass "$MRS" run --lake "$one" --backfill-slice-days 0 --format json
rm -rf "$one"
echo "== full recompute over the backfilled lake (--full: one pass; must append nothing)"
timed run_recompute "$MRS" run --lake "$lake" --full --format json

holidays="(SELECT DISTINCT st.store_id, h.day FROM holidays h JOIN stores st ON h.region IS NULL OR h.region = st.region)"
floor="SELECT count(*) AS series, sum(n) AS rows, sum(u) AS units FROM (SELECT store_id, sku, count(*) AS n, sum(units) AS u FROM sales_raw GROUP BY store_id, sku)"
detect_raw="SELECT count(*) AS stores, sum(cardinality(r)) AS reports FROM (SELECT store_id, mrs_detect(sku, ts, units) AS r FROM sales_raw GROUP BY store_id)"
detect_stage="SELECT count(*) AS stores, sum(cardinality(r)) AS reports FROM (SELECT s.store_id, mrs_detect(s.sku, s.ts, s.units) AS r FROM sales_clean s LEFT JOIN $holidays hd ON hd.store_id = s.store_id AND hd.day = CAST(s.ts AS DATE) WHERE hd.store_id IS NULL GROUP BY s.store_id)"
for q in $queries; do
  echo "== query $q ($runs times)"
  reps=()
  for _ in $(seq "$runs"); do reps+=("${!q}"); done
  timed "q_$q" "$MRS" sql --lake "$lake" --format csv -c "${reps[@]}"
done

if [ "$peers" = 1 ]; then
  echo "== DuckDB peer"
  timed peer_duckdb "$PY" bench/peer_duckdb.py "$lake"
  echo "== Polars peer"
  timed peer_polars "$PY" bench/peer_polars.py "$lake"
fi

if [ "$incremental" = 1 ]; then
  echo "== one more hour, incremental run"
  timed synth_hour "$MRS" synth --lake "$lake" --preset "$preset" --seed "$seed" --until "$(iso "$end")"
  timed run_hour "$MRS" run --lake "$lake" --format json
fi
echo "load_after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$raw/machine.txt"

mkdir -p "$out"
"$PY" bench/report.py "$raw" --preset "$preset" --seed "$seed" --days "$days" \
  --out "$out/$(date -u +%Y-%m-%d)-$name"
