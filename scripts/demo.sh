#!/usr/bin/env bash
# scripts/demo.sh FERRY_BINARY — scripts/e2e.sh for people: the lent server's
# whole console streams live to the terminal (ferry's lines stamped with host
# time), then the timeline and the verdict. Same checks, same exit status.
set -euo pipefail
FERRY_DEMO=1 exec "$(dirname "$0")/e2e.sh" "$@"
