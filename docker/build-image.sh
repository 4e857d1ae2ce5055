#!/usr/bin/env bash
# Builds the image of one job FROM scratch: its static release binary, CA certificates, name
# resolution config and a non-root user. No base image is pulled.
#
#   docker/build-image.sh JOB          # image data-jobs/JOB:VERSION and :latest
#
# Needs the binary built first (make images does it):
#   cargo build --release --target x86_64-unknown-linux-gnu (with +crt-static, see Makefile)
set -euo pipefail

job=${1:?usage: docker/build-image.sh JOB}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
# The image tests use the image-test profile (make test sets it); images that ship use release.
profile=${IMAGE_PROFILE:-release}
binary="$target_dir/x86_64-unknown-linux-gnu/$profile/$job"
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
repository=${IMAGE_REPOSITORY:-data-jobs}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)

if [ "$profile" = release ]; then make_target=images; else make_target=image-test-binaries; fi
[ -x "$binary" ] || { echo "build-image: $binary is missing; run 'make $make_target'" >&2; exit 2; }
[ -f "$ca_bundle" ] || { echo "build-image: no CA bundle at $ca_bundle (install Debian's ca-certificates or set CA_BUNDLE)" >&2; exit 2; }
if readelf -l "$binary" | grep -q 'INTERP'; then
  echo "build-image: $binary is not statically linked; build it as 'make images' does" >&2
  exit 2
fi

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
rootfs="$context/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
cp "$binary" "$rootfs/usr/local/bin/$job"
cp "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
cp "$here/rootfs/etc/passwd" "$here/rootfs/etc/group" "$here/rootfs/etc/nsswitch.conf" "$rootfs/etc/"
# What a job reads at run time besides its variables.
case "$job" in
  pg-job) mkdir -p "$rootfs/transform" && cp -r "$root/transform/sql" "$rootfs/transform/sql" ;;
esac
sed "s/@JOB@/$job/g" "$here/Dockerfile.in" > "$context/Dockerfile"

# The legacy builder's deprecation notice is noise; show docker's output only when it fails.
if ! log=$(docker build --quiet --build-arg "VERSION=$version" \
    -t "$repository/$job:$version" -t "$repository/$job:latest" "$context" 2>&1); then
  echo "$log" >&2
  exit 1
fi
size=$(docker image inspect -f '{{.Size}}' "$repository/$job:latest")
echo "$repository/$job:$version $(awk -v s="$size" 'BEGIN { printf "%.1f MB", s / 1000000 }')"
