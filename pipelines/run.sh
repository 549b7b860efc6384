#!/usr/bin/env bash
# Runs pipelines/NAME.pipeline with gst-launch-1.0: NAME [VAR=value ...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
name=${1:?usage: pipelines/run.sh NAME [VAR=value ...]}
shift
for kv in "$@"; do export "${kv?}"; done
: "${RT_SHARED:=$here/../../shared}"
export RT_SHARED
export GST_PLUGIN_PATH=$here/../target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}
line=$("$here/expand.sh" "$here/$name.pipeline")
eval "exec gst-launch-1.0 -q -e $line"
