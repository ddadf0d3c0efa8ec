"""The per-bucket detection model of mrs-detect 0.4 (crates/mrs-detect/src/model/scorer.rs and
counts.rs), written for DuckDB SQL: the peer of `mrs_detect` in scripts/bench.sh.

What it computes, for every store x SKU cell series and every store-total series of the lake
(holiday store-days left out, as sql/pipeline/01_detect.sql does): the per-bucket baseline, robust
z and score of the causal robust seasonal model, and the store buckets that the store-level rule
flags. It leaves out the windows, the sustained runs, the reports and their evidence/data-quality
features (report assembly). See bench/README.md for the model and the exact scope.

The model is causal and recursive: a bucket with |z| >= 3 enters the history clipped to that
band, which changes later seasonal means, level ratios, residuals and scales; and the seasonal
mean is winsorised with the scale and dispersion of the previous daily refit. But nothing a
bucket reads lies in its own day: the seasonal values are at least 24 buckets back, the scale and
dispersion are refitted once a day from residuals before the refit point, and the level ratios
depend on the seasonal means only (not on the clean values of the same day). So the peer sweeps
the series block by block, a block being the buckets from one daily refit point of a series to
its next: block i of every series is computed at once, set-wise in SQL, from the final history of
blocks < i, and appended to that history (kept to the last four weeks). A Python loop runs over
the blocks (about one per day of history), never over rows or series; the result is the
sequential model's, with no iteration to a fixed point.

Usage: peer_duckdb.py LAKE_DIR [--out CSV] [--threads N]
"""

import argparse
import json
import sys
import time

import duckdb

from peer_constants import ACK_A, ACK_B, ACK_C, ACK_D, LANCZOS

# The model's constants (scorer.rs, counts.rs, store.rs), hourly plan: weekly season 168, daily 24,
# scale window one week, dispersion window four weeks, refits once a day.
K = 4
Z_ALERT = 5.0
HISTORY_CLIP = 3.0          # min(3, z_alert)
COUNT_TAIL_FROM = 2.0
WARMUP_DIV = 1.1547005383792515
MEDIAN_CHI2_1 = 0.4549364231195727
MEDIAN_SD_FACTOR = 2.33
MAX_KAPPA = 16.0
SCALE_WINDOW = 168
DISPERSION_WINDOW = 4 * 168
MAX_TERMS = 4096


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


# Transforms (robust.rs), ln Gamma (mrs-core special.rs), the normal quantile (counts.rs tail_z: Acklam) and the pmfs
# of the count tails (counts.rs).


def _horner(coef, v):
    """((c0 v + c1) v + c2) ... as SQL text (coefficients as exact float literals)."""
    s = repr(coef[0])
    for c in coef[1:]:
        s = f"({s} * {v} + {c!r})"
    return s


_lanczos_sum = " + ".join([repr(LANCZOS[0])] + [f"{c!r} / (x + {float(i)!r})" for i, c in enumerate(LANCZOS) if i > 0])
_q_low = f"({_horner(ACK_C, 'sqrt(-2.0 * ln(p))')} / ({_horner(ACK_D + [1.0], 'sqrt(-2.0 * ln(p))')}))"
_q_mid = f"({_horner(ACK_A, '((p - 0.5) * (p - 0.5))')} * (p - 0.5) / {_horner(ACK_B + [1.0], '((p - 0.5) * (p - 0.5))')})"
_q_high = f"(-{_horner(ACK_C, 'sqrt(-2.0 * ln(1.0 - p))')} / ({_horner(ACK_D + [1.0], 'sqrt(-2.0 * ln(1.0 - p))')}))"

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
-- a seasonal value winsorised to [lo, hi]; a missing one adds 0 (greatest/least skip NULLs)
CREATE OR REPLACE TEMP MACRO wins(v, lo, hi) AS CASE WHEN v IS NULL THEN 0.0 ELSE least(greatest(v, lo), hi) END;
-- ln Gamma for x > 0: mrs-core's Lanczos sum (special.rs), the same operations in the same order
CREATE OR REPLACE TEMP MACRO lg_main(x) AS
  0.5 * ln(2.0 * pi()) + (x + 0.5) * ln(x + 7.0 + 0.5) - (x + 7.0 + 0.5) + ln({_lanczos_sum});
CREATE OR REPLACE TEMP MACRO lg(x) AS
  CASE WHEN x < 0.5 THEN ln(pi() / sin(pi() * x)) - lg_main(1.0 - x - 1.0) ELSE lg_main(x - 1.0) END;
CREATE OR REPLACE TEMP MACRO acklam(p) AS
  CASE WHEN p < 0.02425 THEN {_q_low} WHEN p <= 1.0 - 0.02425 THEN {_q_mid} ELSE {_q_high} END;
CREATE OR REPLACE TEMP MACRO tail_z(p) AS
  CASE WHEN p IS NULL THEN NULL WHEN isnan(p) THEN p
       WHEN p <= 0 THEN 'inf'::DOUBLE WHEN p >= 1 THEN '-inf'::DOUBLE ELSE -acklam(p) END;
-- ln pmf at k: family 0 beta negative binomial (alpha, beta, r, lnorm),
-- 1 negative binomial (mu, r, q), 2 Poisson (mu); x1..x5 are the ln Gamma arguments
-- k + r, k + 1, a + k, b + r, a + b + r + k, passed as columns (see lnpmf_args) so that each
-- expanded ln Gamma stays small
CREATE OR REPLACE TEMP MACRO lpmf(fam, k, mu, r, q, lnorm, x1, x2, x3, x4, x5) AS CASE fam
  WHEN 0 THEN lg(x1) - lg(x2) + lg(x3) + lg(x4) - lg(x5) - lnorm
  WHEN 1 THEN lg(x1) - lg(r) - lg(x2) + r * ln(1.0 - q) + k * ln(q)
  ELSE k * ln(mu) - mu - lg(x2) END;
CREATE OR REPLACE TEMP MACRO ratio_up(fam, k, mu, r, q, a, b) AS CASE fam
  WHEN 0 THEN (k + r) / (k + 1.0) * (a + k) / (a + b + r + k)
  WHEN 1 THEN (k + r) / (k + 1.0) * q
  ELSE mu / (k + 1.0) END;
"""


def lnpmf_args(k):
    """The ln Gamma arguments of lpmf at k, as SQL select items (the order of operations of
    counts.rs: k + r, k + 1, alpha + k, beta + r, alpha + beta + r + k)."""
    return f"{k} + r AS x1, {k} + 1.0 AS x2, a + {k} AS x3, bb + r AS x4, a + bb + r + {k} AS x5"


def tails(con):
    """The tail z of y under the posterior predictive distribution of a count whose mean is known
    through the nlag seasonal values behind bref (counts.rs predictive_z), for every bucket with
    |z| >= 2 (table tz(sid, t, tz)). The pmf terms are generated as rows and summed; as in
    counts.rs, one anchor term per tail is taken from ln Gamma (mrs-core's Lanczos sum, the same
    operations) and the others from it through the ratios pmf(k + 1) / pmf(k), so that the
    anchor's rounding is a common factor (the complement 1 - cdf of a far upper tail would
    otherwise magnify independent ulp-level errors of ln Gamma at large arguments)."""
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE tq AS
    SELECT *,
      -- family 0: beta negative binomial (kappa > 1e-9), else the Poisson-gamma predictive, a
      -- negative binomial (family 1) or, for a huge size, Poisson (family 2)
      CASE WHEN kappa > 1e-9 THEN 0 WHEN 1.0 / size > 1e-9 THEN 1 ELSE 2 END AS fam,
      CASE WHEN kappa > 1e-9 THEN y >= bref ELSE y >= size / nlag END AS upper
    FROM (SELECT sid, t, y, bref, kappa, nlag, nlag * bref + 0.5 AS size, nlag * bref + 0.5 AS a,
                 CASE WHEN kappa > 1e-9 THEN nlag * (1.0 / kappa) + 0.5 END AS bb
          FROM zz WHERE abs(z0) >= {COUNT_TAIL_FROM} AND y >= 0 AND bref >= 0 AND isfinite(y) AND isfinite(bref));
    CREATE OR REPLACE TEMP TABLE tq2 AS
    SELECT sid, t, fam, upper, a, bb,
      CASE fam WHEN 0 THEN NULL ELSE size / nlag END AS mu,
      CASE fam WHEN 0 THEN 1.0 / kappa WHEN 1 THEN 1.0 / (1.0 / size) END AS r,
      CASE fam WHEN 1 THEN (size / nlag) / (size / nlag + 1.0 / (1.0 / size)) END AS q,
      CASE fam WHEN 0 THEN lg(a) + lg(bb) - lg(a + bb) + lg(1.0 / kappa) END AS lnorm,
      CASE WHEN upper THEN floor(y) ELSE ceil(y) END AS k0
    FROM tq;
    """)
    # Which terms each tail sums (klo NULL = out of reach, or p = 1 below), from which anchor:
    # beta NB upper: P(Y >= k0) = 1 - cdf(k0 - 1), terms k0-1 down to 0; lower: cdf(k0), terms
    # k0 down to 0; NB / Poisson upper: terms k0 up while they matter (geometric bound of the rest)
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE tr AS
    SELECT *, lpmf(fam, ka, mu, r, q, lnorm, x1, x2, x3, x4, x5) AS lp0
    FROM (SELECT *, {lnpmf_args('ka')} FROM (
    SELECT *, CASE WHEN fam <> 0 AND upper THEN klo ELSE khi END AS ka FROM (SELECT *, CASE
        WHEN upper AND k0 <= 0 THEN NULL
        WHEN fam = 0 AND upper THEN CASE WHEN k0 - 1 < {MAX_TERMS} THEN 0 END
        WHEN upper THEN k0
        ELSE CASE WHEN k0 < {MAX_TERMS} THEN 0 END END AS klo,
      CASE
        WHEN upper AND k0 <= 0 THEN NULL
        WHEN fam = 0 AND upper THEN k0 - 1
        WHEN upper THEN k0 - 1 + least({MAX_TERMS},
             CASE WHEN rho0 < 1.0 THEN ceil(-32.3 / ln(rho0)) + 1 ELSE {MAX_TERMS} END)
        ELSE k0 END AS khi
      FROM (SELECT *, ratio_up(fam, k0, mu, r, q, a, bb) AS rho0 FROM tq2))));
    CREATE OR REPLACE TEMP TABLE ts AS
    SELECT sid, t, least(sum(term), 1.0) AS s, any_value(lp0) + sum(lr) AS lnext FROM (
      SELECT *, exp(lp0 + CASE WHEN up
          THEN coalesce(sum(lr) OVER (PARTITION BY sid, t ORDER BY k ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0.0)
          ELSE -sum(lr) OVER (PARTITION BY sid, t ORDER BY k ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) END) AS term
      FROM (SELECT sid, t, k, up, lp0,
                   CASE WHEN NOT up AND k = khi THEN 0.0 ELSE ln(ratio_up(fam, k, mu, r, q, a, bb)) END AS lr
            FROM (SELECT *, fam <> 0 AND upper AS up, unnest(range(CAST(klo AS BIGINT), CAST(khi AS BIGINT) + 1)) AS k
                  FROM tr WHERE klo IS NOT NULL)))
    GROUP BY sid, t;
    """)
    # NB / Poisson upper tails: the geometric bound of what follows the last term
    con.execute("""
    CREATE OR REPLACE TEMP TABLE tp AS
    SELECT tr.sid, tr.t, tr.fam, tr.upper, tr.k0, tr.a, tr.bb, tr.r, tr.lnorm,
      CASE
        WHEN tr.upper AND tr.k0 <= 0 THEN 1.0
        WHEN tr.klo IS NULL THEN NULL
        WHEN tr.fam = 0 AND tr.upper THEN 1.0 - ts.s
        WHEN tr.upper THEN
          CASE WHEN exp(ts.lnext) > 1e-13 * ts.s THEN NULL
               ELSE least(ts.s + exp(ts.lnext) / (1.0 - ratio_up(tr.fam, tr.khi, tr.mu, tr.r, tr.q, tr.a, tr.bb)), 1.0) END
        ELSE ts.s END AS p
    FROM tr LEFT JOIN ts USING (sid, t)
    """)
    # beta NB upper tails whose complement cancels (<= 1e-9): the sum of the terms from k0 on
    # until a term is below 1e-13 of the sum, at most MAX_TERMS (a lower bound, as in counts.rs)
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE tfar AS
    SELECT sid, t, arg_min(cs, j) AS s FROM (
      SELECT sid, t, j, cs, lead(term) OVER w AS nxt FROM (
        SELECT sid, t, j, term, sum(term) OVER w AS cs FROM (
          SELECT sid, t, j, exp(lp0 + coalesce(sum(lr) OVER w1, 0.0)) AS term FROM (
            SELECT sid, t, j, lp0, ln(ratio_up(0, k0 + j, NULL, r, NULL, a, bb)) AS lr FROM (
              SELECT *, unnest(range({MAX_TERMS})) AS j FROM (
                SELECT *, lpmf(0, k0, NULL, r, NULL, lnorm, x1, x2, x3, x4, x5) AS lp0 FROM (
                  SELECT *, {lnpmf_args('k0')} FROM tp
                  WHERE fam = 0 AND upper AND k0 > 0 AND p IS NOT NULL AND NOT p > 1e-9))))
          WINDOW w1 AS (PARTITION BY sid, t ORDER BY j ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING))
        WINDOW w AS (PARTITION BY sid, t ORDER BY j ROWS UNBOUNDED PRECEDING))
      WINDOW w AS (PARTITION BY sid, t ORDER BY j))
    WHERE nxt IS NULL OR nxt <= 1e-13 * cs
    GROUP BY ALL;
    CREATE OR REPLACE TEMP TABLE tz AS
    SELECT sid, t, CASE WHEN upper THEN tail_z(pp) ELSE -tail_z(pp) END AS tz FROM (
      SELECT tp.sid, tp.t, tp.upper,
        CASE WHEN tfar.s IS NOT NULL THEN least(greatest(tfar.s, tp.p), 1.0)
             ELSE least(tp.p, 1.0) END AS pp
      FROM tp LEFT JOIN tfar USING (sid, t))
    """)


def static(con):
    """What does not depend on the clean history: per present bucket the season in use (the
    first of 168, 24 with two seasons of history and >= 2 of its 4 lags present), the number of
    lags, the warm-up season, the run of scored buckets with one season (the level correction's
    scope), the daily refit points (numbered per series) and the block of each bucket: the index
    of the last refit point at or before it (0 before the first)."""
    pres = lambda s, k: f"CAST(lag(y, {s * k}) OVER w IS NOT NULL AS INT)"
    n = lambda s: " + ".join(pres(s, k) for k in range(1, K + 1))
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE base0 AS
    SELECT sid, t, y,
           CASE WHEN t - first >= 336 AND n168 >= 2 THEN 168 WHEN t - first >= 48 AND n24 >= 2 THEN 24 END AS season,
           CASE WHEN t - first >= 336 AND n168 >= 2 THEN n168 WHEN t - first >= 48 AND n24 >= 2 THEN n24 END AS nlag,
           CASE WHEN t - first >= 168 THEN 168 WHEN t - first >= 24 THEN 24 END AS poff
    FROM (SELECT *, {n(168)} AS n168, {n(24)} AS n24 FROM grid WINDOW w AS (PARTITION BY sid ORDER BY t))
    WHERE y IS NOT NULL;
    CREATE OR REPLACE TEMP TABLE base AS
    SELECT b.*, r.run FROM base0 b LEFT JOIN (
      SELECT sid, t, sum(CAST(season IS DISTINCT FROM ps AS INT)) OVER (PARTITION BY sid ORDER BY t) AS run
      FROM (SELECT sid, t, season, lag(season) OVER (PARTITION BY sid ORDER BY t) AS ps
            FROM base0 WHERE season IS NOT NULL)) r USING (sid, t);
    """)
    # daily refit points: the first scored bucket, then the first scored bucket at least 24
    # after the previous point (runs of consecutive scored buckets, walked recursively)
    con.execute("""
    CREATE OR REPLACE TEMP TABLE runs AS
    SELECT sid, row_number() OVER (PARTITION BY sid ORDER BY a) AS r, a, b FROM (
      SELECT sid, min(t) AS a, max(t) AS b FROM (
        SELECT sid, t, t - row_number() OVER (PARTITION BY sid ORDER BY t) AS g
        FROM base WHERE season IS NOT NULL) GROUP BY sid, g);
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
    SELECT sid, pt, row_number() OVER (PARTITION BY sid ORDER BY pt) AS i FROM (
      SELECT sid, unnest(range(first_point, b + 1, 24)) AS pt FROM run_points);
    CREATE OR REPLACE TEMP TABLE blocks AS
    SELECT b.*, coalesce(p.i, 0) AS blk, p.pt AS p
    FROM base b ASOF LEFT JOIN points p ON b.sid = p.sid AND b.t >= p.pt;
    """)


def warm_up(con):
    """Block 0 (before the first refit point: nothing scored): the clean history is the raw
    values, the residuals are one-season differences. Starts the history table hist."""
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE hist AS
    SELECT b.sid, b.t, b.y AS c, CAST(NULL AS DOUBLE) AS ratio, b.run,
      (ansc(b.y) - ansc(pv.y)) / {WARMUP_DIV} AS r, 0.5 * (b.y + pv.y) AS rb, pv.y AS ref,
      {WARMUP_DIV} AS div
    FROM blocks b LEFT JOIN base pv ON pv.sid = b.sid AND pv.t = b.t - b.poff
    WHERE b.blk = 0
    """)


def step(con, i):
    """Block i of every series that has one: the buckets from its i-th daily refit point to the
    next. Everything a bucket of block i reads lies in earlier blocks (seasonal values at least
    24 back, residuals before the refit point) or is not recursive (the level ratios), so the
    whole block is computed at once from the final history of blocks < i, and appended to it."""
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE blk AS SELECT * FROM blocks WHERE blk = {i};
    CREATE OR REPLACE TEMP TABLE pnow AS SELECT sid, pt FROM points WHERE i = {i};
    """)
    # the refit at the point: dispersion from the last four weeks of residuals (those with a
    # positive expected value, split at their median expected value, the variance ratio shrunk
    # by one standard error), scale from the last week's on the fitted scale
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE win AS
    SELECT p.sid, p.pt, p.pt - h.t AS off, h.r * h.r AS r2, h.rb, h.c, h.ref, h.div
    FROM pnow p JOIN hist h ON h.sid = p.sid AND h.t >= p.pt - {DISPERSION_WINDOW} AND h.t < p.pt
    WHERE h.r IS NOT NULL
    """)
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE fit AS
    WITH mid AS (SELECT *, median(rb) FILTER (WHERE rb > 0) OVER (PARTITION BY sid) AS b_mid FROM win),
    halves AS (
      SELECT sid, count(*) AS n,
        median(r2) FILTER (WHERE rb > 0 AND NOT rb > b_mid) / {MEDIAN_CHI2_1} AS v_lo,
        median(rb) FILTER (WHERE rb > 0 AND NOT rb > b_mid) AS b_lo,
        count(*) FILTER (WHERE rb > 0 AND NOT rb > b_mid) AS n_lo,
        median(r2) FILTER (WHERE rb > 0 AND rb > b_mid) / {MEDIAN_CHI2_1} AS v_hi,
        median(rb) FILTER (WHERE rb > 0 AND rb > b_mid) AS b_hi,
        count(*) FILTER (WHERE rb > 0 AND rb > b_mid) AS n_hi
      FROM mid GROUP BY sid),
    shr AS (SELECT *, v_hi / v_lo * exp(-{MEDIAN_SD_FACTOR} * sqrt(2.0 / least(n_lo, n_hi))) AS rho FROM halves)
    SELECT sid, n,
      CASE WHEN n < 8 OR n_lo < 2 OR n_hi < 2 OR v_lo IS NULL OR isnan(v_lo) OR v_lo <= 0
                OR v_hi IS NULL OR NOT isfinite(v_hi) THEN 0.0
           WHEN rho <= 1.0 OR b_hi - rho * b_lo <= 0 THEN 0.0
           ELSE least((rho - 1.0) / (b_hi - rho * b_lo), {MAX_KAPPA}) END AS kappa
    FROM shr
    """)
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE pcur AS
    SELECT p.sid, coalesce(s.scale, 1.0) AS scale, coalesce(s.kappa, 0.0) AS kappa
    FROM pnow p LEFT JOIN (
      SELECT f.sid, CASE WHEN f.n < 8 THEN 0.0 ELSE f.kappa END AS kappa,
        CASE WHEN f.n < 8 THEN 1.0 ELSE coalesce(greatest(sqrt(
          median(pow((nbt(w.c, f.kappa) - nbt(w.ref, f.kappa)) / w.div, 2)) / {MEDIAN_CHI2_1}), 1.0), 1.0) END AS scale
      FROM fit f LEFT JOIN win w ON w.sid = f.sid AND w.off <= {SCALE_WINDOW}
      GROUP BY f.sid, f.kappa, f.n) s USING (sid)
    """)
    # seasonal level: the mean of the present lags winsorised at their median +- 2 sd, sd from
    # the scale and dispersion of the last refit before t (the previous point's at the point
    # itself, 1 and 0 before the first)
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE st AS
    SELECT *, (wins(l1, lo, hi) + wins(l2, lo, hi) + wins(l3, lo, hi) + wins(l4, lo, hi)) / nlag AS m
    FROM (SELECT *, m0 - 2.0 * sd0 AS lo, m0 + 2.0 * sd0 AS hi FROM (
      SELECT *, sp * sqrt(greatest(m0, 0.0) + kp * m0 * m0) AS sd0
      FROM (SELECT b.sid, b.t, b.y, b.season, b.nlag, b.run,
                   h1.c AS l1, h2.c AS l2, h3.c AS l3, h4.c AS l4,
                   list_median(list_filter([h1.c, h2.c, h3.c, h4.c], lambda v: v IS NOT NULL)) AS m0,
                   CASE WHEN b.t = b.p THEN coalesce(pp.scale, 1.0) ELSE pc.scale END AS sp,
                   CASE WHEN b.t = b.p THEN coalesce(pp.kappa, 0.0) ELSE pc.kappa END AS kp
            FROM blk b JOIN pcur pc USING (sid) LEFT JOIN pprev pp USING (sid)
            LEFT JOIN hist h1 ON h1.sid = b.sid AND h1.t = b.t - b.season
            LEFT JOIN hist h2 ON h2.sid = b.sid AND h2.t = b.t - 2 * b.season
            LEFT JOIN hist h3 ON h3.sid = b.sid AND h3.t = b.t - 3 * b.season
            LEFT JOIN hist h4 ON h4.sid = b.sid AND h4.t = b.t - 4 * b.season
            WHERE b.season IS NOT NULL)))
    """)
    # level correction: median of (y + 1) / (m + 1) over the last L scored buckets of the same
    # season run (48 weekly, 12 daily), at least 24 / 6 of them, else 1; baseline b = m * level
    con.execute("""
    CREATE OR REPLACE TEMP TABLE lv AS
    SELECT st.*, x.ratio, x.level, m * x.level AS b FROM st JOIN (
      SELECT sid, t,
        CASE WHEN season = 168 THEN CASE WHEN n48 >= 24 THEN med48 ELSE 1.0 END
             ELSE CASE WHEN n12 >= 6 THEN med12 ELSE 1.0 END END AS level, ratio
      FROM (SELECT *,
              median(ratio) OVER w48 AS med48, count(ratio) OVER w48 AS n48,
              median(ratio) OVER w12 AS med12, count(ratio) OVER w12 AS n12
            FROM (SELECT sid, t, run, season, CASE WHEN m >= 0 AND y >= 0 THEN (y + 1.0) / (m + 1.0) END AS ratio,
                         TRUE AS now FROM st
                  UNION ALL
                  SELECT h.sid, h.t, h.run, NULL, h.ratio, FALSE FROM hist h JOIN pnow p USING (sid)
                  WHERE h.t >= p.pt - 48 AND h.ratio IS NOT NULL)
            WINDOW w48 AS (PARTITION BY sid, run ORDER BY t RANGE BETWEEN 48 PRECEDING AND 1 PRECEDING),
                   w12 AS (PARTITION BY sid, run ORDER BY t RANGE BETWEEN 12 PRECEDING AND 1 PRECEDING))
      WHERE now) x USING (sid, t)
    """)
    # z against the nearer of the seasonal mean and the baseline (y clamped into [min, max]),
    # with the scale and dispersion of this block's refit
    con.execute("""
    CREATE OR REPLACE TEMP TABLE zz AS
    SELECT *, (nbt(y, kappa) - nbt(bref, kappa)) / scale AS z0 FROM (
      SELECT lv.*, pc.scale, pc.kappa,
        CASE WHEN lv.y > greatest(lv.b, lv.m) THEN greatest(lv.b, lv.m)
             WHEN lv.y < least(lv.b, lv.m) THEN least(lv.b, lv.m) ELSE lv.y END AS bref
      FROM lv JOIN pcur pc USING (sid))
    """)
    tails(con)
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE out AS
    SELECT *, least(abs(z) / {2 * Z_ALERT}, 1.0) AS score,
      CASE WHEN abs(z) >= {HISTORY_CLIP}
           THEN inv_nbt(nbt(bref, kappa) + sign(z) * {HISTORY_CLIP} * scale, kappa) ELSE y END AS c
    FROM (SELECT zz.sid, zz.t, zz.y, zz.b, zz.ratio, zz.run, zz.bref, zz.kappa, zz.scale,
                 CASE WHEN tz.tz IS NOT NULL AND tz.tz * zz.z0 > 0
                      THEN sign(zz.z0) * least(abs(zz.z0), abs(tz.tz)) ELSE zz.z0 END AS z
          FROM zz LEFT JOIN tz USING (sid, t))
    """)
    # the block joins the history: scored buckets with their clean value and residual against
    # the baseline, then the warm-up buckets of the block (lags missing) with one-season
    # differences against the clean history (which may be this block's)
    con.execute(f"""
    INSERT INTO result SELECT sid, t, y, b, z, score FROM out;
    INSERT INTO hist SELECT sid, t, c, ratio, run, ansc(c) - ansc(b), b, b, 1.0 FROM out;
    INSERT INTO hist
    SELECT b.sid, b.t, b.y, NULL, b.run, (ansc(b.y) - ansc(pv.c)) / {WARMUP_DIV}, 0.5 * (b.y + pv.c), pv.c,
           {WARMUP_DIV}
    FROM blk b LEFT JOIN (SELECT sid, t, c FROM hist UNION ALL
                          SELECT sid, t, y FROM blk WHERE season IS NULL) pv
      ON pv.sid = b.sid AND pv.t = b.t - b.poff
    WHERE b.season IS NULL;
    CREATE OR REPLACE TEMP TABLE pprev AS SELECT * FROM pcur;
    """)


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
    static(con)
    con.execute("""
    CREATE OR REPLACE TEMP TABLE result AS SELECT sid, t, y, y AS baseline, y AS z, y AS score FROM grid LIMIT 0;
    CREATE OR REPLACE TEMP TABLE pprev AS SELECT sid, 1.0 AS scale, 0.0 AS kappa FROM series LIMIT 0;
    """)
    warm_up(con)
    blocks = con.execute("SELECT coalesce(max(i), 0) FROM points").fetchone()[0]
    for i in range(1, blocks + 1):
        step(con, i)
        if i % 4 == 0:
            # the history a later block reads starts 4 weeks before its refit point
            con.execute(f"""
            CREATE OR REPLACE TEMP TABLE hist AS
            SELECT h.* FROM hist h JOIN points p ON p.sid = h.sid AND p.i = {i + 1}
            WHERE h.t >= p.pt - {DISPERSION_WINDOW}
            """)
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
    return con, {"engine": "duckdb", "version": duckdb.__version__, "blocks": blocks,
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
