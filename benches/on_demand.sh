#!/usr/bin/env bash
# Start on demand: the first connection to an on-demand busybox httpd (created by `up`, not
# running) against a connection to the same service already running; connect to first
# byte (curl's time_starttransfer), median of RUNS. The on-demand service is stopped again
# (`hoist stop`) before each first connection. Offline: the services run on the host's
# /usr (x-hoist: {root: host-usr}). Target: < 30 ms more than the running service.
#
#   benches/on_demand.sh          # RUNS=20
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
command -v curl >/dev/null || { echo "needs curl" >&2; exit 1; }
cargo build --release --quiet
HOIST=$PWD/target/release/hoist
WORK=$(mktemp -d /tmp/hoist-bench-ondemand.XXXXXX)
export HOIST_ROOT=$WORK/root
trap '(cd "$WORK" && "$HOIST" down -v -t 0 >/dev/null 2>&1) || true; rm -rf "$WORK"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
COLD=$(port)
WARM=$(port)
cat >"$WORK/compose.yaml" <<YAML
name: ondemandbench
services:
  cold:
    image: busybox:1.36
    x-hoist: {root: host-usr, start: on-demand}
    command: ["busybox", "sh", "-c", "mkdir -p /tmp/www && echo hi > /tmp/www/index.html && exec busybox httpd -f -p 8080 -h /tmp/www"]
    ports: ["127.0.0.1:$COLD:8080"]
  warm:
    image: busybox:1.36
    x-hoist: {root: host-usr}
    command: ["busybox", "sh", "-c", "mkdir -p /tmp/www && echo hi > /tmp/www/index.html && exec busybox httpd -f -p 8080 -h /tmp/www"]
    ports: ["127.0.0.1:$WARM:8080"]
YAML
cd "$WORK"
"$HOIST" up -d >/dev/null
first_byte() { curl -s -o /dev/null -w '%{time_starttransfer}\n' "http://127.0.0.1:$1/index.html"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for _ in $(seq "$RUNS"); do
  "$HOIST" stop cold >/dev/null
  first_byte "$COLD"
done >"$WORK/cold.txt"
for _ in $(seq "$RUNS"); do first_byte "$WARM"; done >"$WORK/warm.txt"
cold=$(median <"$WORK/cold.txt")
warm=$(median <"$WORK/warm.txt")
python3 - "$cold" "$warm" <<'PY'
import sys
cold, warm = (float(x) * 1000 for x in sys.argv[1:])
print(f"first connection to an on-demand service: {cold:.1f} ms to first byte (median)")
print(f"connection to the running service:        {warm:.1f} ms")
print(f"extra for starting on demand:             {cold - warm:.1f} ms (target < 30 ms)")
PY
