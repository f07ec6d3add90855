#!/usr/bin/env bash
# hoist's image builds against Debian's `buildah bud`, side by side in one run, on the same
# Dockerfile and context and the same busybox base (made offline from /bin/busybox):
#   * cold build (empty cache), fully cached rebuild, rebuild after one copied file changed.
# Prints milliseconds (median of RUNS) and the ratio buildah/hoist, with the issue's targets
# (cached rebuild < 100 ms; one-file rebuild >= 2x faster than buildah). Needs root; installs
# buildah with apt-get when missing. Everything lives in a temporary directory, removed at
# the end (buildah gets its own --root/--runroot there).
#
#   benches/build.sh                 # HOIST=target/release/hoist (built when missing), RUNS=3
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
RUNS=${RUNS:-3}
# buildah's storage: overlay (its fastest here) unless BUILDAH_DRIVER=vfs.
DRIVER=${BUILDAH_DRIVER:-overlay}
if [ -z "${HOIST:-}" ]; then
  cargo build --release --quiet
  HOIST=$REPO/target/release/hoist
fi
command -v buildah >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah >/dev/null
[ -x /bin/busybox ] || { echo "needs /bin/busybox (apt-get install busybox-static)" >&2; exit 1; }

WORK=$(mktemp -d /var/tmp/hoist-build-bench.XXXXXX)
BROOT=$WORK/buildah-root
BRUN=$WORK/buildah-run
cleanup() {
  buildah --root "$BROOT" --runroot "$BRUN" rm -a >/dev/null 2>&1 || true
  grep " $WORK" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
export HOIST_ROOT=$WORK/hoist-root

# The base image: an OCI layout of busybox, loaded into both tools.
python3 - "$WORK/layout" <<'PY'
import gzip, hashlib, io, json, os, subprocess, sys, tarfile
out = sys.argv[1]
os.makedirs(f"{out}/blobs/sha256")
def blob(data, media):
    digest = hashlib.sha256(data).hexdigest()
    open(f"{out}/blobs/sha256/{digest}", "wb").write(data)
    return {"mediaType": media, "digest": f"sha256:{digest}", "size": len(data)}
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
    for d in ["bin", "etc", "tmp"]:
        info = tarfile.TarInfo(d); info.type = tarfile.DIRTYPE; info.mode = 0o1777 if d == "tmp" else 0o755
        tar.addfile(info)
    tar.add("/bin/busybox", "bin/busybox")
    for name, text in [("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"), ("etc/group", b"root:x:0:\n")]:
        info = tarfile.TarInfo(name); info.size = len(text); tar.addfile(info, io.BytesIO(text))
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True).stdout.split()
    for applet in applets:
        if applet == "busybox": continue
        info = tarfile.TarInfo(f"bin/{applet}"); info.type = tarfile.SYMTYPE; info.linkname = "busybox"
        tar.addfile(info)
layer = raw.getvalue()
diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
config = {"architecture": arch, "os": "linux", "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
          "rootfs": {"type": "layers", "diff_ids": [diff_id]},
          "history": [{"created_by": "busybox from the host's /bin/busybox"}]}
config_desc = blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
layer_desc = blob(gzip.compress(layer, 1), "application/vnd.oci.image.layer.v1.tar+gzip")
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc, "layers": [layer_desc]}
manifest_desc = blob(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
manifest_desc["annotations"] = {"org.opencontainers.image.ref.name": "bench"}
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
open(f"{out}/index.json", "w").write(json.dumps({"schemaVersion": 2, "manifests": [manifest_desc]}))
PY
# hoist reads the layout's ref.name as the image's name when it is a full reference.
python3 - "$WORK/layout" <<'PY'
import json, sys
path = f"{sys.argv[1]}/index.json"
index = json.load(open(path))
index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = "localhost/busybox:bench"
json.dump(index, open(path, "w"))
PY
"$HOIST" image load -i "$WORK/layout" >/dev/null
skopeo --insecure-policy copy -q "oci:$WORK/layout:localhost/busybox:bench" \
  "containers-storage:[$DRIVER@$BROOT+$BRUN]localhost/busybox:bench" >/dev/null

# The context: ~200 small files and five of 1 MB, a Dockerfile with RUN steps before and
# after the COPY.
CTX=$WORK/context
mkdir -p "$CTX/src/lib" "$CTX/assets"
for i in $(seq 1 200); do printf 'module_%s = %s\n' "$i" "$i" > "$CTX/src/lib/mod_$i.rb"; done
for i in 1 2 3 4 5; do head -c 1048576 /dev/urandom > "$CTX/assets/blob_$i.bin"; done
cat > "$CTX/Dockerfile" <<'DF'
FROM localhost/busybox:bench
ENV APP=/app MODE=bench
RUN mkdir -p /opt/deps && for i in $(seq 1 300); do echo "dependency $i" > /opt/deps/dep_$i; done
WORKDIR /app
COPY . .
RUN cat src/lib/*.rb | wc -l > /app/line_count && md5sum assets/*.bin > /app/checksums
CMD ["cat", "/app/line_count"]
DF
printf 'name: bench\nservices:\n  app:\n    build: ./context\n' > "$WORK/compose.yaml"

ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
hoist_build() { (cd "$WORK" && "$HOIST" build --progress quiet "$@" >/dev/null); }
buildah_build() {
  buildah --root "$BROOT" --runroot "$BRUN" --storage-driver "$DRIVER" bud --layers --isolation chroot -q \
    -t localhost/bench-app "$@" "$CTX" >/dev/null
}
# Milliseconds the command took; "failed" (and its output on stderr) when it failed.
time_of() {
  local t0 t1
  t0=$(date +%s%N)
  if ! "$@"; then echo failed; return; fi
  t1=$(date +%s%N)
  ms "$t0" "$t1"
}

declare -A result
for tool in hoist buildah; do
  cold=(); cached=(); changed=()
  for run in $(seq 1 "$RUNS"); do
    if [ "$tool" = hoist ]; then
      "$HOIST" builder prune >/dev/null
      cold+=("$(time_of hoist_build)")
      cached+=("$(time_of hoist_build)")
      echo "change $run $tool" >> "$CTX/src/lib/mod_1.rb"
      changed+=("$(time_of hoist_build)")
    else
      buildah --root "$BROOT" --runroot "$BRUN" --storage-driver "$DRIVER" rmi -f localhost/bench-app >/dev/null 2>&1 || true
      buildah --root "$BROOT" --runroot "$BRUN" --storage-driver "$DRIVER" rmi --prune >/dev/null 2>&1 || true
      cold+=("$(time_of buildah_build --no-cache)")
      cached+=("$(time_of buildah_build)")
      echo "change $run $tool" >> "$CTX/src/lib/mod_1.rb"
      changed+=("$(time_of buildah_build)")
    fi
  done
  if printf '%s\n' "${cold[@]}" "${cached[@]}" "${changed[@]}" | grep -q failed; then
    echo "$tool: a build failed (see above); no figures" >&2
    exit 1
  fi
  result[$tool,cold]=$(printf '%s\n' "${cold[@]}" | median)
  result[$tool,cached]=$(printf '%s\n' "${cached[@]}" | median)
  result[$tool,changed]=$(printf '%s\n' "${changed[@]}" | median)
done

echo
echo "image build, median of $RUNS runs (buildah: $DRIVER storage, chroot isolation, --layers)"
printf '%-28s %10s %10s %8s\n' step "hoist ms" "buildah ms" ratio
for step in cold cached changed; do
  h=${result[hoist,$step]}; b=${result[buildah,$step]}
  printf '%-28s %10s %10s %7sx\n' "$step" "$h" "$b" "$(awk -v b="$b" -v h="$h" 'BEGIN {printf "%.1f", b / (h > 0 ? h : 1)}')"
done
h=${result[hoist,cached]}
verdict=$([ "$h" -lt 100 ] && echo PASS || echo FAIL)
echo "target: cached rebuild < 100 ms: $h ms $verdict"
ratio=$(awk -v b="${result[buildah,changed]}" -v h="${result[hoist,changed]}" 'BEGIN {printf "%.1f", b / (h > 0 ? h : 1)}')
verdict=$(awk -v r="$ratio" 'BEGIN {print (r >= 2 ? "PASS" : "FAIL")}')
echo "target: one-file rebuild >= 2x faster than buildah: ${ratio}x $verdict"
