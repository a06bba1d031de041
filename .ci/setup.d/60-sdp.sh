# An SDP parser we did not write, for tests/session_descriptions.rs: the
# sdp-transform package from npm, installed (once) into a directory under
# ${TMPDIR:-/tmp}. Needs node and npm (Debian nodejs, npm).
# Sourced by .ci/run; exports DMS_TEST_SDP_TRANSFORM (the package directory).

sdp_dir="${TMPDIR:-/tmp}/dms-sdp-transform"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq nodejs npm >/dev/null || true
fi
if command -v npm >/dev/null && [ ! -f "$sdp_dir/node_modules/sdp-transform/package.json" ]; then
    mkdir -p "$sdp_dir"
    npm install --silent --no-audit --no-fund --prefix "$sdp_dir" sdp-transform@3 >/dev/null 2>&1 || true
fi
if command -v node >/dev/null && [ -f "$sdp_dir/node_modules/sdp-transform/package.json" ]; then
    export DMS_TEST_SDP_TRANSFORM="$sdp_dir/node_modules/sdp-transform"
    echo "sdp: sdp-transform $(node -p "require('$DMS_TEST_SDP_TRANSFORM/package.json').version") at $DMS_TEST_SDP_TRANSFORM"
fi
