"""The per-bucket detection model of mrs-detect (crates/mrs-detect/src/model/scorer.rs), written
for DuckDB SQL: the peer of `mrs_detect` in scripts/bench.sh.

What it computes, for every store x SKU cell series and every store-total series of the lake
(holiday store-days left out, as sql/pipeline/01_detect.sql does): the per-bucket baseline, robust
z and score of the causal robust seasonal model, and the store buckets that the store-level rule
flags. It leaves out the windows, the reports and their evidence/data-quality features (report
assembly). See bench/README.md for the model and the exact scope.

The model is causal and recursive: a flagged bucket enters the history clipped to the alert band,
which changes later baselines and scales. SQL has no sequential loop, so the clean history is
found by a fixed-point iteration: compute every statistic from the current clean history, clip,
and repeat on the series whose clean history changed until none does. The fixed point is the
sequential model's output (each bucket depends only on earlier buckets, so by induction on time
the fixed point is unique), and the run fails if it is not reached.

Usage: peer_duckdb.py LAKE_DIR [--out CSV] [--threads N]
"""

import argparse
import json
import sys
import time

import duckdb

# The model's constants (scorer.rs, store.rs), hourly plan: weekly season 168, daily 24.
SEASONS = (168, 24)
K = 4
Z_ALERT = 5.0
WARMUP_DIV = 1.1547005383792515
MEDIAN_CHI2_1 = 0.4549364231195727
MAX_ITER = 60
# Series per chunk of the model.
CHUNK = 1000


def prepare(con, lake):
    """Cell and store-total series on a dense hourly grid (NULL = missing bucket)."""
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE clean_sales AS
    SELECT s.store_id, s.sku, CAST(epoch_us(s.ts) // 3600000000 AS BIGINT) AS t, s.units
    FROM read_parquet('{lake}/input/sales/*.parquet') s
    WHERE s.store_id IS NOT NULL AND s.store_id <> '' AND s.sku IS NOT NULL AND s.sku <> ''
      AND s.ts IS NOT NULL AND s.units IS NOT NULL AND isfinite(s.units) AND abs(s.units) <= 1e9
      AND NOT EXISTS (
        SELECT 1 FROM read_parquet('{lake}/input/holidays/*.parquet') h
        JOIN read_parquet('{lake}/input/stores/*.parquet') st
          ON h.region IS NULL OR h.region = st.region
        WHERE st.store_id = s.store_id AND h.day = CAST(s.ts AS DATE))
    """)
    # one series id per (store, sku); sku NULL = the store total
    con.execute("""
    CREATE OR REPLACE TEMP TABLE cells AS
    SELECT store_id, sku, t, sum(units) AS y FROM clean_sales GROUP BY ALL;
    CREATE OR REPLACE TEMP TABLE present AS SELECT DISTINCT store_id, t FROM cells;
    CREATE OR REPLACE TEMP TABLE series AS
    SELECT row_number() OVER (ORDER BY store_id, sku NULLS FIRST) - 1 AS sid, store_id, sku, first, last
    FROM (SELECT c.store_id, c.sku, min(c.t) AS first, max(p.last) AS last
          FROM cells c JOIN (SELECT store_id, max(t) AS last FROM present GROUP BY 1) p USING (store_id)
          GROUP BY ALL
          UNION ALL
          SELECT store_id, NULL, min(t), max(t) FROM present GROUP BY 1);
    CREATE OR REPLACE TEMP TABLE grid AS
    SELECT s.sid, g.t, s.first,
           CASE WHEN p.t IS NULL THEN NULL
                WHEN s.sku IS NULL THEN tot.y
                ELSE coalesce(c.y, 0.0) END AS y
    FROM series s, LATERAL (SELECT unnest(range(s.first, s.last + 1)) AS t) g
    LEFT JOIN present p ON p.store_id = s.store_id AND p.t = g.t
    LEFT JOIN cells c ON s.sku IS NOT NULL AND c.store_id = s.store_id AND c.sku = s.sku AND c.t = g.t
    LEFT JOIN (SELECT store_id, t, sum(y) AS y FROM cells GROUP BY ALL) tot
      ON s.sku IS NULL AND tot.store_id = s.store_id AND tot.t = g.t;
    """)


MACROS = f"""
CREATE OR REPLACE TEMP MACRO ansc(y) AS
  CASE WHEN y >= 0 THEN 2.0 * sqrt(y + 0.375)
       ELSE 2.0 * (2.0 * sqrt(0.375)) - 2.0 * sqrt(-y + 0.375) END;
CREATE OR REPLACE TEMP MACRO nbg(v, k) AS 2.0 / sqrt(k) * asinh(sqrt(k) * sqrt(v + 0.375));
CREATE OR REPLACE TEMP MACRO nbt(y, k) AS
  CASE WHEN k < 1e-9 THEN ansc(y)
       WHEN y >= 0 THEN nbg(y, k) ELSE 2.0 * nbg(0.0, k) - nbg(-y, k) END;
CREATE OR REPLACE TEMP MACRO inv_ansc(a) AS
  CASE WHEN a >= 2.0 * sqrt(0.375) THEN pow(a / 2.0, 2) - 0.375
       ELSE -(pow((2.0 * (2.0 * sqrt(0.375)) - a) / 2.0, 2) - 0.375) END;
CREATE OR REPLACE TEMP MACRO nbinv1(g, k) AS pow(sinh(g * sqrt(k) / 2.0), 2) / k - 0.375;
CREATE OR REPLACE TEMP MACRO inv_nbt(a, k) AS
  CASE WHEN k < 1e-9 THEN inv_ansc(a)
       WHEN a >= nbt(0.0, k) THEN nbinv1(a, k) ELSE -nbinv1(2.0 * nbt(0.0, k) - a, k) END;
"""


def seasonal(con):
    """Seasonal median, season and warm-up residual of every present bucket from the clean
    history `c` of table cur(sid, t, first, y, c) (iteration dependent)."""
    lag = lambda s, k: f"lag(c, {s * k}) OVER w"
    cnt = lambda s: " + ".join(f"CAST({lag(s, k)} IS NOT NULL AS INT)" for k in range(1, K + 1))
    lst = lambda s: "[" + ", ".join(lag(s, k) for k in range(1, K + 1)) + "]"
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE st AS
    SELECT sid, t, first, y, c, h,
           CASE WHEN h >= 336 AND n168 >= 2 THEN 168 WHEN h >= 48 AND n24 >= 2 THEN 24 END AS season,
           CASE WHEN h >= 336 AND n168 >= 2 THEN list_median(l168)
                WHEN h >= 48 AND n24 >= 2 THEN list_median(l24) END AS m,
           CASE WHEN h >= 168 THEN p168 WHEN h >= 24 THEN p24 END AS prev
    FROM (SELECT sid, t, first, y, c, t - first AS h,
                 {cnt(168)} AS n168, {cnt(24)} AS n24, {lst(168)} AS l168, {lst(24)} AS l24,
                 lag(c, 168) OVER w AS p168, lag(c, 24) OVER w AS p24
          FROM cur WINDOW w AS (PARTITION BY sid ORDER BY t))
    WHERE y IS NOT NULL
    """)


def iterate(con):
    """One pass over the series in cur: baseline, residuals, daily scale, z and new clean."""
    seasonal(con)
    # level correction: median of (y+1)/(m+1) over the last L buckets (48 weekly, 12 daily)
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE lv AS
    SELECT *, m * level AS b FROM (
      SELECT *,
        CASE WHEN season = 168 THEN CASE WHEN n48 >= 24 THEN med48 ELSE 1.0 END
             WHEN season = 24 THEN CASE WHEN n12 >= 6 THEN med12 ELSE 1.0 END END AS level
      FROM (SELECT *,
              median(ratio) OVER (PARTITION BY sid ORDER BY t RANGE BETWEEN 48 PRECEDING AND 1 PRECEDING) AS med48,
              count(ratio) OVER (PARTITION BY sid ORDER BY t RANGE BETWEEN 48 PRECEDING AND 1 PRECEDING) AS n48,
              median(ratio) OVER (PARTITION BY sid ORDER BY t RANGE BETWEEN 12 PRECEDING AND 1 PRECEDING) AS med12,
              count(ratio) OVER (PARTITION BY sid ORDER BY t RANGE BETWEEN 12 PRECEDING AND 1 PRECEDING) AS n12
            FROM (SELECT *, CASE WHEN m >= 0 AND y >= 0 THEN (y + 1.0) / (m + 1.0) END AS ratio FROM st)))
    """)
    # residuals: against the baseline when scored, one-season differences during the warm-up
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE rs AS
    SELECT sid, t, c,
      CASE WHEN m IS NOT NULL THEN ansc(c) - ansc(b)
           WHEN prev IS NOT NULL THEN (ansc(y) - ansc(prev)) / {WARMUP_DIV} END AS r,
      CASE WHEN m IS NOT NULL THEN b ELSE 0.5 * (y + prev) END AS rb,
      CASE WHEN m IS NOT NULL THEN b ELSE prev END AS ref,
      CASE WHEN m IS NOT NULL THEN 1.0 ELSE {WARMUP_DIV} END AS div
    FROM lv
    """)
    # the trailing week of residuals at each daily scale point
    con.execute("""
    CREATE OR REPLACE TEMP TABLE win AS
    SELECT p.sid, p.t AS pt, rs.r * rs.r AS r2, greatest(rs.rb, 0.0) AS bb, rs.c, rs.ref, rs.div
    FROM (SELECT p.sid, p.t, o.off FROM points p SEMI JOIN cur_sids USING (sid),
          range(1, 169) o(off)) p
    JOIN rs ON rs.sid = p.sid AND rs.t = p.t - p.off
    WHERE rs.r IS NOT NULL
    """)
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE fit AS
    WITH mid AS (SELECT sid, pt, count(*) AS n, median(bb) AS b_mid FROM win GROUP BY ALL),
    halves AS (
      SELECT w.sid, w.pt, any_value(mid.n) AS n,
        median(r2) FILTER (WHERE bb <= b_mid) / {MEDIAN_CHI2_1} AS v_lo,
        median(bb) FILTER (WHERE bb <= b_mid) AS b_lo, count(*) FILTER (WHERE bb <= b_mid) AS n_lo,
        median(r2) FILTER (WHERE bb > b_mid) / {MEDIAN_CHI2_1} AS v_hi,
        median(bb) FILTER (WHERE bb > b_mid) AS b_hi, count(*) FILTER (WHERE bb > b_mid) AS n_hi
      FROM win w JOIN mid USING (sid, pt) GROUP BY ALL)
    SELECT sid, pt, n,
      CASE WHEN n < 8 OR v_hi <= 0 OR n_lo < 2 OR n_hi < 2 OR v_lo IS NULL OR isnan(v_lo) OR v_lo <= 0
                OR v_hi IS NULL OR NOT isfinite(v_hi) THEN 0.0
           WHEN NOT (ln(v_hi / v_lo) > 3.0 * 2.33 * sqrt(2.0 / least(n_lo, n_hi)))
                OR b_hi - (v_hi / v_lo) * b_lo <= 0 THEN 0.0
           ELSE least((v_hi / v_lo - 1.0) / (b_hi - (v_hi / v_lo) * b_lo), 16.0) END AS kappa
    FROM halves
    """)
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE sc AS
    SELECT p.sid, p.t AS pt, coalesce(s.kappa, 0.0) AS kappa, coalesce(s.scale, 1.0) AS scale
    FROM points p SEMI JOIN cur_sids USING (sid)
    LEFT JOIN (
      SELECT f.sid, f.pt, f.kappa,
        CASE WHEN f.n < 8 THEN 1.0 ELSE coalesce(greatest(sqrt(
          median(pow((nbt(w.c, f.kappa) - nbt(w.ref, f.kappa)) / w.div, 2)) / {MEDIAN_CHI2_1}), 1.0), 1.0) END AS scale
      FROM fit f JOIN win w ON w.sid = f.sid AND w.pt = f.pt GROUP BY f.sid, f.pt, f.kappa, f.n) s
    ON s.sid = p.sid AND s.pt = p.t
    """)
    # every scored bucket takes the scale and dispersion of the last point at or before it
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE out AS
    SELECT sid, t, y, b AS baseline, z, least(abs(z) / {2 * Z_ALERT}, 1.0) AS score,
      CASE WHEN abs(z) >= {Z_ALERT}
           THEN inv_nbt(nbt(b, kappa) + sign(z) * {Z_ALERT} * scale, kappa) ELSE y END AS c_new
    FROM (SELECT *, (nbt(y, kappa) - nbt(b, kappa)) / scale AS z
          FROM (SELECT lv.sid, lv.t, lv.y, lv.b,
                  last_value(sc.scale IGNORE NULLS) OVER w AS scale,
                  last_value(sc.kappa IGNORE NULLS) OVER w AS kappa
                FROM lv LEFT JOIN sc ON sc.sid = lv.sid AND sc.pt = lv.t
                WHERE lv.m IS NOT NULL
                WINDOW w AS (PARTITION BY lv.sid ORDER BY lv.t ROWS UNBOUNDED PRECEDING)))
    """)


def fixed_point(con):
    """Iterates the series of `cur` to their fixed point, appending final rows to `result`;
    returns the iterations."""
    iterations = 0
    while True:
        iterations += 1
        if iterations > MAX_ITER:
            raise SystemExit("peer_duckdb: no fixed point after %d iterations" % MAX_ITER)
        iterate(con)
        con.execute("""
        CREATE OR REPLACE TEMP TABLE changed AS
        SELECT DISTINCT o.sid FROM out o JOIN cur c USING (sid, t)
        WHERE o.c_new IS DISTINCT FROM c.c
        """)
        n_changed = con.execute("SELECT count(*) FROM changed").fetchone()[0]
        # the unchanged series are final: keep their scores and drop them from the work set
        con.execute("""
        INSERT INTO result SELECT sid, t, y, baseline, z, score FROM out ANTI JOIN changed USING (sid);
        CREATE OR REPLACE TEMP TABLE cur AS
        SELECT c.sid, c.t, c.first, c.y, coalesce(o.c_new, c.c) AS c
        FROM cur c SEMI JOIN changed USING (sid) LEFT JOIN out o USING (sid, t);
        CREATE OR REPLACE TEMP TABLE cur_sids AS SELECT sid FROM changed;
        """)
        if n_changed == 0:
            return iterations


def run(lake, threads=None):
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    timings = {}
    t0 = time.perf_counter()
    prepare(con, lake)
    con.execute(MACROS)
    timings["prepare"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    # daily scale points: the first scored bucket, then the first scored bucket at least 24
    # after the previous point (runs of consecutive scored buckets, walked recursively)
    con.execute("CREATE OR REPLACE TEMP TABLE cur AS SELECT sid, t, first, y, y AS c FROM grid")
    seasonal(con)
    con.execute("""
    CREATE OR REPLACE TEMP TABLE runs AS
    SELECT sid, row_number() OVER (PARTITION BY sid ORDER BY a) AS r, a, b FROM (
      SELECT sid, min(t) AS a, max(t) AS b FROM (
        SELECT sid, t, t - row_number() OVER (PARTITION BY sid ORDER BY t) AS g
        FROM st WHERE m IS NOT NULL) GROUP BY sid, g);
    CREATE OR REPLACE TEMP TABLE run_points AS
    WITH RECURSIVE walk(sid, r, first_point, b, due) AS (
      SELECT sid, r, a, b, a + 24 * ((b - a) // 24 + 1) FROM runs WHERE r = 1
      UNION ALL
      SELECT n.sid, n.r, greatest(n.a, w.due), n.b,
             CASE WHEN greatest(n.a, w.due) <= n.b
                  THEN greatest(n.a, w.due) + 24 * ((n.b - greatest(n.a, w.due)) // 24 + 1)
                  ELSE w.due END
      FROM walk w JOIN runs n ON n.sid = w.sid AND n.r = w.r + 1)
    SELECT sid, first_point, b FROM walk WHERE first_point <= b;
    CREATE OR REPLACE TEMP TABLE points AS
    SELECT sid, unnest(range(first_point, b + 1, 24)) AS t FROM run_points;
    CREATE OR REPLACE TEMP TABLE result AS
    SELECT sid, t, y, y AS baseline, y AS z, y AS score FROM grid LIMIT 0;
    """)
    n_series = con.execute("SELECT count(*) FROM series").fetchone()[0]
    iterations = 0
    # series in chunks, so that the trailing-week windows of the scale fit stay in memory
    for lo in range(0, n_series, CHUNK):
        con.execute(f"""
        CREATE OR REPLACE TEMP TABLE cur AS
        SELECT sid, t, first, y, y AS c FROM grid WHERE sid >= {lo} AND sid < {lo + CHUNK};
        CREATE OR REPLACE TEMP TABLE cur_sids AS SELECT DISTINCT sid FROM cur;
        """)
        iterations = max(iterations, fixed_point(con))
    timings["model"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    # store-level bucket rule (store.rs): store total |z| >= 5, or a cell |z| >= z_cell, or at
    # least 3 cells flagged in the same direction
    flagged = con.execute(f"""
    WITH r AS (SELECT s.store_id, s.sku, x.t, x.z FROM result x JOIN series s USING (sid)),
    nsku AS (SELECT store_id, count(*) AS m FROM series WHERE sku IS NOT NULL GROUP BY 1),
    cellagg AS (SELECT r.store_id, r.t, max(abs(z)) AS zmax,
                  count(*) FILTER (WHERE z >= {Z_ALERT}) AS up, count(*) FILTER (WHERE z <= -{Z_ALERT}) AS down
                FROM r WHERE sku IS NOT NULL GROUP BY 1, 2)
    SELECT count(*) FROM cellagg c
    FULL JOIN (SELECT * FROM r WHERE sku IS NULL) tot USING (store_id, t)
    JOIN nsku USING (store_id)
    WHERE abs(tot.z) >= {Z_ALERT} OR c.zmax >= sqrt({Z_ALERT ** 2} + 2 * ln(nsku.m))
       OR c.up >= 3 OR c.down >= 3
    """).fetchone()[0]
    timings["store_rule"] = time.perf_counter() - t2
    rows = con.execute("SELECT count(*) FROM result").fetchone()[0]
    return con, {"engine": "duckdb", "version": duckdb.__version__, "iterations": iterations,
                 "scored_buckets": rows, "flagged_store_buckets": flagged, "seconds": timings}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lake")
    ap.add_argument("--out", help="write sid-free per-bucket results (store_id, sku, ts, baseline, score) as CSV")
    ap.add_argument("--threads", type=int)
    args = ap.parse_args()
    t = time.perf_counter()
    con, info = run(args.lake, args.threads)
    info["seconds"]["total"] = time.perf_counter() - t
    if args.out:
        con.execute(f"""
        COPY (SELECT s.store_id, coalesce(s.sku, '') AS sku, r.t * 3600 AS ts_s, r.baseline, r.score
              FROM result r JOIN series s USING (sid) ORDER BY 1, 2, 3) TO '{args.out}' (HEADER)
        """)
    json.dump(info, sys.stdout)
    print()


if __name__ == "__main__":
    main()
