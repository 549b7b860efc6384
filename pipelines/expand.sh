#!/usr/bin/env bash
# Prints a .pipeline file as one gst-launch line: comments dropped, ${VAR:-default} filled in.
set -euo pipefail
: "${RT_SHARED:=$(cd "$(dirname "$0")/../.." && pwd)/shared}"
export RT_SHARED
text=$(sed -e 's/#.*$//' "$1" | tr '\n' ' ')
eval "printf '%s\n' \"$text\""
