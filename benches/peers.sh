# Sourced by the benchmarks that run podman-compose + podman beside hoist (compose.sh,
# density.sh), with REPO set: sets the peers up with ../shared/peers/setup.sh when they are
# not there yet (apt-get, local registry), makes sure the local registry (127.0.0.1:5000)
# serves the busybox image, sources podman's environment, and defines peers_cleanup, which
# stops what was started here and unmounts what podman left behind.
SHARED=${SHARED:-$REPO/../shared/peers}
export PEER=${PEER:-/tmp/hoist-peers}

[ -d "$SHARED" ] || { echo "needs $SHARED (the peers' setup scripts)" >&2; exit 1; }
# The registry does not survive a reboot; make-busybox-image.sh starts it again, and then
# it is stopped again at the end (setup.sh leaves it running: stopped here as well).
registry_was_up=false
# podman bind-mounts its overlay store onto itself and leaves the mount behind when it
# exits; the run takes it away again unless it was there before.
PODMAN_OVERLAY=$PEER/podman/storage/overlay
overlay_was_mounted=false
if mountpoint -q "$PODMAN_OVERLAY" 2>/dev/null; then overlay_was_mounted=true; fi
if [ -f "$PEER/compose10/compose.yaml" ] && curl -fsS -o /dev/null http://127.0.0.1:5000/v2/ 2>/dev/null; then
  registry_was_up=true
fi
if [ ! -f "$PEER/compose10/compose.yaml" ] || ! command -v podman-compose >/dev/null; then
  "$SHARED/setup.sh"
fi
curl -fsS -o /dev/null http://127.0.0.1:5000/v2/ 2>/dev/null || "$SHARED/make-busybox-image.sh" >/dev/null
. "$SHARED/podman-env.sh"

peers_cleanup() {
  if ! $overlay_was_mounted && mountpoint -q "$PODMAN_OVERLAY" 2>/dev/null; then
    umount "$PODMAN_OVERLAY" || true
  fi
  if ! $registry_was_up && [ -f "$PEER/registry/registry.pid" ]; then
    kill "$(cat "$PEER/registry/registry.pid")" 2>/dev/null || true
  fi
}
