#!/bin/sh
# The image's entrypoint: `mlgrid "$@"`, after two preparations.
set -e

# Credentials as files (compose secrets, mounted Secrets): NAME_FILE=/path sets NAME to the
# file's content, for the settings that carry secrets, so they never sit in the container's
# configuration or arguments.
for name in MLGRID_BACKEND_STORE_URI MLGRID_REGISTRY_STORE_URI AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY; do
  eval "file=\${${name}_FILE:-}"
  if [ -n "$file" ]; then
    if [ ! -r "$file" ]; then
      echo "mlgrid-entrypoint: ${name}_FILE names $file, which cannot be read" >&2
      exit 2
    fi
    value=$(cat "$file")
    export "$name=$value"
    unset "${name}_FILE"
  fi
done

# A platform that runs the container under an arbitrary user id (OpenShift) leaves that id
# without a passwd entry, and ssh (git@host:repo project sources) refuses to run for such a user.
# The image lets group 0 append to /etc/passwd for exactly this.
if ! whoami >/dev/null 2>&1 && [ -w /etc/passwd ]; then
  echo "mlgrid:x:$(id -u):$(id -g):mlgrid:${HOME:-/home/mlgrid}:/usr/sbin/nologin" >> /etc/passwd
fi
exec mlgrid "$@"
