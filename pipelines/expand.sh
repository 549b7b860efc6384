#!/usr/bin/env bash
# Prints a .pipeline file as one gst-launch line: comments dropped, ${VAR:-default} filled in
# (quotes are kept as written).
set -euo pipefail
: "${RT_SHARED:=$(cd "$(dirname "$0")/../.." && pwd)/shared}"
# This folder, for defaults that name files in it (rules), whatever the current folder.
RT_PIPELINES=$(cd "$(dirname "$0")" && pwd)
export RT_SHARED RT_PIPELINES
text=$(sed -e 's/#.*$//' "$1" | tr '\n' ' ')
eval "cat <<__PIPELINE__
$text
__PIPELINE__"
