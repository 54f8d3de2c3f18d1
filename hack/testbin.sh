#!/usr/bin/env bash
# Builds test binaries from pinned Go modules into a versioned cache directory outside the
# checkout, and prints that directory.
#
#   hack/testbin.sh       etcd, kube-apiserver, kube-scheduler, kube-controller-manager, kubectl
#                         (hack/tools/{etcd,kube}) and minio (MINIO_VERSION below)
#   hack/testbin.sh helm  helm (hack/tools/helm), for the chart's tests
#   hack/testbin.sh node  kubelet, kube-proxy, kube-scheduler (hack/tools/node) and coredns
#                         (hack/tools/dns), static, for real nodes
#   hack/testbin.sh s3    versitygw (VERSITYGW_VERSION below), a second S3 server, stricter than
#                         MinIO, for the object-store tests
#   hack/testbin.sh csi   csi-provisioner, csi-snapshotter, snapshot-controller (hack/tools/csi)
#                         and, in crds/, the VolumeSnapshot and VolumeGroupSnapshot CRDs of the
#                         same external-snapshotter release
#
# The sets live in separate directories, so that a change of the CSI pins never costs a
# rebuild of the control plane (about half an hour on two cores). A directory's name carries the
# versions and a hash of its tools modules and build revision, so a change of any pin builds into
# a new directory and a second run with the same pins reuses the first one's binaries.
# Binaries are built into a temporary directory that is renamed into place only when all of them
# are there: a build that is killed half-way is never taken for a complete one.
set -euo pipefail

# Bump BUILD_REVISION (CSI_BUILD_REVISION) when the way the binaries are built changes (flags,
# tags), so caches made the old way are not reused.
BUILD_REVISION=1
KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.7.0
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
CSI_BUILD_REVISION=1
VERSITYGW_VERSION=v1.8.0

here=$(cd "$(dirname "$0")" && pwd)
cache_root=${STORK_TESTBIN_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/stork/testbin}

log() { echo "testbin: $*" >&2; }

# cached DIR BUILD prints DIR after running `BUILD TMP` into a fresh temporary directory and
# renaming that into place, unless DIR is complete already.
cached() {
	local dir=$1 build=$2
	if [[ -f "$dir/.complete" ]]; then
		echo "$dir"
		return
	fi
	mkdir -p "$cache_root"
	# One build at a time per cache (the machines have two cores); whoever waited finds the
	# other's result.
	exec 9>"$cache_root/.lock"
	flock 9
	if [[ -f "$dir/.complete" ]]; then
		echo "$dir"
		return
	fi
	tmp=$(mktemp -d "$cache_root/.build-XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	chmod 755 "$tmp"
	local start
	start=$(date +%s)
	"$build" "$tmp"
	touch "$tmp/.complete"
	rm -rf "$dir"
	mv "$tmp" "$dir"
	trap - EXIT
	log "built in $(($(date +%s) - start))s into $dir"
	echo "$dir"
}

# kube_ldflags prints the same -X flags as kubernetes' hack/lib/version.sh, so that the
# binaries report the real version.
kube_ldflags() {
	local minor pkg
	minor=${KUBE_VERSION#v1.}
	minor=${minor%%.*}
	for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
		printf " -X '%s.gitVersion=%s' -X '%s.gitMajor=1' -X '%s.gitMinor=%s'" "$pkg" "$KUBE_VERSION" "$pkg" "$pkg" "$minor"
		printf " -X '%s.gitTreeState=clean' -X '%s.buildDate=1970-01-01T00:00:00Z'" "$pkg" "$pkg"
	done
}

build_kube() {
	local out=$1 ldflags cmd
	ldflags=$(kube_ldflags)
	for cmd in kube-apiserver kube-scheduler kube-controller-manager kubectl; do
		log "building $cmd $KUBE_VERSION (the first, kube-apiserver, takes several minutes)"
		(cd "$here/tools/kube" && go build -trimpath -ldflags "-s -w $ldflags" -o "$out/$cmd" "k8s.io/kubernetes/cmd/$cmd")
	done
	log "building etcd $ETCD_VERSION"
	(cd "$here/tools/etcd" && go build -trimpath -ldflags "-s -w" -o "$out/etcd" .)
	log "building minio $MINIO_VERSION"
	GOBIN="$out" GOFLAGS=-trimpath go install -ldflags "-s -w" "github.com/minio/minio@$MINIO_VERSION"
	"$out/kube-apiserver" --version >&2
}

csi_tools=$here/tools/csi
# The versions come from the tools module, the single place that pins them.
csi_version() { awk -v m="$1" '$1 == m { print $2 }' "$csi_tools/go.mod"; }
SNAPSHOTTER_VERSION=$(csi_version github.com/kubernetes-csi/external-snapshotter/v8)
PROVISIONER_VERSION=$(csi_version github.com/kubernetes-csi/external-provisioner/v6)

build_csi() {
	local out=$1 crds
	# The sidecars print main.version in their logs and for --version.
	log "building csi-provisioner $PROVISIONER_VERSION"
	(cd "$csi_tools" && go build -trimpath -ldflags "-s -w -X main.version=$PROVISIONER_VERSION" -o "$out/" \
		github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner)
	log "building csi-snapshotter and snapshot-controller $SNAPSHOTTER_VERSION"
	(cd "$csi_tools" && go build -trimpath -ldflags "-s -w -X main.version=$SNAPSHOTTER_VERSION" -o "$out/" \
		github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter \
		github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller)
	crds=$(cd "$csi_tools" && go list -m -f '{{.Dir}}' github.com/kubernetes-csi/external-snapshotter/client/v8)/config/crd
	mkdir "$out/crds"
	cp "$crds"/snapshot.storage.k8s.io_*.yaml "$crds"/groupsnapshot.storage.k8s.io_*.yaml "$out/crds/"
	chmod 644 "$out"/crds/*.yaml # the module cache is read-only
	"$out/csi-provisioner" --version >&2
	"$out/snapshot-controller" --version >&2
}

helm_tools=$here/tools/helm
HELM_VERSION=$(cd "$helm_tools" && go list -m -f '{{.Version}}' helm.sh/helm/v4)
HELM_BUILD_REVISION=1

build_helm() {
	local out=$1
	log "building helm $HELM_VERSION"
	# helm reports internal/version.version for `helm version` and in its User-Agent.
	(cd "$helm_tools" && go build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
		-o "$out/helm" helm.sh/helm/v4/cmd/helm)
	"$out/helm" version >&2
}

node_tools=$here/tools/node
dns_tools=$here/tools/dns
NODE_BUILD_REVISION=2

build_node() {
	local out=$1 ldflags cmd
	ldflags=$(kube_ldflags)
	# Static (CGO_ENABLED=0), as upstream releases them: the kube-scheduler goes into an image
	# with no libc (hack/images), the others run on the host.
	for cmd in kubelet kube-proxy kube-scheduler; do
		log "building $cmd $KUBE_VERSION"
		(cd "$node_tools" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$out/$cmd" "k8s.io/kubernetes/cmd/$cmd")
	done
	"$out/kubelet" --version >&2
	# The cluster DNS the real nodes' pods resolve Service names with (internal/harness runs it
	# on the host, as the kubelet's clusterDNS).
	log "building coredns"
	(cd "$dns_tools" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/coredns" .)
	"$out/coredns" -version >&2
}

build_s3() {
	local out=$1
	log "building versitygw $VERSITYGW_VERSION"
	GOBIN="$out" GOFLAGS=-trimpath go install -ldflags "-s -w" "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
	"$out/versitygw" --version >&2
}

case "${1:-}" in
"")
	key=$(cat "$here/tools/kube/go.mod" "$here/tools/kube/go.sum" "$here/tools/etcd/go.mod" \
		"$here/tools/etcd/go.sum" "$here/tools/etcd/main.go" <(echo "$BUILD_REVISION $MINIO_VERSION") |
		sha256sum | cut -c1-12)
	cached "$cache_root/k8s-$KUBE_VERSION-etcd-$ETCD_VERSION-$key" build_kube
	;;
csi)
	key=$(cat "$csi_tools/go.mod" "$csi_tools/go.sum" <(echo "$CSI_BUILD_REVISION") | sha256sum | cut -c1-12)
	cached "$cache_root/csi-snapshotter-$SNAPSHOTTER_VERSION-provisioner-$PROVISIONER_VERSION-$key" build_csi
	;;
s3)
	cached "$cache_root/versitygw-$VERSITYGW_VERSION" build_s3
	;;
helm)
	key=$(cat "$helm_tools/go.mod" "$helm_tools/go.sum" <(echo "$HELM_BUILD_REVISION") | sha256sum | cut -c1-12)
	cached "$cache_root/helm-$HELM_VERSION-$key" build_helm
	;;
node)
	key=$(cat "$node_tools/go.mod" "$node_tools/go.sum" "$dns_tools/go.mod" "$dns_tools/go.sum" "$dns_tools/main.go" \
		<(echo "$NODE_BUILD_REVISION") | sha256sum | cut -c1-12)
	cached "$cache_root/node-$KUBE_VERSION-$key" build_node
	;;
*)
	echo "usage: $0 [csi|helm|node|s3]" >&2
	exit 2
	;;
esac
