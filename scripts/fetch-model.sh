#!/usr/bin/env bash
# Prints the path of the default model, yolox_nano.onnx: from $RT_SHARED/models (default
# ../shared beside the repository), else from models/ here, else downloaded from its public
# source and checked against its sha256.
set -euo pipefail
cd "$(dirname "$0")/.."
SHA=695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14
URL=https://raw.githubusercontent.com/Kazuhito00/YOLOX-ONNX-TFLite-Sample/3d4f1119d0694200671c08069ecb847aa0d8495a/model/yolox_nano.onnx
shared=${RT_SHARED:-../shared}
for f in "$shared/models/yolox_nano.onnx" models/yolox_nano.onnx; do
  if [ -f "$f" ]; then realpath "$f"; exit 0; fi
done
mkdir -p models
echo "downloading yolox_nano.onnx (Apache-2.0, Megvii YOLOX) ..." >&2
curl -fsSL "$URL" -o models/yolox_nano.onnx.part
echo "$SHA  models/yolox_nano.onnx.part" | sha256sum -c --quiet
mv models/yolox_nano.onnx.part models/yolox_nano.onnx
realpath models/yolox_nano.onnx
