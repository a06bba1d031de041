#!/usr/bin/env bash
# Unicast repair the origin serves with and without peer-to-peer repair, in
# one run: `dms demo` (release build) twice on the same fleet — N UEs at the
# same seeded loss, one cell-edge UE with bursty loss — once with peers on,
# once off. Prints, for each, the repair-service bytes, the peer bytes, the
# bytes the UEs missed and the ratios, then the origin's repair bytes with
# peers divided by without.
#
# Environment (all optional):
#   UES=20  SIZE=64MiB  LOSS=5  OVERHEAD=5  RATE=200  OUTLIER=30,10
#   NO_BUILD=1               skip the cargo build
set -euo pipefail
cd "$(dirname "$0")/.."

UES=${UES:-20}
SIZE=${SIZE:-64MiB}
LOSS=${LOSS:-5}
OVERHEAD=${OVERHEAD:-5}
RATE=${RATE:-200}
OUTLIER=${OUTLIER:-30,10}
export RUST_BACKTRACE=0

[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet
BIN=target/release/dms

run() {
    "$BIN" demo --ues "$UES" --size "$SIZE" --loss "$LOSS" --overhead "$OVERHEAD" \
        --rate "$RATE" --outlier "$OUTLIER" --peers "$1" --json
}

on=$(run on)
off=$(run off)
python3 - "$on" "$off" <<'PY'
import json, sys
on, off = (json.loads(a) for a in sys.argv[1:3])
for name, v in (("peers on", on), ("peers off", off)):
    repaired = v["peer_bytes"] + v["repair_bytes"]
    missed = max(v["missed_bytes"], 1)
    print(f"{name:9}: verified {v['verified']}/{len(v['ues'])} in {v['seconds']:.1f} s; "
          f"repair service {v['repair_bytes']} B, peers {v['peer_bytes']} B "
          f"({100 * v['peer_bytes'] / max(repaired, 1):.1f} % of repair), "
          f"missed {v['missed_bytes']} B, (peers+repair)/missed {repaired / missed:.3f}, "
          f"origin unicast / plain unicast {v['repair_bytes'] / v['unicast_only_bytes']:.5f}")
ratio = on["repair_bytes"] / max(off["repair_bytes"], 1)
print(f"origin repair bytes, peers on / peers off: {ratio:.3f}")
PY
