#!/usr/bin/env bash
# Runs every test: formatting and lints, the Rust unit, harness and pipeline tests, and the
# Python tests (reference comparison on vtest.avi, PyGObject example). Run scripts/setup.sh
# first. RT_SHARED points at the shared models and data (default ../shared).
set -euo pipefail
cd "$(dirname "$0")/.."
export RT_SHARED=$(realpath "${RT_SHARED:-../shared}")
VENV=${RT_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/rtinfer/venv}

echo "== test tools (numpy, OpenCV, pytest; aiortc for the WHEP server; NVRTC for the CUDA kernel; selenium for the dashboard)"
"$VENV/bin/pip" install -q --disable-pip-version-check numpy opencv-python-headless pytest \
  aiortc==1.16.0 aiohttp "nvidia-cuda-nvrtc==13.*" jsonschema pyyaml kubernetes-validate nats-py \
  selenium==4.51.0
# Real servers the service's tests start on loopback: Prometheus scrapes it, NATS JetStream
# receives its alerts; Debian's headless Chromium plays the dashboard.
test_apt=()
for p in prometheus nats-server chromium chromium-driver; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || test_apt+=("$p")
done
if [ ${#test_apt[@]} -gt 0 ]; then
  echo "== apt (test servers): ${test_apt[*]}"
  as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root apt-get -o DPkg::Lock::Timeout=300 update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
    install -y -qq --no-install-recommends "${test_apt[@]}"
fi
# NVRTC compiles the preprocessing kernel without a GPU, so CI checks that it compiles.
nvrtc_lib=$("$VENV/bin/python" -c "import nvidia, os; print(os.path.join(nvidia.__path__[0], 'cu13', 'lib'))")
export LD_LIBRARY_PATH=$nvrtc_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export RT_REQUIRE_NVRTC=1
# The same kernel source built as host C++ with g++ runs over its grid on the CPU.
export RT_REQUIRE_CXX=1
# An ONNX Runtime older than 1.20, to test that it is refused with a clear message.
old_ort=target/old-ort/libonnxruntime.so.1.19.2
if [ ! -f "$old_ort" ]; then
  mkdir -p target/old-ort/wheel
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.11 --platform manylinux_2_27_x86_64 onnxruntime==1.19.2 -d target/old-ort/wheel
  "$VENV/bin/python" -c "import zipfile,glob; z=zipfile.ZipFile(glob.glob('target/old-ort/wheel/*.whl')[0]); open('$old_ort','wb').write(z.read('onnxruntime/capi/libonnxruntime.so.1.19.2'))"
fi
export RT_OLD_ORT=$PWD/$old_ort
# Tracking quality is scored with Roboflow's trackers (its ByteTrack and TrackEval-style
# evaluator) on the TUD-Campus ground truth that motmetrics ships; a venv of their own, since
# trackers wants the full opencv-python.
MOT_VENV=${RT_MOT_VENV:-$(dirname "$VENV")/mot-venv}
if ! "$MOT_VENV/bin/python" -c "import trackers, importlib.util as u; assert u.find_spec('motmetrics')" 2>/dev/null; then
  echo "== MOT evaluation tools (trackers, motmetrics) in $MOT_VENV"
  /usr/bin/python3 -m venv "$MOT_VENV"
  "$MOT_VENV/bin/pip" install -q --disable-pip-version-check trackers==2.6.1
  "$MOT_VENV/bin/pip" install -q --disable-pip-version-check --no-deps motmetrics==1.4.0
fi
export RT_MOT_PYTHON=$MOT_VENV/bin/python

echo "== cargo fmt --check, clippy -D warnings"
cargo fmt --all -- --check
cargo clippy --profile ci --workspace --all-targets --quiet -- -D warnings

# The ci profile is the release profile without LTO (see Cargo.toml): its builds go to
# target/ci and leave the plugins the Python tests load, target/release, alone.
echo "== cargo test"
cargo test --profile ci --workspace

# The Python tests load target/release (up to date after setup.sh; rebuilt here after edits).
cargo build --release --quiet

echo "== pytest"
"$VENV/bin/python" -m pytest -q tests
