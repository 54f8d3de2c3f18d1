#!/usr/bin/env bash
# Installs what the tests need from Debian's packages, when it is missing: for real test nodes
# containerd (1.6), runc, the CNI plugins (bridge, host-local, loopback, portmap in
# /usr/lib/cni), iptables and iproute2; xfsprogs and btrfs-progs, for the backup engine's tests
# on reflink file systems (made in loop-mounted image files); and Chromium, which the dashboard's
# test drives headless. Needs root; `make test` runs it.
set -euo pipefail
need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v ip >/dev/null || need+=(iproute2)
command -v mkfs.xfs >/dev/null || need+=(xfsprogs)
command -v mkfs.btrfs >/dev/null || need+=(btrfs-progs)
[[ -x /usr/bin/chromium ]] || need+=(chromium)
if ((${#need[@]})); then
	echo "node-deps: installing ${need[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi
# The kubelet's bridge traffic must pass iptables (kube-proxy's Service rules).
modprobe br_netfilter 2>/dev/null || true
