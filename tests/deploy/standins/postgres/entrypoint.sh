#!/bin/sh
# The stand-in's entrypoint: on an empty data directory, create the cluster with the superuser
# POSTGRES_USER whose password is read from POSTGRES_PASSWORD_FILE, and the database
# POSTGRES_DB; then run the server on every interface of the container, password-checked
# (scram-sha-256) for network clients. Runs as root only long enough to own its directories.
set -eu
: "${POSTGRES_USER:?the stand-in needs POSTGRES_USER}"
: "${POSTGRES_PASSWORD_FILE:?the stand-in needs POSTGRES_PASSWORD_FILE (a file holding the password)}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  # UTF8 as in the official image (minbase has no locale: initdb would pick SQL_ASCII).
  initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$POSTGRES_PASSWORD_FILE" \
    --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    # Socket only while the database is made: no client can connect half-way.
    pg_ctl --pgdata="$PGDATA" --options="-c listen_addresses=''" --wait start >/dev/null
    createdb --username="$POSTGRES_USER" "$POSTGRES_DB"
    pg_ctl --pgdata="$PGDATA" --mode=fast --wait stop >/dev/null
  fi
  echo "postgres-standin: created the cluster, user $POSTGRES_USER and database $POSTGRES_DB"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*'
