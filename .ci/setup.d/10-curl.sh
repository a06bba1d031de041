# curl: the interoperability tests drive our HTTP servers with it, and the
# other setup files use it to see that their servers are up.
# Sourced by .ci/run; exports nothing.

if ! command -v curl >/dev/null; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
fi
