#!/bin/sh
# The image's entrypoint: `mlgrid "$@"`, after naming an unnamed user.
# A platform that runs the container under an arbitrary user id (OpenShift) leaves that id
# without a passwd entry, and ssh (git@host:repo project sources) refuses to run for such a user.
# The image lets group 0 append to /etc/passwd for exactly this.
set -e
if ! whoami >/dev/null 2>&1 && [ -w /etc/passwd ]; then
  echo "mlgrid:x:$(id -u):$(id -g):mlgrid:${HOME:-/home/mlgrid}:/usr/sbin/nologin" >> /etc/passwd
fi
exec mlgrid "$@"
