#!/usr/bin/env bash
# Peak memory (RSS high-water mark) of a FLUTE receiver taking one large
# object over loopback multicast: ours (`dms receive`) and, for comparison,
# the published `flute` crate's (examples/flute_crate_receive.rs). The target
# for ours is <= 256 MiB for a 1 GiB object: blocks stream to disk.
# Measured with `/usr/bin/time -v` (Debian package `time`) when it is there,
# else by reading VmHWM from /proc/PID/status while the receiver runs.
#
# Environment (all optional):
#   SIZE_MIB=1024            object size
#   RATE=400                 paced sender rate, Mbit/s (theirs is intact here)
#   IMPLS="ours theirs"      which to run
#   DROP=PERCENT,BURST       burst case (ours only): loss injected at the
#                            receiver (`dms receive --drop`, seeded by SEED=1),
#                            the object sent CAROUSEL=2 times so later rounds
#                            fill the blocks a burst took, e.g.
#                            DROP=3,20000 RATE=775 benches/receiver_memory.sh
#   GROUP_IP=239.255.201.1  PORT_BASE=47700
#   NO_BUILD=1               skip the cargo build
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-1024}
RATE=${RATE:-400}
IMPLS=${IMPLS:-"ours theirs"}
DROP=${DROP:-}
SEED=${SEED:-1}
if [[ -n "$DROP" ]]; then
    CAROUSEL=${CAROUSEL:-2}
    if [[ "$IMPLS" != ours ]]; then
        echo "DROP: only ours injects loss; running ours alone" >&2
        IMPLS=ours
    fi
else
    CAROUSEL=${CAROUSEL:-1}
fi
GROUP_IP=${GROUP_IP:-239.255.201.1}
PORT_BASE=${PORT_BASE:-47700}
IFACE=127.0.0.1
BIN=target/release
# A failing run's last lines say why, not where.
export RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0

TMP=$(mktemp -d "${TMPDIR:-/tmp}/receiver-memory.XXXXXX")
# The children running now (cleared once waited for).
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
# Three times the paced transfer time, plus start-up.
LIMIT=$(((SIZE_MIB << 23) * 3 * CAROUSEL / (RATE * 1000000) + 30))
HAVE_TIME=""
[[ -x /usr/bin/time ]] && HAVE_TIME=1

# measure IMPL PORT: sets PEAK (KiB) and STATUS. (Not run in a subshell: the
# child pids live in this shell, for the exit trap.)
measure() {
    local impl=$1 group="$GROUP_IP:$2"
    local out="$TMP/out-$impl" log="$TMP/$impl"
    mkdir -p "$out"
    local -a receive send
    case $impl in
    ours)
        receive=("$BIN/dms" receive --group "$group" --iface "$IFACE" --out "$out"
            --count 1 --timeout "$LIMIT")
        send=("$BIN/dms" send "$FILE" --group "$group" --iface "$IFACE" --rate "$RATE"
            --fec raptorq --repair 10 --symbol-size 1400 --tsi 1 --carousel "$CAROUSEL")
        if [[ -n "$DROP" ]]; then
            receive=(env RUST_LOG=warn,dms_peer::receive::decode=info "${receive[@]}"
                --drop "$DROP" --seed "$SEED")
        fi
        ;;
    theirs)
        receive=("$BIN/examples/flute_crate_receive" --group "$group" --iface "$IFACE"
            --out "$out" --count 1 --timeout "$LIMIT")
        send=("$BIN/examples/flute_crate_send" "$FILE" --group "$group" --iface "$IFACE"
            --rate "$RATE" --repair 10 --symbol-size 1400 --tsi 1 --no-cache-in-ram)
        ;;
    esac

    if [[ -n "$HAVE_TIME" ]]; then
        timeout -k 5 "$((LIMIT + 10))" /usr/bin/time -v -o "$log.time" \
            "${receive[@]}" >"$log.receive" 2>&1 &
    else
        "${receive[@]}" >"$log.receive" 2>&1 &
    fi
    RPID=$!
    sleep 0.5 # the receiver joins the group before the first packet
    timeout -k 5 "$((LIMIT + 10))" "${send[@]}" >"$log.send" 2>&1 &
    SPID=$!

    local peak=0 hwm deadline=$((SECONDS + LIMIT + 15)) rstatus=0 sstatus=0
    if [[ -z "$HAVE_TIME" ]]; then
        # The receiver exits by its own --timeout; this bound is a backstop.
        while kill -0 "$RPID" 2>/dev/null && ((SECONDS < deadline)); do
            hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$RPID/status" 2>/dev/null || true)
            [[ -n "$hwm" && "$hwm" -gt "$peak" ]] && peak=$hwm
            sleep 0.1
        done
        kill "$RPID" 2>/dev/null || true
    fi
    wait "$RPID" || rstatus=$?
    RPID=""
    wait "$SPID" || sstatus=$?
    SPID=""
    if [[ -n "$HAVE_TIME" ]]; then
        peak=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$log.time" 2>/dev/null || echo 0)
    fi

    if [[ -n "$DROP" ]]; then
        # Whether a burst made the receiver release blocks (then it hashed
        # the object read back), and how much was dropped.
        grep -hoE "hashing the object read back|[0-9]+ datagrams dropped by --drop" \
            "$log.receive" | sort -u | sed "s/^/  $impl: /" >&2 || true
    fi
    local got="" status=intact
    [[ -f "$out/payload.bin" ]] && got=$(sha256sum "$out/payload.bin" | cut -d' ' -f1)
    rm -rf "$out"
    if [[ $rstatus -ne 0 || "$got" != "$SHA" ]]; then
        status="FAILED(receiver-exit-$rstatus,sender-exit-$sstatus)"
        {
            tail -n 3 "$log.receive" | sed "s/^/  $impl receiver: /"
            tail -n 3 "$log.send" | sed "s/^/  $impl sender:   /"
        } >&2
    fi
    PEAK=${peak:-0} STATUS=$status
}

echo "object: ${SIZE_MIB} MiB, RaptorQ, 10 % repair, T = 1400, paced at $RATE Mbit/s over loopback multicast, $CAROUSEL round(s)${DROP:+, injected loss $DROP (seed $SEED)}"
port=$PORT_BASE
for impl in $IMPLS; do
    port=$((port + 1))
    measure "$impl" "$port"
    awk -v i="$impl" -v k="$PEAK" -v s="$STATUS" \
        'BEGIN { printf "%-7s receiver peak RSS %8.1f MiB (%s)\n", i ":", k / 1024, s }'
done
