# PostgreSQL for the shared-catalog tests (`dms serve --catalog
# postgres://…`, tests/pg_catalog.rs): a cluster of its own (initdb in a
# temporary directory, trust authentication on loopback), started on a free
# loopback port with its unix socket in that directory, and one database.
# PostgreSQL refuses to run as root: as root, the cluster belongs to the
# `postgres` user and is run through runuser.
# Sourced by .ci/run; exports
#   DMS_TEST_POSTGRES_URL     postgres://USER@127.0.0.1:PORT/DB
#   DMS_TEST_POSTGRES_PGDATA  the cluster's data directory
#   DMS_TEST_POSTGRES_BIN     the directory of initdb, pg_ctl, psql
#   DMS_TEST_POSTGRES_CTL     a script that runs `pg_ctl -D PGDATA ARGS…`
#                             as the cluster's owner (tests that stop and
#                             start the server call `$CTL stop -m fast`,
#                             `$CTL start`)
# and registers its stop with on_exit.

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    # The package may start a system cluster on 5432; the tests want none.
    $SUDO systemctl stop postgresql >/dev/null 2>&1 || $SUDO service postgresql stop >/dev/null 2>&1 || true
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
if [ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] && [ "${DMS_CI_INSTALL_ONLY:-0}" != 1 ]; then
    pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/dms-pg.XXXXXX")
    pg_user=$(id -un)
    pg_as=""
    if [ "$(id -u)" = 0 ]; then
        pg_user=postgres
        id "$pg_user" >/dev/null 2>&1 || useradd --system --no-create-home "$pg_user"
        chown "$pg_user" "$pg_dir"
        pg_as="runuser -u $pg_user --"
    fi
    pg_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # The wrapper the tests use to stop and start the server.
    cat >"$pg_dir/ctl" <<EOF
#!/bin/sh
cd /
exec $pg_as "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w "\$@"
EOF
    chmod 755 "$pg_dir/ctl"
    if (cd / && $pg_as "$pg_bin/initdb" -D "$pg_dir/data" -U "$pg_user" --auth=trust -E UTF8 >"$pg_dir/initdb.log" 2>&1); then
        cat >>"$pg_dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$pg_dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
        if "$pg_dir/ctl" start -o "" >/dev/null 2>&1; then
            on_exit "'$pg_dir/ctl' stop -m immediate >/dev/null 2>&1; rm -rf '$pg_dir'"
            if (cd / && $pg_as "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U "$pg_user" dms_test) >>"$pg_dir/log" 2>&1; then
                export DMS_TEST_POSTGRES_URL="postgres://$pg_user@127.0.0.1:$pg_port/dms_test"
                export DMS_TEST_POSTGRES_PGDATA="$pg_dir/data"
                export DMS_TEST_POSTGRES_BIN="$pg_bin"
                export DMS_TEST_POSTGRES_CTL="$pg_dir/ctl"
                echo "postgres: $("$pg_bin/postgres" --version) on $DMS_TEST_POSTGRES_URL"
            else
                echo "postgres: createdb failed (see $pg_dir/log)"
            fi
        else
            echo "postgres: the server did not start (see $pg_dir/log)"
        fi
    else
        echo "postgres: initdb failed (see $pg_dir/initdb.log)"
    fi
fi
