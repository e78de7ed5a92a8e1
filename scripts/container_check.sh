#!/usr/bin/env bash
# Builds the container image and runs the widget in it: /healthz and /w/default must
# answer from inside the image, as its non-root user.
#
#   sudo bash scripts/container_check.sh
#
# Made for machines where no registry can be reached: the Dockerfile's base
# (debian:bookworm-slim) is made here from Debian's packages with debootstrap and
# imported under that name when podman does not have it. podman builds with chroot
# isolation and buildah runs the image's command on the host network (rootless or
# sandboxed machines refuse `podman run`). Needs: debootstrap, podman, buildah, curl.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=docker.io/library/debian:bookworm-slim
IMAGE=localhost/webwidget:check
PORT=${PORT:-18765}
WORK=$(mktemp -d)
container=""
cleanup() {
    [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null || true
    [ -n "$container" ] && buildah rm "$container" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

if ! podman image exists "$BASE"; then
    echo "== making $BASE from Debian's packages (debootstrap)"
    debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log"
    # What the slim image drops: package lists and caches.
    rm -rf "$WORK/rootfs/var/lib/apt/lists/"* "$WORK/rootfs/var/cache/apt/"*.bin
    tar -C "$WORK/rootfs" -c . | podman import - "$BASE" >/dev/null
fi

echo "== podman build"
# pip inside the build trusts what the host's pip trusts (a proxy's CA, if any).
CA=/etc/ssl/certs/ca-certificates.crt
podman build --isolation=chroot --pull=never --format docker -t "$IMAGE" \
    --volume "$CA:/run/host-ca.crt:ro" --build-arg PIP_CERT=/run/host-ca.crt . \
    >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; exit 1; }
podman image inspect --format 'user={{.Config.User}} healthcheck={{.Config.Healthcheck.Test}}' "$IMAGE"

container=$(buildah from --pull-never "$IMAGE")
echo "== runs as uid $(buildah run --isolation chroot "$container" -- id -u)"
buildah run --isolation chroot --env PORT="$PORT" --env WEBWIDGET_DEMO=1 "$container" -- \
    gunicorn -c gunicorn.conf.py --bind "127.0.0.1:$PORT" wsgi:app >"$WORK/run.log" 2>&1 &
server_pid=$!

for _ in $(seq 1 120); do
    curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$WORK/run.log"; exit 1; }
    sleep 0.5
done
echo "== /healthz: $(curl -fsS "http://127.0.0.1:$PORT/healthz")"
page=$(curl -fsS -o /dev/null -w '%{http_code} %{size_download} bytes' "http://127.0.0.1:$PORT/w/default")
echo "== /w/default: $page"
curl -fsS "http://127.0.0.1:$PORT/w/default" | grep -q 'method="post"'
echo "== log: $(grep -c '"access": true' "$WORK/run.log") access lines, $(grep -c demo "$WORK/run.log") demo lines"
echo "container check passed"
