#!/usr/bin/env bash
# Builds the local test images from Debian's static busybox (no registry needed) and, when a
# registry runs on 127.0.0.1:5000, pushes them there too. Idempotent.
#   local/busybox:1  httpd serving "v1" from /www (start it with: httpd -f -p 80 -h /www)
#   local/busybox:2  the same serving "v2"
set -euo pipefail
BUSYBOX=${BUSYBOX:-/bin/busybox}
[ -x "$BUSYBOX" ] || { echo "busybox not found at $BUSYBOX (apt-get install busybox-static)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for v in 1 2; do
  if docker image inspect "local/busybox:$v" >/dev/null 2>&1 && [ -z "${REBUILD:-}" ]; then continue; fi
  root="$work/rootfs$v"
  mkdir -p "$root/bin" "$root/www" "$root/tmp"
  cp "$BUSYBOX" "$root/bin/busybox"
  for a in sh httpd nc wget sleep cat echo ls ps kill true false env; do ln -sf busybox "$root/bin/$a"; done
  echo "v$v" > "$root/www/index.html"
  echo ok > "$root/www/healthz"
  tar -C "$root" -c . | docker import -c 'CMD ["httpd","-f","-p","80","-h","/www"]' - "local/busybox:$v" >/dev/null
done
if [ -n "${PUSH_REGISTRY:-}" ]; then
  for v in 1 2; do
    docker tag "local/busybox:$v" "$PUSH_REGISTRY/busybox:$v"
    docker push -q "$PUSH_REGISTRY/busybox:$v" >/dev/null
  done
fi
echo "test images ready"
