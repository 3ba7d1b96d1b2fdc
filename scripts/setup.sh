#!/usr/bin/env bash
# Set up arenacam on Debian 12/13 or Raspberry Pi OS: system packages, npm dependencies, build.
#   bash scripts/setup.sh          what the device needs (ffmpeg, chrony)
#   bash scripts/setup.sh --test   plus what the test suite needs (iproute2 for network namespaces, avahi,
#                                  openssl for the https upload tests, curl, a headless chromium
#                                  for the browser test of the /preview page)
# Idempotent: packages already present are not touched. Runs as root or through sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
  SUDO="sudo"
fi

pkgs=(ffmpeg chrony)
if [ "${1:-}" = "--test" ]; then
  # iproute2: network namespaces for the mDNS tests; avahi + a private dbus run inside them;
  # openssl: a throwaway CA for the https upload tests; chromium-headless-shell: a real browser
  # shows the MJPEG /preview.
  # systemd: systemd-analyze verify of the unit and a real systemd in a throw-away container;
  # mmdebstrap + qemu-user-static + binfmt-support: the install test in a Debian trixie arm64 root.
  pkgs+=(iproute2 avahi-daemon avahi-utils dbus-daemon procps curl openssl chromium-headless-shell
    systemd mmdebstrap qemu-user-static binfmt-support)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  # policy-rc.d-less containers may refuse to start services; that is fine for an install.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The tests run their own avahi-daemon inside a namespace; one we just installed must not
  # announce this machine on the real network.
  if printf '%s\n' "${missing[@]}" | grep -qx avahi-daemon && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now avahi-daemon.service avahi-daemon.socket >/dev/null 2>&1 || true
  fi
fi

node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<19)) { console.error("setup: Node >= 20.19 is required, found "+process.versions.node); process.exit(1) }'
npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
echo "setup: done"
