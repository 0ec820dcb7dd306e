#!/usr/bin/env bash
# scripts/strongswan/interop.sh — run ferry's strongSwan interop tests
# (ferry initiator <-> strongSwan responder, strongSwan initiator <-> ferry
# gateway: certificates, virtual IP, UDP encapsulation, CHILD and IKE
# rekeys, TCP checked by hash) and print the matrix. Needs root and the
# packages of scripts/ci-deps.sh; each test makes its own namespaces.
set -euo pipefail
cd "$(dirname "$0")/../.."
"$PWD/scripts/ci-deps.sh" >/dev/null
out=$(go test -count=1 -v -run 'StrongSwan' ./ipsec/ike/ 2>&1) || { echo "$out"; exit 1; }
echo "$out" | grep -E '^(--- |ok|FAIL)'
if echo "$out" | grep -q -- '--- SKIP'; then
	echo "interop: skipped (see above)" >&2
	exit 1
fi
