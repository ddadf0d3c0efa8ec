"""The per-bucket detection model of mrs-detect 0.4, written for Polars: the same steps as
bench/peer_duckdb.py (read its docstring and bench/README.md for the model and the scope),
expressed with Polars expressions (`over`, `shift`, `rolling_median_by`, list expressions, joins
and group-bys). As there, the series are swept block by block (the buckets from one daily refit
point to the next, block i of every series at once, from the final history of earlier blocks): a
Python loop over blocks (about one per day of history), never over rows or series.

ln Gamma has no Polars expression: it is written as mrs-core's Lanczos sum (special.rs), term by
term, from Polars arithmetic (the DuckDB peer uses DuckDB's lgamma).

Usage: peer_polars.py LAKE_DIR [--out CSV]
"""

import argparse
import json
import math
import sys
import time

import polars as pl

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
A0 = 2.0 * math.sqrt(0.375)
HOUR_US = 3_600_000_000

c_, lit = pl.col, pl.lit


# --- transforms (robust.rs) -------------------------------------------------------------------

def ansc(y):
    return pl.when(y >= 0).then(2.0 * (y + 0.375).sqrt()).otherwise(2.0 * A0 - 2.0 * (-y + 0.375).sqrt())


def nbg(v, k):
    return 2.0 / k.sqrt() * (k.sqrt() * (v + 0.375).sqrt()).arcsinh()


def nbt(y, k):
    return (pl.when(k < 1e-9).then(ansc(y))
            .when(y >= 0).then(nbg(y, k))
            .otherwise(2.0 * nbg(lit(0.0), k) - nbg(-y, k)))


def inv_ansc(a):
    return (pl.when(a >= A0).then((a / 2.0).pow(2) - 0.375)
            .otherwise(-(((2.0 * A0 - a) / 2.0).pow(2) - 0.375)))


def nbinv1(g, k):
    return (g * k.sqrt() / 2.0).sinh().pow(2) / k - 0.375


def inv_nbt(a, k):
    g0 = nbt(lit(0.0), k)
    return (pl.when(k < 1e-9).then(inv_ansc(a))
            .when(a >= g0).then(nbinv1(a, k))
            .otherwise(-nbinv1(2.0 * g0 - a, k)))


# --- ln Gamma (mrs-core special.rs, the same Lanczos sum term by term), the normal quantile
# (counts.rs tail_z: Acklam) and the pmfs of the count tails (counts.rs) -------------------------

LN_2PI_HALF = 0.5 * math.log(2.0 * math.pi)


def _lg_main(x):
    a = lit(LANCZOS[0])
    for i, coef in enumerate(LANCZOS[1:], start=1):
        a = a + coef / (x + float(i))
    t = x + 7.0 + 0.5
    return LN_2PI_HALF + (x + 0.5) * t.log() - t + a.log()


def lg(x):
    """ln Gamma(x) for x > 0 (reflection below 0.5, as special.rs)."""
    return (pl.when(x < 0.5)
            .then((math.pi / (math.pi * x).sin()).log() - _lg_main(1.0 - x - 1.0))
            .otherwise(_lg_main(x - 1.0)))


def _horner(coef, v):
    e = lit(coef[0])
    for co in coef[1:]:
        e = e * v + co
    return e


def tail_z(p):
    """Phi^-1(1 - p), +inf at p <= 0, -inf at p >= 1 (counts.rs tail_z)."""
    ql = (-2.0 * p.log()).sqrt()
    qh = (-2.0 * (1.0 - p).log()).sqrt()
    q = p - 0.5
    r = q * q
    lower = (pl.when(p < 0.02425).then(_horner(ACK_C, ql) / _horner(ACK_D + [1.0], ql))
             .when(p <= 1.0 - 0.02425).then(_horner(ACK_A, r) * q / _horner(ACK_B + [1.0], r))
             .otherwise(-_horner(ACK_C, qh) / _horner(ACK_D + [1.0], qh)))
    return (pl.when(p.is_null()).then(None).when(p.is_nan()).then(p)
            .when(p <= 0).then(float("inf")).when(p >= 1).then(float("-inf"))
            .otherwise(-lower))


def lpmf(k):
    """ln pmf at k: family 0 beta negative binomial (a, bb, r, lnorm), 1 negative binomial
    (mu, r, q), 2 Poisson (mu); columns of the tail query. Evaluated once per tail (its anchor)."""
    fam, mu, r, q, a, b = c_("fam"), c_("mu"), c_("r"), c_("q"), c_("a"), c_("bb")
    return (pl.when(fam == 0)
            .then(lg(k + r) - lg(k + 1.0) + lg(a + k) + lg(b + r) - lg(a + b + r + k) - c_("lnorm"))
            .when(fam == 1)
            .then(lg(k + r) - lg(r) - lg(k + 1.0) + r * (1.0 - q).log() + k * q.log())
            .otherwise(k * mu.log() - mu - lg(k + 1.0)))


def ratio_up(k):
    fam, mu, r, q, a, b = c_("fam"), c_("mu"), c_("r"), c_("q"), c_("a"), c_("bb")
    return (pl.when(fam == 0).then((k + r) / (k + 1.0) * (a + k) / (a + b + r + k))
            .when(fam == 1).then((k + r) / (k + 1.0) * q)
            .otherwise(mu / (k + 1.0)))


# --- data -------------------------------------------------------------------------------------

def prepare(lake):
    sales = pl.scan_parquet(f"{lake}/input/sales/*.parquet")
    stores = pl.scan_parquet(f"{lake}/input/stores/*.parquet").select("store_id", "region")
    hol = pl.scan_parquet(f"{lake}/input/holidays/*.parquet").select("day", "region")
    hol_days = pl.concat([
        stores.join(hol.filter(c_("region").is_null()).select("day"), how="cross"),
        stores.join(hol.filter(c_("region").is_not_null()), on="region"),
    ]).select("store_id", "day").unique()
    clean = (sales
             .filter(c_("store_id").is_not_null() & (c_("store_id") != "")
                     & c_("sku").is_not_null() & (c_("sku") != "") & c_("ts").is_not_null()
                     & c_("units").is_not_null() & c_("units").is_finite()
                     & (c_("units").abs() <= 1e9))
             .with_columns(day=c_("ts").dt.convert_time_zone("UTC").dt.date(),
                           t=c_("ts").dt.epoch("us") // HOUR_US)
             .join(hol_days, on=["store_id", "day"], how="anti"))
    cells = clean.group_by("store_id", "sku", "t").agg(y=c_("units").sum()).collect()
    totals = cells.group_by("store_id", "t").agg(y=c_("y").sum())
    last = totals.group_by("store_id").agg(last=c_("t").max(), tfirst=c_("t").min())
    series = (pl.concat([
        cells.group_by("store_id", "sku").agg(first=c_("t").min()),
        last.select("store_id", lit(None, pl.String).alias("sku"), c_("tfirst").alias("first")),
    ]).join(last.select("store_id", "last"), on="store_id")
        .sort("store_id", "sku", nulls_last=False)
        .with_row_index("sid"))
    grid = (series.with_columns(t=pl.int_ranges("first", c_("last") + 1)).explode("t")
            .join(totals.rename({"y": "ytot"}), on=["store_id", "t"], how="left")
            .join(cells.rename({"y": "ycell"}), on=["store_id", "sku", "t"], how="left")
            .with_columns(y=pl.when(c_("ytot").is_null()).then(None)
                          .when(c_("sku").is_null()).then(c_("ytot"))
                          .otherwise(c_("ycell").fill_null(0.0)))
            .select("sid", "t", "first", "y")
            .sort("sid", "t"))
    return series, grid


def tails(zz):
    """The tail z of y under the posterior predictive distribution of a count whose mean is known
    through the nlag seasonal values behind bref (counts.rs predictive_z), for every bucket with
    |z| >= 2: the pmf terms are exploded into rows and summed. Returns (sid, t, tz)."""
    y, bref, kappa, nlag = c_("y"), c_("bref"), c_("kappa"), c_("nlag").cast(pl.Float64)
    size = nlag * bref + 0.5
    fam = (pl.when(kappa > 1e-9).then(0).when(1.0 / size > 1e-9).then(1).otherwise(2))
    tq = (zz.filter((c_("z0").abs() >= COUNT_TAIL_FROM) & (y >= 0) & (bref >= 0) & y.is_finite() & bref.is_finite())
          .select("sid", "t", "y", "bref", "kappa", nlag=nlag, size=size, fam=fam)
          .with_columns(
              upper=pl.when(c_("fam") == 0).then(y >= bref).otherwise(y >= c_("size") / c_("nlag")),
              a=c_("size"),
              bb=pl.when(c_("fam") == 0).then(c_("nlag") * (1.0 / kappa) + 0.5),
              mu=pl.when(c_("fam") != 0).then(c_("size") / c_("nlag")),
              r=pl.when(c_("fam") == 0).then(1.0 / kappa).when(c_("fam") == 1).then(1.0 / (1.0 / c_("size"))))
          .with_columns(
              q=pl.when(c_("fam") == 1).then(c_("mu") / (c_("mu") + c_("r"))),
              k0=pl.when(c_("upper")).then(y.floor()).otherwise(y.ceil()))
          .with_columns(lnorm=pl.when(c_("fam") == 0)
                        .then(lg(c_("a")) + lg(c_("bb")) - lg(c_("a") + c_("bb")) + lg(c_("r")))))
    # Which terms each query sums (klo NULL = out of reach, or p = 1 below):
    # beta NB upper: P(Y >= k0) = 1 - cdf(k0 - 1), terms 0..k0-1; lower: cdf(k0), terms 0..k0;
    # NB / Poisson upper: terms k0.. while they matter (geometric remainder bound), lower 0..k0
    upper, k0, fam0 = c_("upper"), c_("k0"), c_("fam") == 0
    tq = tq.with_columns(rho0=ratio_up(k0)).with_columns(
        klo=pl.when(upper & (k0 <= 0)).then(None)
        .when(fam0 & upper).then(pl.when(k0 - 1 < MAX_TERMS).then(0.0))
        .when(upper).then(k0)
        .otherwise(pl.when(k0 < MAX_TERMS).then(0.0)),
        khi=pl.when(upper & (k0 <= 0)).then(None)
        .when(fam0 & upper).then(k0 - 1)
        .when(upper).then(k0 - 1 + pl.min_horizontal(
            lit(float(MAX_TERMS)),
            pl.when(c_("rho0") < 1.0).then((-32.3 / c_("rho0").log()).ceil() + 1).otherwise(float(MAX_TERMS))))
        .otherwise(k0))
    # One anchor term per tail from ln Gamma (the last term of a downward sum, the first of an
    # upward one), the others from it through the ratios pmf(k + 1) / pmf(k), as counts.rs does:
    # the anchor's rounding is then a common factor (1 - cdf of a far upper tail would otherwise
    # magnify independent ulp-level errors of ln Gamma at large arguments).
    up = (c_("fam") != 0) & upper
    tq = tq.with_columns(lp0=lpmf(pl.when(up).then(c_("klo")).otherwise(c_("khi"))))
    params = ["fam", "mu", "r", "q", "a", "bb", "lnorm"]
    g = ["sid", "t"]
    lr = c_("lr")
    ts = (tq.filter(c_("klo").is_not_null())
          .select("sid", "t", *params, "lp0", "khi", up=up,
                  k=pl.int_ranges(c_("klo").cast(pl.Int64), c_("khi").cast(pl.Int64) + 1))
          .explode("k").with_columns(k=c_("k").cast(pl.Float64))
          .with_columns(lr=pl.when(~c_("up") & (c_("k") == c_("khi"))).then(0.0).otherwise(ratio_up(c_("k")).log()))
          .with_columns(term=(c_("lp0") + pl.when(c_("up")).then(lr.shift(1).fill_null(0.0).cum_sum().over(g))
                              .otherwise(-lr.cum_sum(reverse=True).over(g))).exp())
          .group_by(g).agg(s=c_("term").sum().clip(upper_bound=1.0), lnext=c_("lp0").first() + lr.sum()))
    nxt = c_("lnext").exp()
    tp = (tq.join(ts, on=["sid", "t"], how="left")
          .with_columns(p=pl.when(upper & (k0 <= 0)).then(1.0)
                        .when(c_("klo").is_null()).then(None)
                        .when(fam0 & upper).then(1.0 - c_("s"))
                        .when(upper).then(pl.when(nxt > 1e-13 * c_("s")).then(None)
                                          .otherwise((c_("s") + nxt / (1.0 - ratio_up(c_("khi")))).clip(upper_bound=1.0)))
                        .otherwise(c_("s"))))
    # beta NB upper tails whose complement cancels (<= 1e-9): the sum of the terms from k0 on
    # until a term is below 1e-13 of the sum, at most MAX_TERMS (a lower bound, as in counts.rs)
    far = (tp.filter(fam0 & upper & (k0 > 0) & c_("p").is_not_null() & ~(c_("p") > 1e-9))
           .with_columns(lpf=lpmf(c_("k0")))
           .select("sid", "t", *params, "k0", "lpf", j=pl.int_ranges(0, MAX_TERMS)).explode("j")
           .with_columns(lr=ratio_up(c_("k0") + c_("j").cast(pl.Float64)).log())
           .with_columns(term=(c_("lpf") + lr.shift(1).fill_null(0.0).cum_sum().over(g)).exp())
           .with_columns(cs=c_("term").cum_sum().over(g))
           .with_columns(nxt=c_("term").shift(-1).over(g))
           .filter(c_("nxt").is_null() | (c_("nxt") <= 1e-13 * c_("cs")))
           .group_by(g).agg(sfar=c_("cs").sort_by("j").first()))
    return (tp.join(far, on=["sid", "t"], how="left")
            .with_columns(pp=pl.when(c_("sfar").is_not_null())
                          .then(pl.max_horizontal("sfar", "p").clip(upper_bound=1.0))
                          .otherwise(c_("p").clip(upper_bound=1.0)))
            .select("sid", "t", tz=pl.when(upper).then(tail_z(c_("pp"))).otherwise(-tail_z(c_("pp")))))


def static(grid):
    """What does not depend on the clean history: per present bucket the season in use (the
    first of 168, 24 with two seasons of history and >= 2 of its 4 lags present), the number of
    lags, the warm-up season, the run of scored buckets with one season (the level correction's
    scope), the daily refit points (numbered per series) and the block of each bucket: the index
    of the last refit point at or before it (0 before the first)."""
    present = lambda s, k: c_("y").shift(s * k).over("sid").is_not_null().cast(pl.Int32)
    n = lambda s: pl.sum_horizontal([present(s, k) for k in range(1, K + 1)])
    h = c_("t") - c_("first")
    base = grid.with_columns(n168=n(168), n24=n(24)).filter(c_("y").is_not_null()).with_columns(
        season=pl.when((h >= 336) & (c_("n168") >= 2)).then(168).when((h >= 48) & (c_("n24") >= 2)).then(24),
        nlag=pl.when((h >= 336) & (c_("n168") >= 2)).then(c_("n168")).when((h >= 48) & (c_("n24") >= 2)).then(c_("n24")),
        poff=pl.when(h >= 168).then(168).when(h >= 24).then(24),
    ).drop("n168", "n24", "first")
    scored = base.filter(c_("season").is_not_null())
    runs = scored.select("sid", "t", run=(c_("season") != c_("season").shift(1)).fill_null(True)
                         .cast(pl.Int32).cum_sum().over("sid"))
    base = base.join(runs, on=["sid", "t"], how="left").sort("sid", "t")
    # daily refit points: the first scored bucket, then the first scored bucket at least 24
    # after the previous point; runs of consecutive scored buckets are walked run by run
    cons = (scored.select("sid", "t")
            .with_columns(g=c_("t") - pl.int_range(pl.len()).over("sid"))
            .group_by("sid", "g").agg(a=c_("t").min(), b=c_("t").max())
            .sort("sid", "a").with_columns(r=pl.int_range(pl.len()).over("sid")))
    parts, due = [], None
    for r in range(int(cons["r"].max()) + 1):
        cur = cons.filter(c_("r") == r)
        cur = (cur.join(due, on="sid", how="left") if due is not None
               else cur.with_columns(due=lit(None, pl.Int64)))
        cur = cur.with_columns(fp=pl.max_horizontal("a", "due"))
        cur = cur.with_columns(due=pl.when(c_("fp") <= c_("b"))
                               .then(c_("fp") + 24 * ((c_("b") - c_("fp")) // 24 + 1))
                               .otherwise(c_("due")))
        parts.append(cur.filter(c_("fp") <= c_("b")).select("sid", "fp", "b"))
        due = cur.select("sid", "due") if due is None else pl.concat([
            due.join(cur, on="sid", how="anti"), cur.select("sid", "due")])
    points = (pl.concat(parts).with_columns(pt=pl.int_ranges("fp", c_("b") + 1, 24))
              .explode("pt").select("sid", "pt").sort("sid", "pt")
              .with_columns(i=pl.int_range(1, pl.len() + 1).over("sid")))
    blocks = (base.join(points.rename({"pt": "t"}).with_columns(p=c_("t")), on=["sid", "t"], how="left")
              .sort("sid", "t")
              .with_columns(blk=c_("i").forward_fill().over("sid").fill_null(0),
                            p=c_("p").forward_fill().over("sid"))
              .drop("i"))
    return base, points, blocks


def warm_up(blocks):
    """Block 0 (before the first refit point: nothing scored): the clean history is the raw
    values, the residuals are one-season differences. Returns the start of the history."""
    b0 = blocks.filter(c_("blk") == 0)
    pv = b0.select("sid", tp="t", pv="y")
    y, prev = c_("y"), c_("pv")
    return (b0.with_columns(tp=c_("t") - c_("poff")).join(pv, on=["sid", "tp"], how="left")
            .select("sid", "t", c=y, ratio=lit(None, pl.Float64), run="run",
                    r=(ansc(y) - ansc(prev)) / WARMUP_DIV, rb=0.5 * (y + prev), ref=prev,
                    div=lit(WARMUP_DIV)))


def step(blk, pnow, hist, pprev):
    """Block i of every series that has one (blk: its buckets; pnow: its refit points): the
    buckets from the i-th daily refit point to the next. Everything a bucket of block i reads lies
    in earlier blocks (seasonal values at least 24 back, residuals before the refit point) or is
    not recursive (the level ratios), so the whole block is computed at once from the final
    history of blocks < i. Returns (scored rows, new history rows, this block's refit)."""
    y, cc, season = c_("y"), c_("c"), c_("season")
    # the refit at the point: dispersion from the last four weeks of residuals (those with a
    # positive expected value, split at their median), scale from the last week's
    win = (pnow.join(hist.filter(c_("r").is_not_null()), on="sid")
           .filter((c_("t") >= c_("pt") - DISPERSION_WINDOW) & (c_("t") < c_("pt")))
           .with_columns(r2=c_("r") ** 2, off=c_("pt") - c_("t")))
    rb = c_("rb")
    win = win.with_columns(b_mid=rb.filter(rb > 0).median().over("sid"))
    lo_h = (rb > 0) & ~(rb > c_("b_mid")).fill_null(False)
    hi_h = (rb > 0) & (rb > c_("b_mid")).fill_null(False)
    fit = win.group_by("sid").agg(
        n=pl.len(),
        v_lo=c_("r2").filter(lo_h).median() / MEDIAN_CHI2_1, b_lo=rb.filter(lo_h).median(), n_lo=lo_h.sum(),
        v_hi=c_("r2").filter(hi_h).median() / MEDIAN_CHI2_1, b_hi=rb.filter(hi_h).median(), n_hi=hi_h.sum())
    rho = (c_("v_hi") / c_("v_lo")
           * (-MEDIAN_SD_FACTOR * (2.0 / pl.min_horizontal("n_lo", "n_hi").cast(pl.Float64)).sqrt()).exp())
    degenerate = ((c_("n") < 8) | (c_("n_lo") < 2) | (c_("n_hi") < 2) | c_("v_lo").is_null()
                  | c_("v_lo").is_nan() | (c_("v_lo") <= 0) | c_("v_hi").is_null() | ~c_("v_hi").is_finite())
    den = c_("b_hi") - c_("rho") * c_("b_lo")
    fit = fit.with_columns(rho=rho).with_columns(
        kappa=pl.when(degenerate).then(0.0)
        .when((c_("rho") <= 1.0) | (den <= 0)).then(0.0)
        .otherwise(pl.min_horizontal((c_("rho") - 1.0) / den, lit(MAX_KAPPA))))
    kap = c_("kappa")
    sc = (win.filter(c_("off") <= SCALE_WINDOW).join(fit.select("sid", "kappa"), on="sid")
          .with_columns(q=((nbt(cc, kap) - nbt(c_("ref"), kap)) / c_("div")) ** 2)
          .group_by("sid").agg(q=c_("q").median()))
    pcur = (pnow.join(fit.select("sid", "n", "kappa"), on="sid", how="left")
            .join(sc, on="sid", how="left")
            .with_columns(sd=(c_("q") / MEDIAN_CHI2_1).sqrt())
            .select("sid",
                    scale=pl.when(c_("n").is_null() | (c_("n") < 8)).then(1.0)
                    .when(c_("sd").is_not_null() & c_("sd").is_finite()).then(c_("sd").clip(lower_bound=1.0))
                    .otherwise(1.0),
                    kappa=pl.when(c_("n").is_null() | (c_("n") < 8)).then(0.0).otherwise(kap)))
    # seasonal level: the mean of the present lags winsorised at their median +- 2 sd, sd from
    # the scale and dispersion of the last refit before t (the previous point's at the point
    # itself, 1 and 0 before the first)
    hc = hist.select("sid", "t", "c")
    st = blk.filter(season.is_not_null())
    for k in range(1, K + 1):
        st = (st.with_columns(tl=c_("t") - season * k)
              .join(hc.rename({"t": "tl", "c": f"l{k}"}), on=["sid", "tl"], how="left"))
    lags = [c_(f"l{k}") for k in range(1, K + 1)]
    at_point = c_("t") == c_("p")
    st = (st.join(pcur, on="sid").join(pprev.rename({"scale": "ps", "kappa": "pk"}), on="sid", how="left")
          .with_columns(sp=pl.when(at_point).then(c_("ps").fill_null(1.0)).otherwise(c_("scale")),
                        kp=pl.when(at_point).then(c_("pk").fill_null(0.0)).otherwise(kap),
                        m0=pl.concat_list(lags).list.drop_nulls().list.median()))
    st = st.with_columns(sd0=c_("sp") * (c_("m0").clip(lower_bound=0.0) + c_("kp") * c_("m0") * c_("m0")).sqrt())
    lo, hi = c_("m0") - 2.0 * c_("sd0"), c_("m0") + 2.0 * c_("sd0")
    wins = [l.clip(lo, hi).fill_null(0.0) for l in lags]
    st = st.with_columns(m=(wins[0] + wins[1] + wins[2] + wins[3]) / c_("nlag"))
    st = st.with_columns(ratio=pl.when((c_("m") >= 0) & (y >= 0)).then((y + 1.0) / (c_("m") + 1.0)))
    # level correction: median of (y + 1) / (m + 1) over the last L hours of the same season run
    # (48 weekly, 12 daily), at least 24 / 6 ratios, else 1
    recent = (hist.filter(c_("ratio").is_not_null()).join(pnow, on="sid")
              .filter(c_("t") >= c_("pt") - 48).select("sid", "t", "run", "ratio", now=lit(False)))
    both = pl.concat([st.select("sid", "t", "run", "ratio", now=lit(True)), recent]).sort("sid", "t")
    roll = lambda L: c_("ratio").rolling_median_by("t", window_size=f"{L}i", closed="left", min_samples=1).over("sid", "run")
    cnt = lambda L: (c_("ratio").is_not_null().cast(pl.Int32)
                     .rolling_sum_by("t", window_size=f"{L}i", closed="left", min_samples=1).over("sid", "run").fill_null(0))
    lvl = both.with_columns(med48=roll(48), n48=cnt(48), med12=roll(12), n12=cnt(12)).filter(c_("now"))
    b, m = c_("b"), c_("m")
    lv = (st.join(lvl.select("sid", "t", "med48", "n48", "med12", "n12"), on=["sid", "t"])
          .with_columns(level=pl.when(season == 168)
                        .then(pl.when(c_("n48") >= 24).then(c_("med48")).otherwise(1.0))
                        .otherwise(pl.when(c_("n12") >= 6).then(c_("med12")).otherwise(1.0)))
          .with_columns(b=m * c_("level")))
    # z against the nearer of the seasonal mean and the baseline, with this block's refit
    zz = (lv.with_columns(bref=pl.when(y > pl.max_horizontal(b, m)).then(pl.max_horizontal(b, m))
                          .when(y < pl.min_horizontal(b, m)).then(pl.min_horizontal(b, m)).otherwise(y))
          .with_columns(z0=(nbt(y, kap) - nbt(c_("bref"), kap)) / c_("scale")))
    tz = tails(zz)
    z0 = c_("z0")
    out = (zz.join(tz, on=["sid", "t"], how="left")
           .with_columns(z=pl.when(c_("tz").is_not_null() & (c_("tz") * z0 > 0))
                         .then(z0.sign() * pl.min_horizontal(z0.abs(), c_("tz").abs())).otherwise(z0))
           .with_columns(score=(c_("z").abs() / (2 * Z_ALERT)).clip(upper_bound=1.0),
                         c=pl.when(c_("z").abs() >= HISTORY_CLIP)
                         .then(inv_nbt(nbt(c_("bref"), kap) + c_("z").sign() * HISTORY_CLIP * c_("scale"), kap))
                         .otherwise(y)))
    # the block joins the history: scored buckets with their clean value and residual against
    # the baseline, then the warm-up buckets of the block (lags missing) with one-season
    # differences against the clean history (which may be this block's)
    scored_hist = out.select("sid", "t", "c", "ratio", "run", r=ansc(cc) - ansc(b), rb=b, ref=b, div=lit(1.0))
    wu = blk.filter(season.is_null())
    new = [scored_hist]
    if wu.height:
        pv = pl.concat([hc, scored_hist.select("sid", "t", "c"), wu.select("sid", "t", c="y")])
        prev = c_("pv")
        new.append(wu.with_columns(tp=c_("t") - c_("poff"))
                   .join(pv.rename({"t": "tp", "c": "pv"}), on=["sid", "tp"], how="left")
                   .select("sid", "t", c=y, ratio=lit(None, pl.Float64), run="run",
                           r=(ansc(y) - ansc(prev)) / WARMUP_DIV, rb=0.5 * (y + prev), ref=prev,
                           div=lit(WARMUP_DIV)))
    return out.select("sid", "t", "y", baseline="b", z="z", score="score"), pl.concat(new), pcur


def run(lake):
    timings = {}
    t0 = time.perf_counter()
    series, grid = prepare(lake)
    timings["prepare"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    base, points, blocks = static(grid)
    hist = warm_up(blocks)
    by_block = blocks.partition_by("blk", as_dict=True)
    by_point = points.partition_by("i", as_dict=True)
    pprev = pl.DataFrame(schema={"sid": pl.UInt32, "scale": pl.Float64, "kappa": pl.Float64})
    n_blocks = int(points["i"].max() or 0)
    results = []
    for i in range(1, n_blocks + 1):
        blk, pnow = by_block[(i,)], by_point[(i,)].select("sid", "pt")
        res, new, pprev = step(blk, pnow, hist, pprev)
        results.append(res)
        hist = pl.concat([hist, new.select(hist.columns)])
        if i % 4 == 0 and (i + 1,) in by_point:
            # the history a later block reads starts 4 weeks before its refit point
            cut = by_point[(i + 1,)].select("sid", cut=c_("pt") - DISPERSION_WINDOW)
            hist = hist.join(cut, on="sid").filter(c_("t") >= c_("cut")).drop("cut")
    result = pl.concat(results)
    timings["model"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    # store-level bucket rule (store.rs): store total |z| >= 5, or a cell |z| >= z_cell, or at
    # least 3 cells flagged in the same direction
    r = result.join(series.select("sid", "store_id", "sku"), on="sid")
    nsku = series.filter(c_("sku").is_not_null()).group_by("store_id").agg(m=pl.len())
    cellagg = r.filter(c_("sku").is_not_null()).group_by("store_id", "t").agg(
        zmax=c_("z").abs().max(), up=(c_("z") >= Z_ALERT).sum(), down=(c_("z") <= -Z_ALERT).sum())
    tot = r.filter(c_("sku").is_null()).select("store_id", "t", ztot=c_("z"))
    flagged = (cellagg.join(tot, on=["store_id", "t"], how="full", coalesce=True).join(nsku, on="store_id")
               .filter((c_("ztot").abs() >= Z_ALERT)
                       | (c_("zmax") >= (Z_ALERT ** 2 + 2 * c_("m").log()).sqrt())
                       | (c_("up") >= 3) | (c_("down") >= 3)).height)
    timings["store_rule"] = time.perf_counter() - t2
    return r, {"engine": "polars", "version": pl.__version__, "blocks": n_blocks,
               "scored_buckets": result.height, "flagged_store_buckets": flagged, "seconds": timings}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lake")
    ap.add_argument("--out")
    args = ap.parse_args()
    t = time.perf_counter()
    r, info = run(args.lake)
    info["seconds"]["total"] = time.perf_counter() - t
    if args.out:
        (r.select("store_id", c_("sku").fill_null(""), ts_s=c_("t") * 3600, baseline="baseline", score="score")
         .sort("store_id", "sku", "ts_s").write_csv(args.out))
    json.dump(info, sys.stdout)
    print()


if __name__ == "__main__":
    main()
