#!/usr/bin/env bash
# Start a local PostgreSQL server for the tests, on a Debian/Ubuntu machine.
#
# Afterwards the tests' default URL works with nothing exported:
#     postgresql+psycopg://postgres@localhost:5432/postgres
# The role `postgres` is trusted (no password) over TCP from 127.0.0.1 and ::1 only: a CI or
# developer machine, never a server that holds real data.
#
# Installs the `postgresql` package if `pg_ctlcluster` is missing, creates the cluster `main`
# of the newest installed version if there is none, adds the two trust lines to its pg_hba.conf
# (once; the script can be run again), starts or reloads the cluster and waits until it answers.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PORT=5432

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    $SUDO apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
fi

version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if ! pg_lsclusters -h | awk '{print $1, $2}' | grep -qx "$version main"; then
    $SUDO pg_createcluster --port "$PORT" "$version" main
fi
port="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')"
if [ "$port" != "$PORT" ]; then
    echo "start-postgres: cluster $version/main listens on port $port, not $PORT" >&2
    exit 1
fi

hba="/etc/postgresql/$version/main/pg_hba.conf"
marker="# voxelwise tests: trust the postgres role over TCP from localhost"
if ! $SUDO grep -qxF "$marker" "$hba"; then
    # pg_hba.conf is read top down and the first matching line wins: put ours first.
    updated="$(printf '%s\n%s\n%s\n' "$marker" \
        "host    all    postgres    127.0.0.1/32    trust" \
        "host    all    postgres    ::1/128         trust"; $SUDO cat "$hba")"
    printf '%s\n' "$updated" | $SUDO tee "$hba" >/dev/null
fi

if $SUDO pg_ctlcluster "$version" main status >/dev/null 2>&1; then
    $SUDO pg_ctlcluster "$version" main reload
else
    $SUDO pg_ctlcluster "$version" main start
fi

pg_isready -h localhost -p "$PORT" -t 30
psql -h localhost -p "$PORT" -U postgres -d postgres -w -Atc "SELECT 'postgres ready: ' || version()"
