# nginx (Debian's package), the HTTP cache in front of an origin in
# tests/cache_in_front.rs (proxy_cache). Each test writes its own
# configuration and runs its own nginx on loopback, so nothing is started
# here. Sourced by .ci/run; exports DMS_TEST_NGINX.

nginx_bin=$(command -v nginx || true)
[ -n "$nginx_bin" ] || nginx_bin=$(ls /usr/sbin/nginx 2>/dev/null || true)
if [ -z "$nginx_bin" ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
    # The package starts a system nginx on port 80; the tests want none.
    $SUDO systemctl stop nginx >/dev/null 2>&1 || $SUDO service nginx stop >/dev/null 2>&1 || true
    nginx_bin=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
fi
if [ -n "$nginx_bin" ]; then
    export DMS_TEST_NGINX="$nginx_bin"
    echo "nginx: $("$nginx_bin" -v 2>&1) at $nginx_bin"
fi
