#!/usr/bin/env bash
# Installs the Debian packages that test tiers need as real parts (the container engine, a
# headless browser, …). Called by `make system-deps` (and so by .ci/run). Only what is missing is
# installed; on a machine without apt-get or without root it says what it could not do and exits
# non-zero, so a tier that needs a package fails loudly instead of skipping.
set -euo pipefail
cd "$(dirname "$0")"

# One package per line; '#' starts a comment. Each tier adds what it needs here.
mapfile -t wanted < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' system-packages.txt)
[ "${#wanted[@]}" -eq 0 ] && exit 0

missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
  echo "system-packages: need root and apt-get to install: ${missing[*]}" >&2
  exit 1
fi
echo "system-packages: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
