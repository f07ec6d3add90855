#!/usr/bin/env bash
# Density: `up -d` (until every container runs) and `down -t 0` of N one-process services
# (`sleep infinity` on the busybox image from the local registry 127.0.0.1:5000), hoist
# against podman-compose + podman (crun) on the same files, one timed run each; and the
# hoist supervisor's RSS, per container beyond an empty project's.
# hoist: N = 100 and 1,000; podman-compose: N = 100, and 1,000 with PODMAN_1000=1 (given
# ten minutes at most). Targets: 100 services up in < 1 s, 1,000 in < 10 s, the supervisor
# < 0.25 MiB per extra container. Needs root; sets up the peers like compose.sh.
#
#   benches/density.sh            # PODMAN_1000=1 to try podman-compose with 1,000
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
. "$REPO/benches/peers.sh"
IMG=127.0.0.1:5000/busybox:latest

cargo build --release --quiet
HOIST=$REPO/target/release/hoist
WORK=$(mktemp -d /tmp/hoist-bench-density.XXXXXX)
export HOIST_ROOT=$WORK/root
cleanup() {
  for dir in "$WORK"/*/; do
    [ -f "$dir/compose.yaml" ] || continue
    (cd "$dir" && "$HOIST" down -v -t 0 >/dev/null 2>&1) || true
    (cd "$dir" && timeout 600 podman-compose down -t 0 >/dev/null 2>&1) || true
  done
  rm -rf "$WORK"
  peers_cleanup
}
trap cleanup EXIT

compose() { # n dir: n sleepers
  mkdir -p "$2"
  { echo "services:"; for i in $(seq "$1"); do
      printf '  s%s:\n    image: %s\n    command: ["sleep", "infinity"]\n' "$i" "$IMG"
    done; } >"$2/compose.yaml"
}
seconds() { # command...: wall seconds, or "-" if it failed or ran out of time
  local start end
  start=$(date +%s.%N)
  if timeout 600 "$@" >/dev/null 2>&1; then end=$(date +%s.%N); python3 -c "print(f'{$end-$start:.2f}')"; else echo -; fi
}
rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }

# An empty project's supervisor (one service, the least it can supervise) as the baseline.
compose 1 "$WORK/d1"
(cd "$WORK/d1" && "$HOIST" pull >/dev/null && "$HOIST" up -d >/dev/null)
base=$(rss_kib "$(cat "$HOIST_ROOT/run/projects/d1/supervisor.pid")")
(cd "$WORK/d1" && "$HOIST" down -t 0 >/dev/null)

echo "one timed run each; busybox sleepers from $IMG"
for n in 100 1000; do
  dir=$WORK/d$n
  compose "$n" "$dir"
  cd "$dir"
  up=$(seconds "$HOIST" up -d)
  running=$("$HOIST" ps -q | wc -l)
  rss=$(rss_kib "$(cat "$HOIST_ROOT/run/projects/d$n/supervisor.pid")")
  down=$(seconds "$HOIST" down -t 0)
  per=$(python3 -c "print(f'{($rss-$base)/($n-1):.0f}')")
  echo "hoist          $n services: up -d $up s ($running running), down $down s; supervisor RSS $rss KiB ($per KiB per extra container)"
  if [ "$n" = 100 ] || [ "${PODMAN_1000:-0}" = 1 ]; then
    p_up=$(seconds podman-compose up -d)
    p_running=$(podman ps -q --filter "label=io.podman.compose.project=d$n" | wc -l)
    p_down=$(seconds podman-compose down -t 0)
    echo "podman-compose $n services: up -d $p_up s ($p_running running), down $p_down s"
    python3 -c "
h, p = '$up', '$p_up'
if '-' not in (h, p): print(f'               up -d: podman-compose / hoist = {float(p)/float(h):.1f}x')
h, p = '$down', '$p_down'
if '-' not in (h, p): print(f'               down:  podman-compose / hoist = {float(p)/float(h):.1f}x')"
  fi
  cd "$REPO"
done
