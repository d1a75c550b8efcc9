#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real: Mono's C# compiler (Unity binding),
# libzmq/cppzmq/msgpack-cxx and CMake (C++ binding), headless Godot 3 (Godot binding), PostgreSQL
# (the fleet store), Chromium and its WebDriver (the inspector page's browser tests). Skips what is
# already there, so a second run costs nothing.
set -euo pipefail
packages=(mono-mcs libzmq3-dev cppzmq-dev libmsgpack-cxx-dev cmake g++ pkg-config godot3-server postgresql chromium chromium-driver)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]} (run: sudo $0)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
