"""Compares the peers' per-bucket baseline and score with mrs-detect's scorer (reference.sql).

Usage: check_peers.py REFERENCE_CSV PEER_CSV... ; exits 1 when any scored bucket differs by more
than 1e-6 (relative to max(1, |value|)) or is scored by one side only, with one documented
exception (bench/README.md, "What cannot be matched exactly"):

  far-tail scores: where the baselines agree and both scores are >= TAIL_NOISE_SCORE (|z| >= 5,
  the alert threshold), the score may differ. There the z is capped by the upper tail of the beta
  negative binomial predictive, which counts.rs computes as 1 - cdf of a tail probability below
  3e-7: rounding of the cdf sum (its order) and ulp-level differences of its inputs (a baseline or
  dispersion one ulp off from a median's interpolation) are magnified by 1 / p, so the
  reference's own value is rounding noise there (entirely so below about 1e-13). Such
  buckets are counted and reported separately; the decision (alert, history clip, store rule)
  is the same on both sides since both are beyond the alert threshold.
"""

import csv
import sys

TOL = 1e-6
TAIL_NOISE_SCORE = 0.5


def load(path):
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["baseline"] in ("", None):
                continue
            out[(row["store_id"], row["sku"], int(row["ts_s"]))] = (
                float(row["baseline"]), float(row["score"]))
    return out


def close(a, b):
    return abs(a - b) <= TOL * max(1.0, abs(a), abs(b))


def main():
    ref = load(sys.argv[1])
    ok = True
    for path in sys.argv[2:]:
        peer = load(path)
        only_ref = ref.keys() - peer.keys()
        only_peer = peer.keys() - ref.keys()
        both = ref.keys() & peer.keys()
        bad, tail = [], []
        for k in both:
            (rb, rs), (pb, ps) = ref[k], peer[k]
            if close(rb, pb) and close(rs, ps):
                continue
            if close(rb, pb) and min(rs, ps) >= TAIL_NOISE_SCORE:
                tail.append(k)
            else:
                bad.append(k)
        max_db = max((abs(ref[k][0] - peer[k][0]) for k in both), default=0.0)
        tail_set = set(tail)
        max_ds = max((abs(ref[k][1] - peer[k][1]) for k in both if k not in tail_set), default=0.0)
        max_dt = max((abs(ref[k][1] - peer[k][1]) for k in tail), default=0.0)
        flagged = sum(1 for k in ref if ref[k][1] >= 0.5)
        print(f"{path}: {len(ref)} reference buckets ({flagged} flagged), {len(peer)} peer buckets, "
              f"{len(only_ref)} only in the reference, {len(only_peer)} only in the peer, "
              f"{len(bad)} differing; max |d baseline| {max_db:.3g}, max |d score| {max_ds:.3g} "
              f"(outside the far tail); {len(tail)} far-tail scores (both >= {TAIL_NOISE_SCORE}) "
              f"differing by up to {max_dt:.3g}")
        for k in sorted(bad)[:5]:
            print(f"  {k}: reference {ref[k]}, peer {peer[k]}")
        for k in sorted(only_ref)[:3]:
            print(f"  only in the reference: {k}")
        for k in sorted(only_peer)[:3]:
            print(f"  only in the peer: {k}")
        ok = ok and not bad and not only_ref and not only_peer and len(ref) > 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
