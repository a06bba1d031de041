# An S3-protocol server for the blob-store tests (`dms serve --blobs
# s3://…`): moto's standalone server (Python moto[server]; in memory,
# starts in about a second), on loopback, with one bucket.
# Sourced by .ci/run; exports
#   DMS_TEST_S3_ENDPOINT   http://127.0.0.1:PORT
#   DMS_TEST_S3_BUCKET     the bucket made here
#   DMS_TEST_S3_SERVER     the moto_server command (tests that stop and
#                          restart a store start their own on another port)
# and registers its stop with on_exit.

s3_python=$(command -v python3 || true)
if [ -n "$s3_python" ] && ! command -v moto_server >/dev/null; then
    "$s3_python" -m pip install -q 'moto[server]' >/dev/null 2>&1 || true
    hash -r
fi
s3_server=$(command -v moto_server || true)
if [ -n "$s3_server" ] && [ "${DMS_CI_INSTALL_ONLY:-0}" != 1 ]; then
    s3_dir=$(mktemp -d "${TMPDIR:-/tmp}/dms-s3.XXXXXX")
    # A free port: bind 0 and read what the kernel gave.
    s3_port=$("$s3_python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$s3_server" -H 127.0.0.1 -p "$s3_port" >"$s3_dir/moto.log" 2>&1 &
    s3_pid=$!
    on_exit "kill $s3_pid; rm -rf '$s3_dir'"
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:$s3_port/" 2>/dev/null && break
        sleep 0.1
    done
    if curl -fsS -o /dev/null -X PUT "http://127.0.0.1:$s3_port/dms-test"; then
        export DMS_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
        export DMS_TEST_S3_BUCKET="dms-test"
        export DMS_TEST_S3_SERVER="$s3_server"
        echo "s3: moto_server on $DMS_TEST_S3_ENDPOINT, bucket $DMS_TEST_S3_BUCKET"
    else
        echo "s3: moto_server did not start (see $s3_dir/moto.log)"
    fi
fi
