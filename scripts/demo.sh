#!/usr/bin/env bash
# The main job: pedestrians in Debian's vtest.avi through rtpreprocess and rtinfer with
# yolox_nano, one JSON line of detections per frame on stdout.
#   scripts/demo.sh [VIDEO] [extra rtinfer properties...]
set -euo pipefail
cd "$(dirname "$0")/.."
video=${1:-/usr/share/doc/opencv-doc/examples/data/vtest.avi}
shift || true
model=$(scripts/fetch-model.sh)
export GST_PLUGIN_PATH=$PWD/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}
exec gst-launch-1.0 -q filesrc location="$video" ! decodebin ! videoconvert \
  ! rtpreprocess ! rtinfer model-file="$model" "$@" ! rtjsonenc ! fdsink fd=1
