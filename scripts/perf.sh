#!/usr/bin/env bash
# Measures rtinfer against a plain Python loop and the model alone, in one run, and prints
# the ratios (see gst-plugin-rtinfer/examples/bench.rs). Run scripts/setup.sh first.
#   scripts/perf.sh                 # throughput and latency, about 6 minutes on 2 cores
#   scripts/perf.sh rss 600         # RSS of 4 real-time streams after 1 and 10 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
export RT_SHARED=$(realpath "${RT_SHARED:-../shared}")
VENV=${RT_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/rtinfer/venv}
export RT_VENV=$VENV RT_MODEL=${RT_MODEL:-$(scripts/fetch-model.sh)}
"$VENV/bin/pip" install -q --disable-pip-version-check numpy opencv-python-headless
cargo run --release --quiet --example bench -- "$@"
