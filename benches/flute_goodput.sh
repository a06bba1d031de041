#!/usr/bin/env bash
# Goodput of our FLUTE sender and receiver (`dms send` / `dms receive`) beside
# the published `flute` crate's (examples/flute_crate_{send,receive}.rs): the
# same random file between two processes over loopback multicast, RaptorQ,
# 10 % repair, symbol size 1400. For each implementation it walks a ladder of
# paced rates and keeps the highest at which the file still arrives intact
# (sha256 equal), stopping at the first rate that fails (after RETRIES more
# tries). Goodput = file bits / time from the sender's start to the
# receiver's exit. Prints both and the ratio ours / theirs.
#
# Environment (all optional):
#   SIZE_MIB=256                               file size
#   RATES="300 500 800 1200 1600 2000 3000 4000 5000 6500 8000"  the ladder, Mbit/s
#   RETRIES=1                                  extra tries before a rate fails
#   IMPLS="ours theirs"                        which to run
#   GROUP_IP=239.255.200.1  PORT_BASE=47600    multicast group; one port per run
#   NO_BUILD=1                                 skip the cargo build
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-256}
RATES=${RATES:-"300 500 800 1200 1600 2000 3000 4000 5000 6500 8000"}
RETRIES=${RETRIES:-1}
IMPLS=${IMPLS:-"ours theirs"}
GROUP_IP=${GROUP_IP:-239.255.200.1}
PORT_BASE=${PORT_BASE:-47600}
IFACE=127.0.0.1
BIN=target/release
# A failing run's last lines say why, not where.
export RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0

TMP=$(mktemp -d "${TMPDIR:-/tmp}/flute-goodput.XXXXXX")
# The children running now (cleared once waited for, so an exited child's
# reused pid is never signalled).
RPID="" SPID=""
cleanup() {
    local pid
    for pid in $RPID $SPID; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z "${NO_BUILD:-}" ]]; then
    cargo build --release --bin dms --examples
fi

FILE="$TMP/payload.bin"
echo "making a ${SIZE_MIB} MiB random file" >&2
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$FILE"
SHA=$(sha256sum "$FILE" | cut -d' ' -f1)
BITS=$((SIZE_MIB << 23))

RUN=0
# run_once IMPL RATE: one transfer; returns 0 and sets LAST_GOODPUT (Mbit/s)
# if the file arrived intact, returns 1 otherwise. (Not run in a command
# substitution: the run counter and the child pids live in this shell.)
run_once() {
    local impl=$1 rate=$2
    RUN=$((RUN + 1))
    local group="$GROUP_IP:$((PORT_BASE + RUN))"
    local out="$TMP/out-$RUN" log="$TMP/run-$RUN"
    mkdir -p "$out"
    # Generous bound: three times the paced transfer time, plus start-up.
    local limit=$((BITS * 3 / (rate * 1000000) + 30))
    local -a receive send
    case $impl in
    ours)
        receive=("$BIN/dms" receive --group "$group" --iface "$IFACE" --out "$out"
            --count 1 --timeout "$limit")
        send=("$BIN/dms" send "$FILE" --group "$group" --iface "$IFACE" --rate "$rate"
            --fec raptorq --repair 10 --symbol-size 1400 --tsi 1)
        ;;
    theirs)
        receive=("$BIN/examples/flute_crate_receive" --group "$group" --iface "$IFACE"
            --out "$out" --count 1 --timeout "$limit")
        send=("$BIN/examples/flute_crate_send" "$FILE" --group "$group" --iface "$IFACE"
            --rate "$rate" --repair 10 --symbol-size 1400 --tsi 1)
        ;;
    esac

    timeout -k 5 "$((limit + 10))" "${receive[@]}" >"$log.receive" 2>&1 &
    RPID=$!
    sleep 0.5 # the receiver joins the group before the first packet
    local t0 t1
    t0=$(date +%s.%N)
    timeout -k 5 "$((limit + 10))" "${send[@]}" >"$log.send" 2>&1 &
    SPID=$!
    local rstatus=0 sstatus=0
    wait "$RPID" || rstatus=$?
    RPID=""
    t1=$(date +%s.%N)
    wait "$SPID" || sstatus=$?
    SPID=""

    local got=""
    [[ -f "$out/payload.bin" ]] && got=$(sha256sum "$out/payload.bin" | cut -d' ' -f1)
    rm -rf "$out"
    if [[ $rstatus -ne 0 || "$got" != "$SHA" ]]; then
        {
            echo "  $impl at $rate Mbit/s: FAILED (receiver exit $rstatus, sender exit $sstatus, sha256 ${got:-missing})"
            tail -n 3 "$log.receive" | sed 's/^/    receiver: /'
            tail -n 3 "$log.send" | sed 's/^/    sender:   /'
        } >&2
        return 1
    fi
    LAST_GOODPUT=$(awk -v b="$BITS" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.1f", b / (z - a) / 1e6 }')
    echo "  $impl at $rate Mbit/s: intact, goodput $LAST_GOODPUT Mbit/s (sender exit $sstatus)" >&2
}

# ladder IMPL: sets TOP_RATE (the highest paced rate still intact),
# BEST_GOODPUT (the highest goodput of an intact run) and BEST_AT (the
# rate that gave it); all stay empty if even the lowest rate fails.
ladder() {
    local impl=$1 rate try ok
    TOP_RATE="" BEST_GOODPUT="" BEST_AT=""
    echo "$impl:" >&2
    for rate in $RATES; do
        ok=""
        for ((try = 0; try <= RETRIES; try++)); do
            if run_once "$impl" "$rate"; then
                ok=1
                break
            fi
        done
        [[ -n "$ok" ]] || break
        TOP_RATE=$rate
        if [[ -z "$BEST_GOODPUT" ]] || awk -v g="$LAST_GOODPUT" -v b="$BEST_GOODPUT" 'BEGIN { exit !(g > b) }'; then
            BEST_GOODPUT=$LAST_GOODPUT
            BEST_AT=$rate
        fi
    done
}

declare -A TOP GOODPUT AT
for impl in $IMPLS; do
    ladder "$impl"
    TOP[$impl]=$TOP_RATE
    GOODPUT[$impl]=$BEST_GOODPUT
    AT[$impl]=$BEST_AT
done

echo
echo "file: ${SIZE_MIB} MiB, RaptorQ, 10 % repair, T = 1400, loopback multicast"
for impl in $IMPLS; do
    if [[ -n "${GOODPUT[$impl]}" ]]; then
        printf '%-7s goodput %8s Mbit/s at paced %s Mbit/s (intact up to %s Mbit/s)\n' \
            "$impl:" "${GOODPUT[$impl]}" "${AT[$impl]}" "${TOP[$impl]}"
    else
        printf '%-7s no intact transfer at any rate of the ladder\n' "$impl:"
    fi
done
if [[ -n "${GOODPUT[ours]:-}" && -n "${GOODPUT[theirs]:-}" ]]; then
    awk -v o="${GOODPUT[ours]}" -v t="${GOODPUT[theirs]}" \
        'BEGIN { printf "ratio ours/theirs: %.2f\n", o / t }'
fi
