#!/usr/bin/env bash
# Prints a .pipeline file as one gst-launch line: comments dropped, ${VAR:-default} filled in
# (quotes are kept as written).
set -euo pipefail
: "${RT_SHARED:=$(cd "$(dirname "$0")/../.." && pwd)/shared}"
export RT_SHARED
text=$(sed -e 's/#.*$//' "$1" | tr '\n' ' ')
eval "cat <<__PIPELINE__
$text
__PIPELINE__"
