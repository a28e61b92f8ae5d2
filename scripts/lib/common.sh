# Helpers shared by the scripts in scripts/. Source it; do not run it.
# shellcheck shell=bash

# Prints a step heading.
step() { printf '\n==> %s\n' "$*"; }

# Installs Debian packages that are missing; needs root (CI and the dev machines run as root).
ensure_apt() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]} (install them, or run as root)" >&2
    return 1
  fi
  step "installing ${missing[*]}"
  if [ -z "${PERCLOUD_APT_UPDATED:-}" ]; then
    apt-get update -qq
    export PERCLOUD_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
