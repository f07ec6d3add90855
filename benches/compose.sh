#!/usr/bin/env bash
# hoist against podman-compose + podman (crun), side by side in one run, on the same busybox
# image from the same local registry (127.0.0.1:5000) and the same Compose files:
#   * `up -d` until every container runs, from a down project, for 3 and 10 services;
#   * `down -t 0` from an up project, for 3 and 10 services;
#   * the hoist supervisor's memory with the 10 services up (podman's conmons for reference);
#   * `exec -T web true` latency: hoist exec against podman exec, on the 3-service stack.
# Prints medians (hyperfine) and ratios. Needs root; sets up the peers with
# ../shared/peers/setup.sh when they are not there yet (apt-get, local registry).
#
#   benches/compose.sh            # RUNS=5 for podman-compose, HOIST_RUNS=20 for hoist
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
RUNS=${RUNS:-5}
HOIST_RUNS=${HOIST_RUNS:-20}
. "$REPO/benches/peers.sh"
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }

cargo build --release --quiet
HOIST=$REPO/target/release/hoist
WORK=$(mktemp -d /tmp/hoist-bench-compose.XXXXXX)
export HOIST_ROOT=$WORK/root
OUT=$WORK/results
mkdir -p "$OUT"
cleanup() {
  for n in 3 10; do
    (cd "$WORK/hoist$n" 2>/dev/null && "$HOIST" down -v -t 0 >/dev/null 2>&1) || true
    (cd "$PEER/compose$n" && podman-compose down -t 0 >/dev/null 2>&1) || true
  done
  rm -rf "$WORK"
  peers_cleanup
}
trap cleanup EXIT

# The same files under project names of hoist's own, so nothing is shared with podman's.
for n in 3 10; do
  mkdir -p "$WORK/hoist$n"
  cp "$PEER/compose$n/compose.yaml" "$WORK/hoist$n/compose.yaml"
done
(cd "$WORK/hoist3" && "$HOIST" pull >/dev/null)

median() { # hyperfine JSON -> median seconds
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$1"
}

measure() { # tool dir runs up down -> "<up median> <down median>"
  local tool=$1 dir=$2 runs=$3 up=$4 down=$5
  cd "$dir"
  # Every up starts from a down project and every down from an up one.
  hyperfine -N -r "$runs" -w 1 --export-json "$OUT/$tool-up.json" --prepare "$down" "$up" >"$OUT/$tool-up.txt" 2>&1
  hyperfine -N -r "$runs" -w 1 --export-json "$OUT/$tool-down.json" --prepare "$up" "$down" >"$OUT/$tool-down.txt" 2>&1
  $down >/dev/null 2>&1 || true
  echo "$(median "$OUT/$tool-up.json") $(median "$OUT/$tool-down.json")"
}

ratio() { python3 -c 'import sys; print(f"{float(sys.argv[1])/float(sys.argv[2]):.1f}x")' "$1" "$2"; }
ms() { python3 -c 'import sys; print(f"{float(sys.argv[1])*1000:.0f} ms")' "$1"; }

NOSLEEP=$PEER/pc-nosleep/podman-compose-nosleep
echo "hoist vs podman-compose $(dpkg-query -W -f='${Version}' podman-compose) + podman $(podman --version | awk '{print $3}') (crun), busybox from 127.0.0.1:5000"
echo "medians; hoist $HOIST_RUNS runs, podman-compose $RUNS runs; ratio = podman-compose / hoist"
for n in 3 10; do
  read -r h_up h_down < <(measure hoist-$n "$WORK/hoist$n" "$HOIST_RUNS" "$HOIST up -d" "$HOIST down -t 0")
  read -r p_up p_down < <(measure podman-$n "$PEER/compose$n" "$RUNS" "podman-compose up -d" "podman-compose down -t 0")
  read -r q_up q_down < <(measure nosleep-$n "$PEER/compose$n" "$RUNS" "$NOSLEEP up -d" "$NOSLEEP down -t 0")
  printf '%2d services  up -d: hoist %7s  podman-compose %8s (%s)  without its sleeps %8s (%s)\n' \
    "$n" "$(ms "$h_up")" "$(ms "$p_up")" "$(ratio "$p_up" "$h_up")" "$(ms "$q_up")" "$(ratio "$q_up" "$h_up")"
  printf '%2d services  down:  hoist %7s  podman-compose %8s (%s)  without its sleeps %8s (%s)\n' \
    "$n" "$(ms "$h_down")" "$(ms "$p_down")" "$(ratio "$p_down" "$h_down")" "$(ms "$q_down")" "$(ratio "$q_down" "$h_down")"
done

# Memory with the 10 services up: the supervisor (one per project) against podman's
# per-container conmon monitors.
rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
pss_kib() { awk '/^Pss:/{print $2}' "/proc/$1/smaps_rollup"; }
(cd "$WORK/hoist10" && "$HOIST" up -d >/dev/null 2>&1)
sup=$(cat "$HOIST_ROOT/run/projects/hoist10/supervisor.pid")
running=$(cd "$WORK/hoist10" && "$HOIST" ps -q | wc -l)
echo "hoist supervisor with $running containers: RSS $(rss_kib "$sup") KiB, PSS $(pss_kib "$sup") KiB"
(cd "$WORK/hoist10" && "$HOIST" down -t 0 >/dev/null 2>&1)
(cd "$PEER/compose10" && podman-compose up -d >/dev/null 2>&1)
conmon_rss=0
for pid in $(pgrep -x conmon); do conmon_rss=$((conmon_rss + $(rss_kib "$pid"))); done
echo "podman: $(pgrep -x conmon | wc -l) conmon processes, RSS $conmon_rss KiB together"
(cd "$PEER/compose10" && podman-compose down -t 0 >/dev/null 2>&1)

# exec latency on the 3-service stack: hoist exec straight through the runtime against
# podman exec (crun) into the same image's container.
# One stack at a time: both publish 127.0.0.1:18080.
(cd "$WORK/hoist3" && "$HOIST" up -d >/dev/null 2>&1)
(cd "$WORK/hoist3" && hyperfine -N -r 100 -w 5 --export-json "$OUT/exec-hoist.json" "$HOIST exec -T web true" >"$OUT/exec-hoist.txt" 2>&1)
(cd "$WORK/hoist3" && "$HOIST" down -t 0 >/dev/null 2>&1)
(cd "$PEER/compose3" && podman-compose up -d >/dev/null 2>&1)
web=$(podman ps --filter label=io.podman.compose.project=compose3 --format '{{.Names}}' | grep web | head -1)
hyperfine -N -r 30 -w 3 --export-json "$OUT/exec-podman.json" "podman exec $web true" >"$OUT/exec-podman.txt" 2>&1
(cd "$PEER/compose3" && podman-compose down -t 0 >/dev/null 2>&1)
h=$(median "$OUT/exec-hoist.json"); p=$(median "$OUT/exec-podman.json")
python3 -c 'import sys; h,p=map(float,sys.argv[1:]); print(f"exec -T web true: hoist {h*1000:.1f} ms  podman exec {p*1000:.1f} ms  ({p/h:.1f}x)")' "$h" "$p"
