"""Compares the peers' per-bucket baseline and score with mrs-detect's scorer (reference.sql).

Usage: check_peers.py REFERENCE_CSV PEER_CSV... ; exits 1 when any scored bucket differs by more
than 1e-6 (relative to max(1, |value|)) or is scored by one side only.
"""

import csv
import math
import sys


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
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def main():
    ref = load(sys.argv[1])
    ok = True
    for path in sys.argv[2:]:
        peer = load(path)
        only_ref = ref.keys() - peer.keys()
        only_peer = peer.keys() - ref.keys()
        bad = [k for k in ref.keys() & peer.keys()
               if not (close(ref[k][0], peer[k][0]) and close(ref[k][1], peer[k][1]))]
        flagged = sum(1 for k in ref if ref[k][1] >= 0.5)
        print(f"{path}: {len(ref)} reference buckets ({flagged} flagged), {len(peer)} peer buckets, "
              f"{len(only_ref)} only in the reference, {len(only_peer)} only in the peer, "
              f"{len(bad)} differing")
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
