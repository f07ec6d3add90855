#!/usr/bin/env bash
# hoist's image builds against Debian's `buildah bud`, side by side in one run, on the same
# Dockerfile and context and the same busybox base (an OCI layout made offline from the
# host's /bin/busybox, loaded into both):
#   * cold build (empty cache);
#   * fully cached rebuild (nothing changed);
#   * rebuild after one copied file changed (the RUN before the COPY stays cached).
# The Dockerfile: ENV, a RUN writing 300 files in a shell loop, WORKDIR, COPY of a context of
# 200 small files and five of 1 MB, a RUN reading the copied files. Each step is timed with
# date +%s%N; prints the median of RUNS in milliseconds, the ratio buildah/hoist, and the
# issue's targets (cached rebuild < 100 ms; one-file rebuild >= 2x faster than buildah) with
# PASS/FAIL, and exits 0 either way. hoist builds with `hoist build` (a compose.yaml with
# `build:`); buildah with `bud --layers --isolation chroot`, overlay storage when it works on
# this kernel and vfs otherwise (BUILDAH_DRIVER=vfs forces it). Needs root and busybox-static;
# installs buildah with apt-get when missing. Everything lives in one temporary directory,
# removed at the end: hoist gets its own HOIST_ROOT and buildah its own --root/--runroot there.
#
#   benches/build.sh                                   # HOIST=target/release/hoist, RUNS=3
#   HOIST=target/debug/hoist RUNS=1 benches/build.sh   # another binary, one round
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
RUNS=${RUNS:-3}
HOIST=${HOIST:-$REPO/target/release/hoist}

[ "$(id -u)" = 0 ] || { echo "needs root (hoist's runtime and buildah's storage)" >&2; exit 1; }
[ -x "$HOIST" ] || { echo "no hoist at $HOIST (cargo build --release, or set HOIST)" >&2; exit 1; }
if [ -n "$(find "$REPO/src" -newer "$HOIST" -print -quit 2>/dev/null)" ]; then
  echo "note: $HOIST is older than some of src/ (rebuild it to measure the current code)" >&2
fi
[ -x /bin/busybox ] || { echo "needs /bin/busybox (apt-get install busybox-static)" >&2; exit 1; }
if ! command -v buildah >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq buildah >/dev/null || { apt-get update -qq && apt-get install -y -qq buildah >/dev/null; }
fi

WORK=$(mktemp -d /var/tmp/hoist-build-bench.XXXXXX)
export HOIST_ROOT=$WORK/hoist-root
BROOT=$WORK/buildah-root
BRUN=$WORK/buildah-run
DRIVER=${BUILDAH_DRIVER:-overlay}
bah() { buildah --root "$BROOT" --runroot "$BRUN" --storage-driver "$DRIVER" "$@"; }
cleanup() {
  if [ -d "$BROOT" ]; then
    bah rm -a >/dev/null 2>&1 || true
    bah umount -a >/dev/null 2>&1 || true
  fi
  # Whatever is still mounted below the directory (overlay layers, buildah's runroot).
  awk -v w="$WORK" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r |
    xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The base image: an OCI layout of busybox (one gzip layer: bin/busybox, its applets as
# symlinks, etc/passwd, etc/group, tmp), named by its ref.name annotation.
BASE=localhost/busybox:bench
python3 - "$WORK/layout" "$BASE" <<'PY'
import gzip, hashlib, io, json, os, subprocess, sys, tarfile
out, ref = sys.argv[1], sys.argv[2]
os.makedirs(f"{out}/blobs/sha256")
def blob(data, media):
    digest = hashlib.sha256(data).hexdigest()
    with open(f"{out}/blobs/sha256/{digest}", "wb") as f:
        f.write(data)
    return {"mediaType": media, "digest": f"sha256:{digest}", "size": len(data)}
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
    for d in ["bin", "etc", "tmp"]:
        info = tarfile.TarInfo(d); info.type = tarfile.DIRTYPE
        info.mode = 0o1777 if d == "tmp" else 0o755
        tar.addfile(info)
    tar.add("/bin/busybox", "bin/busybox")
    for name, text in [("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"), ("etc/group", b"root:x:0:\n")]:
        info = tarfile.TarInfo(name); info.size = len(text); info.mode = 0o644
        tar.addfile(info, io.BytesIO(text))
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet == "busybox":
            continue
        info = tarfile.TarInfo(f"bin/{applet}"); info.type = tarfile.SYMTYPE; info.linkname = "busybox"
        tar.addfile(info)
layer = raw.getvalue()
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
config = {"architecture": arch, "os": "linux", "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
          "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
          "history": [{"created_by": "busybox from the host's /bin/busybox"}]}
config_desc = blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
layer_desc = blob(gzip.compress(layer, 1), "application/vnd.oci.image.layer.v1.tar+gzip")
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc, "layers": [layer_desc]}
manifest_desc = blob(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
manifest_desc["annotations"] = {"org.opencontainers.image.ref.name": ref}
with open(f"{out}/oci-layout", "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
with open(f"{out}/index.json", "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [manifest_desc]}, f)
PY
"$HOIST" image load -i "$WORK/layout" >/dev/null
# buildah: overlay when it works here (a working container from the base, mounted, running
# sh), vfs otherwise; the storage starts over for vfs. buildah pull names an oci: image after
# the layout's path whatever the reference says, so the path is relative (mktemp's upper case
# is no repository name) and the image is tagged after.
load_buildah() {
  local id c
  id=$(cd "$WORK" && bah pull -q "oci:layout:$BASE") && bah tag "$id" "$BASE" &&
    bah rmi localhost/layout:latest >/dev/null &&
    c=$(bah from -q "$BASE") && bah mount "$c" >/dev/null &&
    bah run --isolation chroot "$c" -- sh -c true && bah rm "$c" >/dev/null
}
if ! load_buildah 2>"$WORK/buildah-probe.err"; then
  [ "$DRIVER" = vfs ] && { cat "$WORK/buildah-probe.err" >&2; exit 1; }
  echo "buildah: $DRIVER storage does not work here ($(grep -v "level=warning" "$WORK/buildah-probe.err" | tail -1)); using vfs" >&2
  bah rm -a >/dev/null 2>&1 || true
  awk -v w="$WORK/buildah-" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r |
    xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$BROOT" "$BRUN"
  DRIVER=vfs
  load_buildah
fi

# The context: 200 small files and five of 1 MB; one Dockerfile for both tools.
CTX=$WORK/context
mkdir -p "$CTX/src/lib" "$CTX/assets"
for i in $(seq 1 200); do printf 'module_%s = %s\n' "$i" "$i" > "$CTX/src/lib/mod_$i.rb"; done
for i in 1 2 3 4 5; do head -c 1048576 /dev/urandom > "$CTX/assets/blob_$i.bin"; done
cat > "$CTX/Dockerfile" <<DF
FROM $BASE
ENV APP=/app MODE=bench
RUN mkdir -p /opt/deps && for i in \$(seq 1 300); do echo "dependency \$i" > /opt/deps/dep_\$i; done
WORKDIR /app
COPY . .
RUN cat src/lib/*.rb | wc -l > /app/line_count && md5sum assets/*.bin > /app/checksums
CMD ["cat", "/app/line_count"]
DF
printf 'name: bench\nservices:\n  app:\n    build: ./context\n' > "$WORK/compose.yaml"

ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
hoist_build() { (cd "$WORK" && "$HOIST" build --progress quiet "$@" >"$WORK/last.log" 2>&1); }
buildah_build() {
  bah bud --layers --isolation chroot -q --iidfile "$WORK/iid" -t localhost/bench-app "$@" "$CTX" \
    >"$WORK/last.log" 2>&1
}
# The id of the image just built (outside the timings).
hoist_id() { "$HOIST" image inspect bench-app | awk -F'"' '/"Id":/ && !id {id = $4} END {print id}'; }
buildah_id() { cat "$WORK/iid"; }
# Milliseconds the command took; the command's output and exit 1 when it failed.
time_of() {
  local t0 t1
  t0=$(date +%s%N)
  if ! "$@"; then
    echo "build failed: $*" >&2
    cat "$WORK/last.log" >&2
    exit 1
  fi
  t1=$(date +%s%N)
  ms "$t0" "$t1"
}
run_step() { # tool step command... : times into the step's list, then checks the image id
  local tool=$1 step=$2 t id; shift 2
  t=$(time_of "$@")
  times[$step]+="$t "
  id=$("${tool}_id")
  case $step in
    cold) cold_id=$id ;;
    cached) [ "$id" = "$cold_id" ] ||
      echo "warning: $tool's cached rebuild made another image ($id, not $cold_id): the cache was not used" >&2 ;;
    changed) [ "$id" != "$cold_id" ] ||
      echo "warning: $tool's rebuild after the change made the same image: the change was not seen" >&2 ;;
  esac
}

declare -A result times
for tool in hoist buildah; do
  times=([cold]= [cached]= [changed]=)
  for run in $(seq 1 "$RUNS"); do
    if [ "$tool" = hoist ]; then
      "$HOIST" builder prune >/dev/null
      run_step hoist cold hoist_build
      run_step hoist cached hoist_build
      echo "change $run $tool" >> "$CTX/src/lib/mod_1.rb"
      run_step hoist changed hoist_build
    else
      bah rmi -f localhost/bench-app >/dev/null 2>&1 || true
      bah rmi --prune >/dev/null 2>&1 || true
      run_step buildah cold buildah_build --no-cache
      run_step buildah cached buildah_build
      echo "change $run $tool" >> "$CTX/src/lib/mod_1.rb"
      run_step buildah changed buildah_build
    fi
  done
  for step in cold cached changed; do
    result[$tool,$step]=$(printf '%s\n' ${times[$step]} | median)
  done
done

ratio() { awk -v b="$1" -v h="$2" 'BEGIN {printf "%.1f", b / (h > 0 ? h : 1)}'; }
echo
echo "image build, median of $RUNS runs; hoist $("$HOIST" --version | awk '{print $NF}') ($HOIST)"
echo "buildah $(buildah --version | awk '{print $3}'): bud --layers, $DRIVER storage, chroot isolation"
printf '%-26s %10s %10s %8s\n' step "hoist ms" "buildah ms" "ratio"
for step in cold cached changed; do
  case $step in
    cold) label="cold (empty cache)" ;;
    cached) label="cached (nothing changed)" ;;
    changed) label="one copied file changed" ;;
  esac
  h=${result[hoist,$step]}; b=${result[buildah,$step]}
  printf '%-26s %10s %10s %7sx\n' "$label" "$h" "$b" "$(ratio "$b" "$h")"
done
echo "ratio = buildah / hoist"
h=${result[hoist,cached]}
echo "target: hoist cached rebuild < 100 ms: $h ms $([ "$h" -lt 100 ] && echo PASS || echo FAIL)"
r=$(ratio "${result[buildah,changed]}" "${result[hoist,changed]}")
echo "target: one-file rebuild >= 2x faster than buildah: ${r}x $(awk -v r="$r" 'BEGIN {print (r >= 2 ? "PASS" : "FAIL")}')"
