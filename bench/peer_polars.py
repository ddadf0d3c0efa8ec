"""The per-bucket detection model of mrs-detect, written for Polars: the same steps as
bench/peer_duckdb.py (read its docstring and bench/README.md for the model and the scope),
expressed with Polars expressions (`over`, `shift`, `rolling_median`, joins and group-bys).

Usage: peer_polars.py LAKE_DIR [--out CSV]
"""

import argparse
import json
import math
import sys
import time

import polars as pl

K = 4
Z_ALERT = 5.0
WARMUP_DIV = 1.1547005383792515
MEDIAN_CHI2_1 = 0.4549364231195727
MAX_ITER = 60
CHUNK = 1000
A0 = 2.0 * math.sqrt(0.375)
HOUR_US = 3_600_000_000


def ansc(y):
    return pl.when(y >= 0).then(2.0 * (y + 0.375).sqrt()).otherwise(2.0 * A0 - 2.0 * (-y + 0.375).sqrt())


def nbg(v, k):
    return 2.0 / k.sqrt() * (k.sqrt() * (v + 0.375).sqrt()).arcsinh()


def nbt(y, k):
    return (pl.when(k < 1e-9).then(ansc(y))
            .when(y >= 0).then(nbg(y, k))
            .otherwise(2.0 * nbg(pl.lit(0.0), k) - nbg(-y, k)))


def inv_ansc(a):
    return (pl.when(a >= A0).then((a / 2.0).pow(2) - 0.375)
            .otherwise(-(((2.0 * A0 - a) / 2.0).pow(2) - 0.375)))


def nbinv1(g, k):
    return (g * k.sqrt() / 2.0).sinh().pow(2) / k - 0.375


def inv_nbt(a, k):
    g0 = nbt(pl.lit(0.0), k)
    return (pl.when(k < 1e-9).then(inv_ansc(a))
            .when(a >= g0).then(nbinv1(a, k))
            .otherwise(-nbinv1(2.0 * g0 - a, k)))


def prepare(lake):
    sales = pl.scan_parquet(f"{lake}/input/sales/*.parquet")
    stores = pl.scan_parquet(f"{lake}/input/stores/*.parquet").select("store_id", "region")
    hol = pl.scan_parquet(f"{lake}/input/holidays/*.parquet").select("day", "region")
    hol_days = pl.concat([
        stores.join(hol.filter(pl.col("region").is_null()).select("day"), how="cross"),
        stores.join(hol.filter(pl.col("region").is_not_null()), on="region"),
    ]).select("store_id", "day").unique()
    clean = (sales
             .filter(pl.col("store_id").is_not_null() & (pl.col("store_id") != "")
                     & pl.col("sku").is_not_null() & (pl.col("sku") != "") & pl.col("ts").is_not_null()
                     & pl.col("units").is_not_null() & pl.col("units").is_finite()
                     & (pl.col("units").abs() <= 1e9))
             .with_columns(day=pl.col("ts").dt.convert_time_zone("UTC").dt.date(),
                           t=pl.col("ts").dt.epoch("us") // HOUR_US)
             .join(hol_days, on=["store_id", "day"], how="anti"))
    cells = clean.group_by("store_id", "sku", "t").agg(y=pl.col("units").sum()).collect()
    totals = cells.group_by("store_id", "t").agg(y=pl.col("y").sum())
    last = totals.group_by("store_id").agg(last=pl.col("t").max(), tfirst=pl.col("t").min())
    series = (pl.concat([
        cells.group_by("store_id", "sku").agg(first=pl.col("t").min()),
        last.select("store_id", pl.lit(None, pl.String).alias("sku"), pl.col("tfirst").alias("first")),
    ]).join(last.select("store_id", "last"), on="store_id")
        .sort("store_id", "sku", nulls_last=False)
        .with_row_index("sid"))
    grid = (series.with_columns(t=pl.int_ranges("first", pl.col("last") + 1)).explode("t")
            .join(totals.rename({"y": "ytot"}), on=["store_id", "t"], how="left")
            .join(cells.rename({"y": "ycell"}), on=["store_id", "sku", "t"], how="left")
            .with_columns(y=pl.when(pl.col("ytot").is_null()).then(None)
                          .when(pl.col("sku").is_null()).then(pl.col("ytot"))
                          .otherwise(pl.col("ycell").fill_null(0.0)))
            .select("sid", "t", "first", "y")
            .sort("sid", "t"))
    return series, grid


def seasonal(cur):
    """Seasonal median, season and one-season previous value on the dense grid `cur`."""
    lag = lambda s, k: pl.col("c").shift(s * k).over("sid")
    n = lambda s: pl.sum_horizontal([lag(s, k).is_not_null().cast(pl.Int32) for k in range(1, K + 1)])
    med = lambda s: pl.concat_list([lag(s, k) for k in range(1, K + 1)]).list.median()
    h = pl.col("t") - pl.col("first")
    w168 = (h >= 336) & (n(168) >= 2)
    w24 = (h >= 48) & (n(24) >= 2)
    return cur.with_columns(
        season=pl.when(w168).then(168).when(w24).then(24),
        m=pl.when(w168).then(med(168)).when(w24).then(med(24)),
        prev=pl.when(h >= 168).then(lag(168, 1)).when(h >= 24).then(lag(24, 1)),
    ).with_columns(m=pl.when(pl.col("y").is_not_null()).then(pl.col("m")))


def iterate(cur, points):
    st = seasonal(cur).with_columns(
        ratio=pl.when((pl.col("m") >= 0) & (pl.col("y") >= 0)).then((pl.col("y") + 1.0) / (pl.col("m") + 1.0)))
    roll = lambda L: pl.col("ratio").shift(1).rolling_median(window_size=L, min_samples=1).over("sid")
    cnt = lambda L: pl.col("ratio").is_not_null().cast(pl.Int32).shift(1).rolling_sum(L, min_samples=1).over("sid")
    lv = st.with_columns(
        level=pl.when(pl.col("season") == 168).then(pl.when(cnt(48) >= 24).then(roll(48)).otherwise(1.0))
        .when(pl.col("season") == 24).then(pl.when(cnt(12) >= 6).then(roll(12)).otherwise(1.0))
    ).filter(pl.col("y").is_not_null()).with_columns(b=pl.col("m") * pl.col("level"))
    scored = pl.col("m").is_not_null()
    y, c, b, prev = pl.col("y"), pl.col("c"), pl.col("b"), pl.col("prev")
    rs = lv.with_columns(
        r=pl.when(scored).then(ansc(c) - ansc(b)).when(prev.is_not_null()).then((ansc(y) - ansc(prev)) / WARMUP_DIV),
        rb=pl.when(scored).then(b).otherwise(0.5 * (y + prev)),
        ref=pl.when(scored).then(b).otherwise(prev),
        div=pl.when(scored).then(1.0).otherwise(WARMUP_DIV),
    ).filter(pl.col("r").is_not_null()).select(
        "sid", "t", "c", "ref", "div", r2=pl.col("r") ** 2, bb=pl.col("rb").clip(lower_bound=0.0))
    pts = points.join(cur.select("sid").unique(), on="sid", how="semi").rename({"t": "pt"})
    win = (pts.with_columns(off=pl.int_ranges(1, 169)).explode("off")
           .with_columns(t=pl.col("pt") - pl.col("off"))
           .join(rs, on=["sid", "t"]))
    win = win.with_columns(b_mid=pl.col("bb").median().over("sid", "pt"))
    lo, hi = pl.col("bb") <= pl.col("b_mid"), pl.col("bb") > pl.col("b_mid")
    fit = win.group_by("sid", "pt").agg(
        n=pl.len(),
        v_lo=pl.col("r2").filter(lo).median() / MEDIAN_CHI2_1, b_lo=pl.col("bb").filter(lo).median(),
        n_lo=lo.sum(),
        v_hi=pl.col("r2").filter(hi).median() / MEDIAN_CHI2_1, b_hi=pl.col("bb").filter(hi).median(),
        n_hi=hi.sum())
    rho = pl.col("v_hi") / pl.col("v_lo")
    degenerate = ((pl.col("n") < 8) | (pl.col("n_lo") < 2) | (pl.col("n_hi") < 2) | pl.col("v_lo").is_null()
                  | pl.col("v_lo").is_nan() | (pl.col("v_lo") <= 0) | pl.col("v_hi").is_null()
                  | ~pl.col("v_hi").is_finite() | (pl.col("v_hi") <= 0))
    den = pl.col("b_hi") - rho * pl.col("b_lo")
    fit = fit.with_columns(kappa=pl.when(degenerate).then(0.0)
                           .when(~(rho.log() > 3.0 * 2.33 * (2.0 / pl.min_horizontal("n_lo", "n_hi")).sqrt()) | (den <= 0)).then(0.0)
                           .otherwise(pl.min_horizontal((rho - 1.0) / den, pl.lit(16.0))))
    kap = pl.col("kappa")
    sc = (win.join(fit.select("sid", "pt", "n", "kappa"), on=["sid", "pt"])
          .with_columns(q=((nbt(pl.col("c"), kap) - nbt(pl.col("ref"), kap)) / pl.col("div")) ** 2)
          .group_by("sid", "pt").agg(n=pl.col("n").first(), kappa=kap.first(), q=pl.col("q").median())
          .with_columns(scale=pl.when(pl.col("n") < 8).then(1.0)
                        .otherwise((pl.col("q") / MEDIAN_CHI2_1).sqrt().clip(lower_bound=1.0).fill_nan(1.0).fill_null(1.0))))
    sc = (pts.join(sc, on=["sid", "pt"], how="left")
          .select("sid", pl.col("pt").alias("t"), kappa=pl.col("kappa").fill_null(0.0), scale=pl.col("scale").fill_null(1.0)))
    out = (lv.filter(scored).select("sid", "t", "y", "b")
           .join(sc, on=["sid", "t"], how="left").sort("sid", "t")
           .with_columns(scale=pl.col("scale").forward_fill().over("sid"), kappa=pl.col("kappa").forward_fill().over("sid")))
    z = (nbt(y, kap) - nbt(b, kap)) / pl.col("scale")
    out = out.with_columns(z=z).with_columns(
        score=(pl.col("z").abs() / (2 * Z_ALERT)).clip(upper_bound=1.0),
        c_new=pl.when(pl.col("z").abs() >= Z_ALERT)
        .then(inv_nbt(nbt(b, kap) + pl.col("z").sign() * Z_ALERT * pl.col("scale"), kap)).otherwise(y))
    return out.select("sid", "t", "y", pl.col("b").alias("baseline"), "z", "score", "c_new")


def scale_points(grid):
    """Daily scale points: the first scored bucket, then the first scored bucket at least 24
    after the previous point. Runs of consecutive scored buckets are walked run by run."""
    st = seasonal(grid.with_columns(c=pl.col("y")))
    runs = (st.filter(pl.col("m").is_not_null()).select("sid", "t")
            .with_columns(g=pl.col("t") - pl.int_range(pl.len()).over("sid"))
            .group_by("sid", "g").agg(a=pl.col("t").min(), b=pl.col("t").max())
            .sort("sid", "a").with_columns(r=pl.int_range(pl.len()).over("sid")))
    parts = []
    due = None
    for r in range(int(runs["r"].max()) + 1):
        cur = runs.filter(pl.col("r") == r)
        if due is not None:
            cur = cur.join(due, on="sid", how="left")
        else:
            cur = cur.with_columns(due=pl.lit(None, pl.Int64))
        cur = cur.with_columns(fp=pl.max_horizontal("a", "due"))
        cur = cur.with_columns(due=pl.when(pl.col("fp") <= pl.col("b"))
                               .then(pl.col("fp") + 24 * ((pl.col("b") - pl.col("fp")) // 24 + 1))
                               .otherwise(pl.col("due")))
        parts.append(cur.filter(pl.col("fp") <= pl.col("b")).select("sid", "fp", "b"))
        due = cur.select("sid", "due") if due is None else pl.concat([
            due.join(cur, on="sid", how="anti"), cur.select("sid", "due")])
    return (pl.concat(parts).with_columns(t=pl.int_ranges("fp", pl.col("b") + 1, 24))
            .explode("t").select("sid", "t"))


def fixed_point(cur, points, results):
    iterations = 0
    cur = cur.with_columns(c=pl.col("y"))
    while True:
        iterations += 1
        if iterations > MAX_ITER:
            raise SystemExit(f"peer_polars: no fixed point after {MAX_ITER} iterations")
        out = iterate(cur, points)
        changed = (out.join(cur.select("sid", "t", "c"), on=["sid", "t"])
                   .filter(pl.col("c_new").ne_missing(pl.col("c"))).select("sid").unique())
        results.append(out.join(changed, on="sid", how="anti").drop("c_new"))
        if changed.height == 0:
            return iterations
        cur = (cur.join(changed, on="sid", how="semi")
               .join(out.select("sid", "t", "c_new"), on=["sid", "t"], how="left")
               .with_columns(c=pl.coalesce("c_new", "c")).drop("c_new"))


def run(lake):
    timings = {}
    t0 = time.perf_counter()
    series, grid = prepare(lake)
    timings["prepare"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    points = scale_points(grid)
    results, iterations = [], 0
    n = series.height
    for lo in range(0, n, CHUNK):
        cur = grid.filter((pl.col("sid") >= lo) & (pl.col("sid") < lo + CHUNK))
        iterations = max(iterations, fixed_point(cur, points, results))
    result = pl.concat(results)
    timings["model"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    r = result.join(series.select("sid", "store_id", "sku"), on="sid")
    nsku = series.filter(pl.col("sku").is_not_null()).group_by("store_id").agg(m=pl.len())
    cellagg = r.filter(pl.col("sku").is_not_null()).group_by("store_id", "t").agg(
        zmax=pl.col("z").abs().max(), up=(pl.col("z") >= Z_ALERT).sum(), down=(pl.col("z") <= -Z_ALERT).sum())
    tot = r.filter(pl.col("sku").is_null()).select("store_id", "t", ztot=pl.col("z"))
    flagged = (cellagg.join(tot, on=["store_id", "t"], how="full", coalesce=True).join(nsku, on="store_id")
               .filter((pl.col("ztot").abs() >= Z_ALERT)
                       | (pl.col("zmax") >= (Z_ALERT ** 2 + 2 * pl.col("m").log()).sqrt())
                       | (pl.col("up") >= 3) | (pl.col("down") >= 3)).height)
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
        (r.select("store_id", pl.col("sku").fill_null(""), ts_s=pl.col("t") * 3600, baseline="baseline", score="score")
         .sort("store_id", "sku", "ts_s").write_csv(args.out))
    json.dump(info, sys.stdout)
    print()


if __name__ == "__main__":
    main()
