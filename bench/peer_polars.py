"""The per-bucket detection model of mrs-detect 0.4, written for Polars: the same steps as
bench/peer_duckdb.py (read its docstring and bench/README.md for the model and the scope),
expressed with Polars expressions (`over`, `shift`, `rolling_median`, `forward_fill`, list
expressions, joins and group-bys). As there, the recursive clean history and the daily refits are
reached by a fixed-point iteration over the series (a Python loop over passes and chunks, never
over rows).

Usage: peer_polars.py LAKE_DIR [--out CSV]
"""

import argparse
import json
import math
import sys
import time

import polars as pl

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
MAX_ITER = 200
CHUNK = 500
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

LANCZOS = [0.9999999999998099, 676.5203681218851, -1259.1392167224028, 771.3234287776531,
           -176.6150291621406, 12.507343278686905, -0.13857109526572012,
           9.984369578019572e-06, 1.5056327351493116e-07]
ACK_A = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2,
         -3.066479806614716e1, 2.506628277459239]
ACK_B = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1,
         -1.328068155288572e1]
ACK_C = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734,
         4.374664141464968, 2.938163982698783]
ACK_D = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416]
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


def pmf(k):
    """One pmf term at k: family 0 beta negative binomial (a, bb, r, lnorm), 1 negative
    binomial (mu, r, q), 2 Poisson (mu); columns of the tail query."""
    fam, mu, r, q, a, b = c_("fam"), c_("mu"), c_("r"), c_("q"), c_("a"), c_("bb")
    return (pl.when(fam == 0)
            .then(lg(k + r) - lg(k + 1.0) + lg(a + k) + lg(b + r) - lg(a + b + r + k) - c_("lnorm"))
            .when(fam == 1)
            .then(lg(k + r) - lg(r) - lg(k + 1.0) + r * (1.0 - q).log() + k * q.log())
            .otherwise(k * mu.log() - mu - lg(k + 1.0))).exp()


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


def static(grid):
    """What does not depend on the clean history: per bucket the season in use (the first of
    168, 24 with two seasons of history and >= 2 of its 4 lags present), the number of lags, the
    warm-up season, the run of scored buckets with one season (the level correction's scope,
    carried forward over the buckets between scored ones) and the daily refit points."""
    present = lambda s, k: c_("y").shift(s * k).over("sid").is_not_null().cast(pl.Int32)
    n = lambda s: pl.sum_horizontal([present(s, k) for k in range(1, K + 1)])
    h = c_("t") - c_("first")
    base = grid.with_columns(n168=n(168), n24=n(24)).with_columns(
        season=pl.when(c_("y").is_null()).then(None)
        .when((h >= 336) & (c_("n168") >= 2)).then(168).when((h >= 48) & (c_("n24") >= 2)).then(24),
        nlag=pl.when(c_("y").is_null()).then(None)
        .when((h >= 336) & (c_("n168") >= 2)).then(c_("n168")).when((h >= 48) & (c_("n24") >= 2)).then(c_("n24")),
        poff=pl.when(h >= 168).then(168).when(h >= 24).then(24),
    ).drop("n168", "n24", "first")
    scored = base.filter(c_("season").is_not_null())
    runs = scored.select("sid", "t", run=(c_("season") != c_("season").shift(1)).fill_null(True)
                         .cast(pl.Int32).cum_sum().over("sid"))
    base = (base.join(runs, on=["sid", "t"], how="left").sort("sid", "t")
            .with_columns(run=c_("run").forward_fill().over("sid")))
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
              .explode("pt").select("sid", "pt").sort("sid", "pt"))
    return base, points


# --- one pass of the model --------------------------------------------------------------------

def iterate(cur, pst, points):
    """One pass over the series in cur(sid, t, y, season, nlag, poff, run, c) (dense grid) with
    the refit state pst(sid, pt, scale, kappa): returns (out, npst), out with the baseline, z,
    score and new clean value of every scored bucket."""
    y, cc, season = c_("y"), c_("c"), c_("season")
    lagc = lambda col, s_col, k: (pl.when(s_col == 168).then(cc.shift(168 * k).over("sid"))
                                  .when(s_col == 24).then(cc.shift(24 * k).over("sid")))
    # the scale and dispersion of the last refit strictly before each bucket (1, 0 before any)
    before = (cur.join(pst.rename({"pt": "t"}), on=["sid", "t"], how="left").sort("sid", "t")
              .with_columns(sp=c_("scale").forward_fill().shift(1).over("sid").fill_null(1.0),
                            kp=c_("kappa").forward_fill().shift(1).over("sid").fill_null(0.0)))
    st = (before.with_columns(*[lagc("c", season, k).alias(f"l{k}") for k in range(1, K + 1)],
                              prev=lagc("c", c_("poff"), 1))
          .filter(y.is_not_null()))
    # seasonal level: the mean of the present lags winsorised at their median +- 2 sd
    lags = [c_(f"l{k}") for k in range(1, K + 1)]
    st = st.with_columns(m0=pl.concat_list(lags).list.drop_nulls().list.median())
    st = st.with_columns(sd0=c_("sp") * (c_("m0").clip(lower_bound=0.0) + c_("kp") * c_("m0") * c_("m0")).sqrt())
    lo, hi = c_("m0") - 2.0 * c_("sd0"), c_("m0") + 2.0 * c_("sd0")
    wins = [l.clip(lo, hi).fill_null(0.0) for l in lags]
    st = st.with_columns(m=pl.when(season.is_not_null()).then((wins[0] + wins[1] + wins[2] + wins[3]) / c_("nlag")))
    # level correction: median of (y + 1) / (m + 1) over the last L buckets of the same season
    # run (48 weekly, 12 daily), at least 24 / 6 of them, else 1. On the dense grid of the run
    # (carried over the buckets between scored ones) a window of L rows is L hours.
    st = st.with_columns(ratio=pl.when((c_("m") >= 0) & (y >= 0)).then((y + 1.0) / (c_("m") + 1.0)))
    dense = (cur.select("sid", "t", "run").join(st.select("sid", "t", "ratio"), on=["sid", "t"], how="left")
             .sort("sid", "t"))
    roll = lambda L: c_("ratio").shift(1).rolling_median(window_size=L, min_samples=1).over("sid", "run")
    cnt = lambda L: c_("ratio").is_not_null().cast(pl.Int32).shift(1).rolling_sum(L, min_samples=1).over("sid", "run")
    dense = dense.select("sid", "t", med48=roll(48), n48=cnt(48), med12=roll(12), n12=cnt(12))
    lv = (st.filter(season.is_not_null()).join(dense, on=["sid", "t"], how="left")
          .with_columns(level=pl.when(season == 168)
                        .then(pl.when(c_("n48") >= 24).then(c_("med48")).otherwise(1.0))
                        .otherwise(pl.when(c_("n12") >= 6).then(c_("med12")).otherwise(1.0)))
          .with_columns(b=c_("m") * c_("level")))
    b, prev = c_("b"), c_("prev")
    # residuals: against the baseline when scored, one-season differences during the warm-up
    rs = pl.concat([
        lv.select("sid", "t", "c", r=ansc(cc) - ansc(b), rb=b, ref=b, div=lit(1.0)),
        st.filter(season.is_null() & prev.is_not_null())
        .select("sid", "t", "c", r=(ansc(y) - ansc(prev)) / WARMUP_DIV, rb=0.5 * (y + prev), ref=prev,
                div=lit(WARMUP_DIV)),
    ])
    # the refit at each daily point: dispersion from the last four weeks of residuals (those with
    # a positive expected value, split at their median), scale from the last week's
    pts = points.join(cur.select("sid").unique(), on="sid", how="semi")
    win = (pts.with_columns(off=pl.int_ranges(1, DISPERSION_WINDOW + 1)).explode("off")
           .with_columns(t=c_("pt") - c_("off"))
           .join(rs, on=["sid", "t"])
           .with_columns(r2=c_("r") ** 2))
    rb = c_("rb")
    win = win.with_columns(b_mid=rb.filter(rb > 0).median().over("sid", "pt"))
    lo_h = (rb > 0) & ~(rb > c_("b_mid")).fill_null(False)
    hi_h = (rb > 0) & (rb > c_("b_mid")).fill_null(False)
    fit = win.group_by("sid", "pt").agg(
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
    sc = (win.filter(c_("off") <= SCALE_WINDOW).join(fit.select("sid", "pt", "kappa"), on=["sid", "pt"])
          .with_columns(q=((nbt(cc, kap) - nbt(c_("ref"), kap)) / c_("div")) ** 2)
          .group_by("sid", "pt").agg(q=c_("q").median()))
    npst = (pts.join(fit.select("sid", "pt", "n", "kappa"), on=["sid", "pt"], how="left")
            .join(sc, on=["sid", "pt"], how="left")
            .with_columns(sd=(c_("q") / MEDIAN_CHI2_1).sqrt())
            .select("sid", "pt",
                    scale=pl.when(c_("n").is_null() | (c_("n") < 8)).then(1.0)
                    .when(c_("sd").is_not_null() & c_("sd").is_finite()).then(c_("sd").clip(lower_bound=1.0))
                    .otherwise(1.0),
                    kappa=pl.when(c_("n").is_null() | (c_("n") < 8)).then(0.0).otherwise(kap)))
    # z against the nearer of the seasonal mean and the baseline, with the scale and dispersion
    # of the last refit at or before t
    m = c_("m")
    zz = (lv.select("sid", "t", "y", "c", "m", "b", "nlag")
          .join(npst.rename({"pt": "t"}), on=["sid", "t"], how="left").sort("sid", "t")
          .with_columns(scale=c_("scale").forward_fill().over("sid"), kappa=kap.forward_fill().over("sid"))
          .with_columns(bref=pl.when(y > pl.max_horizontal(b, m)).then(pl.max_horizontal(b, m))
                        .when(y < pl.min_horizontal(b, m)).then(pl.min_horizontal(b, m)).otherwise(y))
          .with_columns(z0=(nbt(y, kap) - nbt(c_("bref"), kap)) / c_("scale")))
    tz = tails(zz)
    z0 = c_("z0")
    out = (zz.join(tz, on=["sid", "t"], how="left")
           .with_columns(z=pl.when(c_("tz").is_not_null() & (c_("tz") * z0 > 0))
                         .then(z0.sign() * pl.min_horizontal(z0.abs(), c_("tz").abs())).otherwise(z0))
           .with_columns(score=(c_("z").abs() / (2 * Z_ALERT)).clip(upper_bound=1.0),
                         c_new=pl.when(c_("z").abs() >= HISTORY_CLIP)
                         .then(inv_nbt(nbt(c_("bref"), kap) + c_("z").sign() * HISTORY_CLIP * c_("scale"), kap))
                         .otherwise(y))
           .select("sid", "t", "y", "c", baseline=b, z="z", score="score", c_new="c_new"))
    return out, npst


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
    params = ["fam", "mu", "r", "q", "a", "bb", "lnorm"]
    ts = (tq.filter(c_("klo").is_not_null())
          .select("sid", "t", *params, k=pl.int_ranges(c_("klo").cast(pl.Int64), c_("khi").cast(pl.Int64) + 1))
          .explode("k").with_columns(k=c_("k").cast(pl.Float64))
          .group_by("sid", "t").agg(s=pmf(c_("k")).sum().clip(upper_bound=1.0)))
    nxt = pmf(c_("khi") + 1.0)
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
           .select("sid", "t", *params, "k0", j=pl.int_ranges(0, MAX_TERMS)).explode("j")
           .with_columns(term=pmf(c_("k0") + c_("j").cast(pl.Float64)))
           .with_columns(cs=c_("term").cum_sum().over("sid", "t"))
           .with_columns(nxt=c_("term").shift(-1).over("sid", "t"))
           .filter(c_("nxt").is_null() | (c_("nxt") <= 1e-13 * c_("cs")))
           .group_by("sid", "t").agg(sfar=c_("cs").sort_by("j").first()))
    return (tp.join(far, on=["sid", "t"], how="left")
            .with_columns(pp=pl.when(c_("sfar").is_not_null())
                          .then(pl.max_horizontal("sfar", "p").clip(upper_bound=1.0))
                          .otherwise(c_("p").clip(upper_bound=1.0)))
            .select("sid", "t", tz=pl.when(upper).then(tail_z(c_("pp"))).otherwise(-tail_z(c_("pp")))))


def fixed_point(cur, pst, points, results):
    """Iterates the series of cur to their fixed point, appending their final rows to results;
    returns the iterations."""
    iterations = 0
    while True:
        iterations += 1
        if iterations > MAX_ITER:
            raise SystemExit(f"peer_polars: no fixed point after {MAX_ITER} iterations")
        out, npst = iterate(cur, pst, points)
        changed = pl.concat([
            out.filter(c_("c_new").ne_missing(c_("c"))).select("sid"),
            npst.join(pst, on=["sid", "pt"], suffix="_o")
            .filter(c_("scale").ne_missing(c_("scale_o")) | c_("kappa").ne_missing(c_("kappa_o"))).select("sid"),
        ]).unique()
        # the unchanged series are final: keep their scores and drop them from the work set
        results.append(out.join(changed, on="sid", how="anti").select("sid", "t", "y", "baseline", "z", "score"))
        if changed.height == 0:
            return iterations
        cur = (cur.join(changed, on="sid", how="semi")
               .join(out.select("sid", "t", "c_new"), on=["sid", "t"], how="left")
               .with_columns(c=pl.coalesce("c_new", "c")).drop("c_new").sort("sid", "t"))
        pst = npst.join(changed, on="sid", how="semi")


def run(lake):
    timings = {}
    t0 = time.perf_counter()
    series, grid = prepare(lake)
    timings["prepare"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    base, points = static(grid)
    results, iterations = [], 0
    n = series.height
    # series in chunks, so that the four-week refit windows stay in memory
    for lo in range(0, n, CHUNK):
        sel = (c_("sid") >= lo) & (c_("sid") < lo + CHUNK)
        cur = base.filter(sel).with_columns(c=c_("y"))
        pst = points.filter(sel).with_columns(scale=lit(1.0), kappa=lit(0.0))
        iterations = max(iterations, fixed_point(cur, pst, points.filter(sel), results))
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
    return r, {"engine": "polars", "version": pl.__version__, "iterations": iterations,
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
