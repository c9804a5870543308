#!/usr/bin/env bash
# Install the Debian packages tinyfleet needs, only those missing; sudo when not root.
# mosquitto(-clients): the MQTT broker the project starts itself on loopback.
# espeak-ng, flite, festival + an HTS voice: offline speech synthesis for the KWS corpus.
# postgresql: tests start their own server (initdb in a temp folder) for the PostgreSQL store/tune.
# gcc-arm-none-eabi + newlib + libstdc++ and qemu-system-arm: firmware cross-built for a Cortex-M4
# and run on an emulated MPS2 AN386 (tests/test_firmware_cortex_m4.py).
set -euo pipefail
packages=(mosquitto mosquitto-clients espeak-ng flite festival festvox-us-slt-hts gcc g++ make chromium
  gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm
  postgresql)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "tinyfleet: apt-get not found. Install these packages with your system's package manager:" >&2
  echo "  ${missing[*]}" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "tinyfleet: need root (or sudo) to install: ${missing[*]}" >&2; exit 1
  fi
fi
echo "tinyfleet: installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The Debian packages enable a system-wide broker on 1883 and a PostgreSQL cluster on 5432;
# tinyfleet and its tests start their own.
