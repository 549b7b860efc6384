#!/usr/bin/env bash
# Runs pipelines/NAME.pipeline with gst-launch-1.0: NAME [VAR=value ...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
name=${1:?usage: pipelines/run.sh NAME [VAR=value ...]}
shift
for kv in "$@"; do export "${kv?}"; done
: "${RT_SHARED:=$here/../../shared}"
export RT_SHARED
# Without the shared models, the default model is fetched (scripts/fetch-model.sh).
if [ -z "${MODEL:-}" ] && [ ! -f "$RT_SHARED/models/yolox_nano.onnx" ] &&
  grep -q 'models/yolox_nano.onnx' "$here/$name.pipeline"; then
  MODEL=$("$here/../scripts/fetch-model.sh")
  export MODEL
fi
export GST_PLUGIN_PATH=$here/../target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}
line=$("$here/expand.sh" "$here/$name.pipeline")
eval "exec gst-launch-1.0 -q -e $line"
