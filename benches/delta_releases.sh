#!/usr/bin/env bash
# Deltas between real consecutive releases (issue 8): for each pair, the
# full size, zstd -19 of the full new version, our delta (`dms delta make`:
# our bsdiff-family method "bsdiff-zstd" beside a zstd-3 patch-from probe,
# zstd-19 only when the probe may win, the smallest kept), and the bsdiff and xdelta3
# (VCDIFF) command-line tools as baselines, with generation time and peak
# memory; then `dms delta apply` time and a check of its output.
#
# The releases are Python wheels downloaded with pip (not committed): for
# each pair of versions the script compares (a) the largest shared library
# that changed and (b) the whole unpacked wheel as one deterministic tar
# (the "image" case). Targets: our delta <= 1.1 x the smallest baseline,
# made at >= 20 MB/s of target, applied at >= 200 MB/s.
#
# Environment (all optional):
#   PAIRS="numpy 2.1.2 2.1.3;scipy 1.14.0 1.14.1"   package old new; ...
#   PYVER=311  PLATFORM=manylinux2014_x86_64        wheel tags
#   DMS=target/release/dms   the binary (built with `cargo build --release
#                            --bin dms` unless NO_BUILD=1). Lighter: the
#                            library's own `delta make|apply` command line,
#                            DMS=target/release/examples/delta_cli (built
#                            with `cargo build --release -p dms-delta
#                            --example delta_cli`, not built by the script)
# Baselines run when installed: zstd, bsdiff, xdelta3 (Debian packages
# zstd, bsdiff, xdelta3). Memory comes from /usr/bin/time (package time).
set -euo pipefail
cd "$(dirname "$0")/.."

PAIRS=${PAIRS:-"numpy 2.1.2 2.1.3;scipy 1.14.0 1.14.1"}
PYVER=${PYVER:-311}
PLATFORM=${PLATFORM:-manylinux2014_x86_64}
DMS=${DMS:-target/release/dms}
if [[ -z "${NO_BUILD:-}" && "$DMS" == target/release/dms ]]; then
    cargo build --release --bin dms
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/delta-releases.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

have() { command -v "$1" >/dev/null 2>&1; }

# run LABEL TARGET_SIZE OUTPUT CMD...: runs CMD under /usr/bin/time and
# prints size of OUTPUT, ratio, seconds, MB/s of target and peak RSS.
run() {
    local label=$1 target=$2 out=$3
    shift 3
    local stats
    if ! stats=$( { /usr/bin/time -f '%e %M' "$@" >/dev/null 2>"$TMP/err"; } 2>&1 ); then
        echo "  $label: failed: $(tail -2 "$TMP/err")"
        return
    fi
    stats=$(tail -1 <<<"$stats")
    [[ -z "$stats" ]] && stats=$(tail -1 "$TMP/err")
    local secs=${stats% *} kib=${stats#* }
    local size
    size=$(stat -c %s "$out")
    python3 - "$label" "$size" "$target" "$secs" "$kib" <<'PY'
import sys
label, size, target, secs, kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
rate = target / max(secs, 0.01) / 1e6
print(f"  {label:<22} {size:>12} B  {size / target:8.4f}  {secs:7.2f} s  {rate:8.1f} MB/s  {kib / 1024:8.1f} MiB")
PY
}

compare() {
    local what=$1 old=$2 new=$3
    local target
    target=$(stat -c %s "$new")
    echo "$what: old $(stat -c %s "$old") B, new $target B"
    echo "  method                         size     ratio       time      rate      peak RSS"
    have zstd && run "zstd -19 --long (full)" "$target" "$TMP/full.zst" zstd -q -19 --long=31 -f "$new" -o "$TMP/full.zst"
    run "ours (dms delta make)" "$target" "$TMP/ours.delta" "$DMS" delta make "$old" "$new" "$TMP/ours.delta"
    run "ours, zstd-ref only" "$target" "$TMP/ours-z.delta" "$DMS" delta make --no-bsdiff "$old" "$new" "$TMP/ours-z.delta"
    have zstd && run "zstd -19 --patch-from" "$target" "$TMP/pf.zst" zstd -q -19 --long=31 -f --patch-from="$old" "$new" -o "$TMP/pf.zst"
    have bsdiff && run "bsdiff" "$target" "$TMP/bs.patch" bsdiff "$old" "$new" "$TMP/bs.patch"
    have xdelta3 && run "xdelta3 -9" "$target" "$TMP/x.vcdiff" xdelta3 -f -e -9 -S djw -s "$old" "$new" "$TMP/x.vcdiff"
    run "ours apply" "$target" "$TMP/rebuilt" "$DMS" delta apply "$old" "$TMP/ours.delta" "$TMP/rebuilt"
    cmp -s "$new" "$TMP/rebuilt" && echo "  apply output identical to new" || echo "  APPLY OUTPUT DIFFERS"
    "$DMS" delta make "$old" "$new" "$TMP/ours.delta" | grep candidate | sed 's/^/  /'
}

# A deterministic tar of a directory (sorted, no times or owners).
det_tar() {
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -cf "$2" .
}

IFS=';' read -ra pairs <<<"$PAIRS"
for pair in "${pairs[@]}"; do
    read -r pkg old new <<<"$pair"
    for v in "$old" "$new"; do
        mkdir -p "$TMP/$pkg-$v/whl" "$TMP/$pkg-$v/tree"
        python3 -m pip download -q "$pkg==$v" --no-deps --only-binary=:all: \
            --python-version "$PYVER" --platform "$PLATFORM" -d "$TMP/$pkg-$v/whl"
        unzip -q "$TMP/$pkg-$v/whl"/*.whl -d "$TMP/$pkg-$v/tree"
        det_tar "$TMP/$pkg-$v/tree" "$TMP/$pkg-$v.tar"
    done
    # The largest shared library present in both versions that changed.
    lib=$(cd "$TMP/$pkg-$new/tree" && find . -name '*.so*' -type f -printf '%s %p\n' | sort -rn |
        while read -r _ p; do
            if [[ -f "$TMP/$pkg-$old/tree/$p" ]] && ! cmp -s "$TMP/$pkg-$old/tree/$p" "$p"; then
                echo "$p"
                break
            fi
        done)
    if [[ -n "$lib" ]]; then
        compare "$pkg $old -> $new, $lib" "$TMP/$pkg-$old/tree/$lib" "$TMP/$pkg-$new/tree/$lib"
    fi
    compare "$pkg $old -> $new, whole unpacked wheel (tar)" "$TMP/$pkg-$old.tar" "$TMP/$pkg-$new.tar"
    echo
done
