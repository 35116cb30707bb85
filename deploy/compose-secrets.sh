#!/bin/sh
# Writes the credentials deploy/compose.yaml mounts as secrets, once: random passwords in
# deploy/secrets/ (readable by you only; never committed). Existing files are kept, so running
# it again changes nothing; delete the directory (and the volumes) to start over.
set -eu
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
mkdir -p "$dir"
chmod 700 "$dir"
umask 077
random() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
[ -s "$dir/postgres-password" ] || random > "$dir/postgres-password"
# The store URI carries the same password (hex: nothing to URL-encode).
[ -s "$dir/store-uri" ] ||
  printf 'postgresql://mlgrid:%s@postgres:5432/mlgrid' "$(cat "$dir/postgres-password")" > "$dir/store-uri"
[ -s "$dir/s3-access-key" ] || printf 'mlgrid' > "$dir/s3-access-key"
[ -s "$dir/s3-secret-key" ] || random > "$dir/s3-secret-key"
# The containers' users (mlgrid, postgres, minio) read the files through bind mounts.
chmod 644 "$dir"/*
chmod 700 "$dir"  # other users of this host cannot reach them
echo "compose secrets in $dir"
