#!/usr/bin/env bash
# `make check-ha`: validate every Home Assistant discovery config tinyfleet publishes with Home
# Assistant's own schema code, in a separate venv (Home Assistant is a large install and pins its
# dependencies, so it never shares the project's venv). Not part of `make test`.
#
#   scripts/check-home-assistant.sh PROJECT_PYTHON [HA_VERSION] [BUNDLE_DIR...]
#
# Installs homeassistant==HA_VERSION with the package_constraints.txt shipped inside that release
# (what Home Assistant itself installs against) plus its MQTT integration's requirement.
# HA_VERSION default 2024.3.3: the newest release whose wheel supports Python 3.11 (Debian 12);
# later releases need Python >= 3.12 (2025.x: 3.13).
set -euo pipefail
project_python=$1; shift
version=${1:-2024.3.3}; [ $# -gt 0 ] && shift
venv=${HA_VENV:-.venv-ha}
python=${HA_PYTHON:-python3}
stamp="$venv/.homeassistant-$version"
if [ ! -f "$stamp" ]; then
  echo "check-ha: installing homeassistant==$version into $venv (a few minutes, once)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  wheels=$(mktemp -d)
  "$venv/bin/pip" download --quiet --no-deps -d "$wheels" "homeassistant==$version"
  "$venv/bin/python" - "$wheels" <<'PY'
import glob, json, sys, zipfile
wheel = zipfile.ZipFile(glob.glob(sys.argv[1] + "/homeassistant-*.whl")[0])
open(sys.argv[1] + "/constraints.txt", "wb").write(wheel.read("homeassistant/package_constraints.txt"))
manifest = json.loads(wheel.read("homeassistant/components/mqtt/manifest.json"))
open(sys.argv[1] + "/mqtt.txt", "w").write("\n".join(manifest["requirements"]) + "\n")
PY
  "$venv/bin/pip" install --quiet "homeassistant==$version" -r "$wheels/mqtt.txt" \
    -c "$wheels/constraints.txt"
  rm -rf "$wheels"
  touch "$stamp"
fi
configs=$(mktemp --suffix=.json)
trap 'rm -f "$configs"' EXIT
"$project_python" scripts/ha_discovery_configs.py "$@" > "$configs"
"$venv/bin/python" scripts/check_ha_discovery.py "$configs"
