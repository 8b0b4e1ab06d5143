#!/usr/bin/env bash
# Install Debian's chromium (and a CJK font for the report's Chinese labels) when missing:
# the report test opens the generated HTML report in headless Chromium.
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
  || need+=(chromium)
if ! fc-list :lang=zh 2>/dev/null | grep -q .; then
  need+=(fonts-wqy-zenhei)
fi
(( ${#need[@]} == 0 )) && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ERROR: the report test needs ${need[*]} (Chromium at /usr/bin/chromium or on PATH);" \
       "install it with your system's package manager" >&2
  exit 1
fi
sudo=""
if (( EUID != 0 )); then
  command -v sudo >/dev/null 2>&1 || {
    echo "ERROR: installing ${need[*]} needs root: run 'apt-get install -y ${need[*]}' as root" >&2
    exit 1
  }
  sudo="sudo"
fi
echo ">> installing ${need[*]} from Debian's packages (for the report test, once)"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
