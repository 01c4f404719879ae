#!/usr/bin/env bash
# Makes sure PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) answer. Where none
# answers, starts a private one: PostgreSQL is initialised into .pgdata/ under the repo
# (trust auth, loopback only), never into the system cluster. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
pg_port=${VIGIL_PG_PORT:-5432}

pgbin() {
  if command -v "$1" >/dev/null 2>&1; then command -v "$1"; return; fi
  ls /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -1
}

if pg_isready -q -h 127.0.0.1 -p "$pg_port" 2>/dev/null; then
  echo "services: PostgreSQL answers on 127.0.0.1:$pg_port"
else
  data="$root/.pgdata"
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  mkdir -p "$data" && chown postgres "$data" && chmod 700 "$data"
  if [ ! -f "$data/PG_VERSION" ]; then
    echo "services: initialising a private PostgreSQL in $data"
    su postgres -c "$(pgbin initdb) -A trust -U postgres -D '$data'" >/dev/null
  fi
  echo "services: starting PostgreSQL on 127.0.0.1:$pg_port"
  su postgres -c "$(pgbin pg_ctl) -D '$data' -l '$data/server.log' -o '-p $pg_port -k /tmp -c listen_addresses=127.0.0.1' -w start" >/dev/null
fi
# The database `vigil all` uses by default.
if ! psql -h 127.0.0.1 -p "$pg_port" -U postgres -tAc "select 1 from pg_database where datname='vigil'" | grep -q 1; then
  psql -h 127.0.0.1 -p "$pg_port" -U postgres -qc "create database vigil" && echo "services: created database vigil"
fi

if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
  echo "services: Redis answers on 127.0.0.1:6379"
else
  echo "services: starting Redis on 127.0.0.1:6379"
  mkdir -p "$root/.cache/redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir "$root/.cache/redis" --logfile "$root/.cache/redis/redis.log"
  for _ in $(seq 50); do redis-cli ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
fi
