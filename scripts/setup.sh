#!/usr/bin/env bash
# Sets up everything on a fresh Debian 12 / Ubuntu 22.04+ machine and builds the plugins:
#   - GStreamer runtime and development packages, PyGObject, test media (apt)
#   - ONNX Runtime and OpenVINO from PyPI in a virtual environment the plugin finds by itself
#     (~/.local/share/rtinfer/venv; override with RT_VENV)
#   - hls.js from npm for rtanalytics' dashboard (~/.local/share/rtinfer/web)
#   - the plugins (cargo build --release -> target/release)
#   - the default model: $RT_SHARED/models/yolox_nano.onnx, else downloaded and verified
# Needs Rust (https://rustup.rs) and sudo (or root) for apt.
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.31.1
OPENVINO_VERSION=2026.4.1
HLSJS_VERSION=1.7.4
VENV=${RT_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/rtinfer/venv}
# Where rtanalytics looks for hls.js by default (hls.hls_js in its config overrides it).
WEB=${XDG_DATA_HOME:-$HOME/.local/share}/rtinfer/web

APT_PACKAGES=(
  pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-libav
  python3-venv python3-gi python3-gst-1.0 gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  opencv-doc darknet ca-certificates curl mosquitto mosquitto-clients gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-plugins-bad gstreamer1.0-nice libgstreamer-plugins-bad1.0-dev iproute2
  gstreamer1.0-plugins-ugly fonts-dejavu-core g++ libgstrtspserver-1.0-dev
)

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm fetches hls.js; Debian's package only when no npm is on the PATH (e.g. one from Node's
# own packages).
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== apt: installing ${missing[*]}"
  sudo_if_needed apt-get -o DPkg::Lock::Timeout=300 update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
    install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "== python: creating $VENV"
  /usr/bin/python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import onnxruntime, sys; sys.exit(onnxruntime.__version__ != '$ORT_VERSION')" 2>/dev/null; then
  echo "== python: installing onnxruntime $ORT_VERSION"
  "$VENV/bin/pip" install -q --disable-pip-version-check "onnxruntime==$ORT_VERSION"
fi
if ! "$VENV/bin/python" -c "import openvino, sys; sys.exit(not openvino.__version__.startswith('$OPENVINO_VERSION'))" 2>/dev/null; then
  echo "== python: installing openvino $OPENVINO_VERSION"
  "$VENV/bin/pip" install -q --disable-pip-version-check "openvino==$OPENVINO_VERSION"
fi

if [ "$(node -p "require('$WEB/node_modules/hls.js/package.json').version" 2>/dev/null)" != "$HLSJS_VERSION" ]; then
  echo "== npm: installing hls.js $HLSJS_VERSION into $WEB"
  npm install --silent --no-audit --no-fund --prefix "$WEB" "hls.js@$HLSJS_VERSION"
fi

if ! command -v cargo >/dev/null; then
  echo "Rust is needed: install it from https://rustup.rs, then run this again." >&2
  exit 1
fi
echo "== cargo build --release"
cargo build --release --quiet

scripts/fetch-model.sh >/dev/null
echo "== ready: GST_PLUGIN_PATH=$PWD/target/release gst-inspect-1.0 rtinfer"
