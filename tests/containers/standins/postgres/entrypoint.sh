#!/bin/sh
# What the compose file relies on of the official postgres image's start-up: the first start
# creates the cluster with POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB, then the server runs
# as the postgres user (passwords for TCP, trust on the local socket).
set -eu
if [ "${1:-}" != "postgres" ]; then
    exec "$@"
fi
shift
mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    password_file=$(mktemp)
    printf '%s' "$POSTGRES_PASSWORD" > "$password_file"
    chown postgres "$password_file"
    runuser -u postgres -- initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$password_file" \
        --encoding=UTF8 --locale=C.UTF-8 -A scram-sha-256 --auth-local=trust >/dev/null
    rm -f "$password_file"
    runuser -u postgres -- pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    if [ "$POSTGRES_DB" != postgres ]; then
        runuser -u postgres -- createdb -U "$POSTGRES_USER" "$POSTGRES_DB"
    fi
    runuser -u postgres -- pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec runuser -u postgres -- postgres -D "$PGDATA" "$@"
