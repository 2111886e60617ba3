#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 with a `test`
# database, for the PostgreSQL store's tests; prints the line to eval:
#   eval "$(bash .ci/postgres.sh)"   ->   export MONITOR_TEST_POSTGRES_URL=...
# Installs Debian's postgresql when it is missing, starts the cluster when it
# is stopped, and creates the cluster and the database when they do not exist.
# Everything it says besides that line goes to stderr.
set -euo pipefail

URL="postgresql://postgres@127.0.0.1:5432/test"

ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if ! command -v pg_ctlcluster >/dev/null; then
    echo "postgres.sh: installing postgresql" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi

if ! ready; then
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$version" ]; then
        version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
        pg_createcluster "$version" main >&2
    fi
    if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q online; then
        pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2
    fi
    for _ in $(seq 1 60); do
        ready && break
        sleep 0.5
    done
    ready || { echo "postgres.sh: PostgreSQL did not become ready on 127.0.0.1:5432" >&2; exit 1; }
fi

# The tests connect as postgres without a password: trust on loopback.
if ! psql "$URL" -Atqc 'select 1' >/dev/null 2>&1; then
    if ! su postgres -c "psql -Atqc 'select 1'" >/dev/null 2>&1; then
        echo "postgres.sh: cannot connect as the postgres user" >&2
        exit 1
    fi
    hba=$(su postgres -c "psql -Atqc 'show hba_file'")
    if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
        sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
        su postgres -c "psql -Atqc 'select pg_reload_conf()'" >/dev/null
    fi
    su postgres -c "psql -Atqc \"select 1 from pg_database where datname = 'test'\"" | grep -q 1 \
        || su postgres -c "createdb test"
fi
psql "$URL" -Atqc 'select 1' >/dev/null

echo "export MONITOR_TEST_POSTGRES_URL=$URL"
