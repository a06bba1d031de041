#!/usr/bin/env bash
# CoAP block-wise download, side by side in one run: our server (`dms serve
# --coap`) against aiocoap-fileserver (Python aiocoap's file server)
# serving the same file, fetched whole by N concurrent libcoap coap-client
# processes over UDP with 1024-byte blocks (N = 1, 16, 128).
#
# Prints, per N and server: whole-object throughput (MB/s over all
# clients), requests/s (blocks/s), the ratio ours/theirs, and each server's
# peak memory (VmHWM). Needs coap-client (libcoap3-bin) and aiocoap
# (`.ci/setup.d/50-coap.sh` installs both).
#
#   benches/coap.sh                  # 1 MiB object, 1/16/128 clients
#   SIZE_KIB=4096 CLIENTS="1 16" benches/coap.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_KIB=${SIZE_KIB:-1024}
CLIENTS=${CLIENTS:-"1 16 128"}
COAP_CLIENT=${DMS_TEST_COAP_CLIENT:-$(command -v coap-client-notls || command -v coap-client-openssl || command -v coap-client || true)}
[ -n "$COAP_CLIENT" ] || { echo "coap-client not found (apt-get install libcoap3-bin)" >&2; exit 1; }
command -v aiocoap-fileserver >/dev/null || { echo "aiocoap-fileserver not found (pip install aiocoap)" >&2; exit 1; }

cargo build --release --quiet
DMS=$PWD/target/release/dms
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$work/files"
head -c $((SIZE_KIB * 1024)) /dev/urandom > "$work/files/fw.bin"

# Ours.
http_port=$(free_port); our_port=$(free_port)
"$DMS" serve --data "$work/data" --listen "127.0.0.1:$http_port" --coap "127.0.0.1:$our_port" 2>"$work/dms.log" &
pids+=($!); our_pid=$!
for _ in $(seq 100); do [ -s "$work/data/admin.token" ] && [ -s "$work/data/tls/cert.pem" ] && break; sleep 0.1; done
sleep 0.5
our_uri=$("$DMS" publish "$work/files/fw.bin" --name fw.bin --version 1.0.0 \
    --server "https://127.0.0.1:$http_port" --data "$work/data" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["package_uris"]["coap"])')

# Theirs, on the same file.
their_port=$(free_port)
aiocoap-fileserver --bind "127.0.0.1:$their_port" "$work/files" 2>"$work/aiocoap.log" &
pids+=($!); their_pid=$!
their_uri="coap://127.0.0.1:$their_port/fw.bin"
for _ in $(seq 100); do "$COAP_CLIENT" -B 2 -o /dev/null "$their_uri" 2>/dev/null && break; sleep 0.2; done

# N clients at once, each fetching the whole object; prints "MB/s req/s".
run_clients() {
    local uri=$1 n=$2 start end clients=()
    start=$(date +%s.%N)
    for i in $(seq "$n"); do
        # libcoap logs to stdout too; the bytes go to -o.
        "$COAP_CLIENT" -b 1024 -B 300 -o "$work/out.$i" "$uri" >/dev/null 2>&1 &
        clients+=($!)
    done
    for p in "${clients[@]}"; do wait "$p" || true; done
    end=$(date +%s.%N)
    # A client that gave up (time-out, 5.03 past its patience) or got other
    # bytes is not counted in the throughput; the table says how many did.
    local ok=0
    for i in $(seq "$n"); do
        if cmp -s "$work/out.$i" "$work/files/fw.bin"; then ok=$((ok + 1)); fi
        rm -f "$work/out.$i"
    done
    python3 -c "
t = $end - $start; ok = $ok; size = $SIZE_KIB * 1024
print(f'{ok * size / t / 1e6:.2f} {ok * $SIZE_KIB / t:.0f} {t:.2f} {ok}/$n')"
}

peak_mib() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

echo "CoAP over UDP, ${SIZE_KIB} KiB object, 1024-byte blocks, coap-client ($COAP_CLIENT); $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg) at start"
row='%-8s %-10s %10s %10s %8s %9s %12s\n'
# shellcheck disable=SC2059
printf "$row" clients server "MB/s" "req/s" "s" complete "peak MiB"
failed=0
for n in $CLIENTS; do
    read -r ours_mbs ours_rps ours_t ours_ok < <(run_clients "$our_uri" "$n")
    # shellcheck disable=SC2059
    printf "$row" "$n" dms "$ours_mbs" "$ours_rps" "$ours_t" "$ours_ok" "$(peak_mib "$our_pid")"
    [ "$ours_ok" = "$n/$n" ] || failed=1
    read -r theirs_mbs theirs_rps theirs_t theirs_ok < <(run_clients "$their_uri" "$n")
    # shellcheck disable=SC2059
    printf "$row" "$n" aiocoap "$theirs_mbs" "$theirs_rps" "$theirs_t" "$theirs_ok" "$(peak_mib "$their_pid")"
    python3 -c "
theirs = $theirs_mbs
print(f'{$n:<8} ratio      ' + (f'{$ours_mbs / theirs:9.2f}x' if theirs > 0 else '  (theirs: none complete)') + ' (target >= 5x)')"
done
# Every one of our clients must have its bytes; theirs are only reported.
[ "$failed" = 0 ] || { echo "some dms clients did not get the whole object" >&2; exit 1; }
