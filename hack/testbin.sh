#!/usr/bin/env bash
# Builds the binaries of the test control plane and object store from pinned Go modules into a
# versioned cache directory outside the checkout, and prints that directory.
#
#   etcd, kube-apiserver, kube-scheduler, kube-controller-manager, kubectl  (hack/tools/{etcd,kube})
#   minio                                                                    (MINIO_VERSION below)
#
# The directory name carries the versions and a hash of the tools modules and BUILD_REVISION, so a
# change of any pin builds into a new directory and a second run with the same pins reuses the
# first one's binaries.
# Binaries are built into a temporary directory that is renamed into place only when all of them
# are there: a build that is killed half-way is never taken for a complete one.
set -euo pipefail

# Bump BUILD_REVISION when the way the binaries are built changes (flags, tags), so caches made
# the old way are not reused.
BUILD_REVISION=1
KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.7.0
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

here=$(cd "$(dirname "$0")" && pwd)
cache_root=${STORK_TESTBIN_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/stork/testbin}

key=$(cat "$here/tools/kube/go.mod" "$here/tools/kube/go.sum" "$here/tools/etcd/go.mod" \
	"$here/tools/etcd/go.sum" "$here/tools/etcd/main.go" <(echo "$BUILD_REVISION $MINIO_VERSION") |
	sha256sum | cut -c1-12)
dir="$cache_root/k8s-$KUBE_VERSION-etcd-$ETCD_VERSION-$key"

if [[ -f "$dir/.complete" ]]; then
	echo "$dir"
	exit 0
fi

log() { echo "testbin: $*" >&2; }
mkdir -p "$cache_root"
# One build at a time per cache; whoever waited finds the other's result.
exec 9>"$cache_root/.lock"
flock 9
if [[ -f "$dir/.complete" ]]; then
	echo "$dir"
	exit 0
fi
tmp=$(mktemp -d "$cache_root/.build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"

minor=${KUBE_VERSION#v1.}
minor=${minor%%.*}
# The same -X flags as kubernetes' hack/lib/version.sh, so the servers report the real version.
ldflags=""
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
	ldflags+=" -X '$pkg.gitVersion=$KUBE_VERSION' -X '$pkg.gitMajor=1' -X '$pkg.gitMinor=$minor'"
	ldflags+=" -X '$pkg.gitTreeState=clean' -X '$pkg.buildDate=1970-01-01T00:00:00Z'"
done

start=$(date +%s)
for cmd in kube-apiserver kube-scheduler kube-controller-manager kubectl; do
	log "building $cmd $KUBE_VERSION (the first, kube-apiserver, takes several minutes)"
	(cd "$here/tools/kube" && go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd")
done
log "building etcd $ETCD_VERSION"
(cd "$here/tools/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" .)
log "building minio $MINIO_VERSION"
GOBIN="$tmp" GOFLAGS=-trimpath go install -ldflags "-s -w" "github.com/minio/minio@$MINIO_VERSION"

"$tmp/kube-apiserver" --version >&2
touch "$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
log "built in $(($(date +%s) - start))s into $dir"
echo "$dir"
