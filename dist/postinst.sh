#!/bin/sh
# ferry's units stay disabled until their configuration is written: say so
# once, and let systemd see the new units.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = configure ] && [ -z "$2" ]; then
	echo "ferry: write /etc/ferry/lender.json (ferry lender init) or borrower.json (ferry borrower init);"
	echo "ferry: templates in /etc/ferry/examples; then e.g. systemctl enable --now ferry-lender"
fi
exit 0
