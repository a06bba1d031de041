#!/usr/bin/env bash
# Runs the `http` bench with nginx serving the same 64 MiB file beside dms
# on loopback (one worker, sendfile, plain HTTP), so both are measured by the
# same client in the same run. Needs nginx (Debian: nginx-light).
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'kill "$(cat "$work/nginx.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/root"
port=${NGINX_PORT:-18480}
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path $work; proxy_temp_path $work; fastcgi_temp_path $work;
    uwsgi_temp_path $work; scgi_temp_path $work;
    server {
        listen 127.0.0.1:$port;
        root $work/root;
    }
}
CONF
nginx -c "$work/nginx.conf"
DMS_BENCH_NGINX_DIR="$work/root" DMS_BENCH_NGINX_URL="http://127.0.0.1:$port/bench.bin" \
    cargo bench -p dms-repair --bench http -- "$@"
