#!/usr/bin/env bash
# Time each inferred frame spends in rtinfer (GStreamer's latency tracer, element latency)
# with three live sources at different rates (15, 24 and 10 fps) and interval=3, for 20 s:
#
#   scripts/interval-latency.sh [PLUGIN_DIR]   (default: this checkout's target/release)
#
# Prints the count, mean, p95 and max in ms of frames that went to the model (frames the
# interval skips pass in well under 2 ms and are left out). Compare builds in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
plugins=$(realpath "${1:-target/release}")
model=$(realpath "${RT_SHARED:-../shared}")/models/yolox_nano.onnx
log=$(mktemp)
trap 'rm -f "$log"' EXIT
src() { echo "videotestsrc is-live=true pattern=$1 ! video/x-raw,width=640,height=480,framerate=$2 ! i.sink_$3"; }
GST_PLUGIN_PATH=$plugins GST_DEBUG=GST_TRACER:7 GST_TRACERS="latency(flags=element)" \
  GST_DEBUG_FILE=$log timeout -s INT 20 gst-launch-1.0 -q -e \
  rtinfer name=i model-file="$model" batch-size=4 interval=3 \
  $(src ball 15/1 0) $(src snow 24/1 1) $(src smpte 10/1 2) \
  i.src_0 ! fakesink i.src_1 ! fakesink i.src_2 ! fakesink >/dev/null || true
python3 - "$log" <<'PY'
import re, statistics, sys
text = open(sys.argv[1]).read()
ns = sorted(int(m) for m in re.findall(
    r"element-latency.*?element=\(string\)i,.*?time=\(guint64\)(\d+)", text) if int(m) > 2e6)
if not ns:
    sys.exit("no inferred frames measured")
print(f"inferred frames {len(ns)}: mean {statistics.mean(ns) / 1e6:.1f} ms, "
      f"p95 {ns[int(len(ns) * .95)] / 1e6:.1f} ms, max {ns[-1] / 1e6:.1f} ms")
PY
