#!/usr/bin/env bash
# Starts (or stops) the real servers the production tests of server-example
# run against, all on 127.0.0.1, installing what is missing:
#   - PostgreSQL (Debian's package): a throwaway cluster, fsync off;
#   - moto's server (PyPI, in a cached venv): S3 and SQS on one port;
#   - s3s-fs (crates.io, built once by scripts/tools.sh): an S3 server
#     that checks signatures and expiry, for the signed-URL tests.
# `scripts/services.sh start` prints the variables the tests read; eval them:
#   eval "$(scripts/services.sh start)"   ...   scripts/services.sh stop
set -euo pipefail

state="${SPLITSOUND_SERVICES_DIR:-/tmp/splitsound-services}"
pg_port="${SPLITSOUND_PG_PORT:-55432}"
moto_port="${SPLITSOUND_MOTO_PORT:-55500}"
s3s_port="${SPLITSOUND_S3S_PORT:-55510}"
moto_version=5.2.5
venv="$HOME/.cache/splitsound/moto-$moto_version"
sudo_cmd=""
[ "$(id -u)" = 0 ] || sudo_cmd="sudo"

pg_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

# Runs a PostgreSQL tool as the postgres user when we are root (initdb refuses root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

wait_port() {
  local port=$1 what=$2
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$what did not start on port $port" >&2
  return 1
}

start() {
  stop >/dev/null 2>&1 || true
  mkdir -p "$state"
  if [ -z "$(pg_bin)" ]; then
    echo "==> installing postgresql (Debian)" >&2
    $sudo_cmd apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq postgresql >/dev/null
  fi
  local bin
  bin=$(pg_bin)
  rm -rf "$state/pg"
  mkdir -p "$state/pg"
  [ "$(id -u)" = 0 ] && chown postgres: "$state" "$state/pg"
  as_pg "$bin/initdb" -D "$state/pg" -A trust -U postgres -E UTF8 >"$state/initdb.log" 2>&1 \
    || { cat "$state/initdb.log" >&2; exit 1; }
  as_pg "$bin/pg_ctl" -D "$state/pg" -l "$state/pg/server.log" -w -o \
    "-h 127.0.0.1 -p $pg_port -k $state/pg -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null

  if [ ! -x "$venv/bin/moto_server" ]; then
    echo "==> installing moto[server] $moto_version (PyPI) into $venv" >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet "moto[server]==$moto_version" >&2
  fi
  nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$state/moto.log" 2>&1 &
  echo $! >"$state/moto.pid"
  wait_port "$moto_port" "moto"

  s3s_dir=$("$(dirname "$0")/tools.sh" s3s-fs)
  s3s_bin="$s3s_dir/s3s-fs"
  rm -rf "$state/s3s-data"
  mkdir -p "$state/s3s-data"
  nohup "$s3s_bin" --host 127.0.0.1 --port "$s3s_port" \
    --access-key test --secret-key testsecret "$state/s3s-data" >"$state/s3s.log" 2>&1 &
  echo $! >"$state/s3s.pid"
  wait_port "$s3s_port" "s3s-fs"

  cat <<VARS
export SPLITSOUND_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$pg_port/postgres
export SPLITSOUND_TEST_S3_ENDPOINT=http://127.0.0.1:$moto_port
export SPLITSOUND_TEST_SQS_ENDPOINT=http://127.0.0.1:$moto_port
export SPLITSOUND_TEST_S3S_ENDPOINT=http://127.0.0.1:$s3s_port
export SPLITSOUND_TEST_S3S_BIN=$s3s_bin
VARS
}

stop() {
  local bin
  bin=$(pg_bin)
  if [ -n "$bin" ] && [ -f "$state/pg/postmaster.pid" ]; then
    as_pg "$bin/pg_ctl" -D "$state/pg" -m immediate stop >/dev/null 2>&1 || true
  fi
  for pid in "$state/moto.pid" "$state/s3s.pid"; do
    if [ -f "$pid" ]; then
      kill "$(cat "$pid")" 2>/dev/null || true
      rm -f "$pid"
    fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
