package harness

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// NodeBinaries is the directory built by `hack/testbin.sh node`: the kubelet, kube-proxy and
// kube-scheduler of the pinned Kubernetes release, and CoreDNS. The container runtime is
// Debian's (containerd, runc and the CNI plugins, installed by hack/node-deps.sh).
type NodeBinaries string

// EnvNodeBinaries names the variable that points the harness at the node binaries.
const EnvNodeBinaries = "STORK_NODE_TESTBIN"

// cniBinDir is where Debian's containernetworking-plugins puts the plugins.
const cniBinDir = "/usr/lib/cni"

// FindNodeBinaries returns the directory named by $STORK_NODE_TESTBIN after checking that it
// and the machine have everything a real node needs.
func FindNodeBinaries() (NodeBinaries, error) {
	dir, err := findBuilt(EnvNodeBinaries, "hack/testbin.sh node", []string{"kubelet", "kube-proxy", "kube-scheduler", "coredns"})
	if err != nil {
		return "", err
	}
	var missing []string
	for _, tool := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if _, err := os.Stat(filepath.Join(cniBinDir, p)); err != nil {
			missing = append(missing, filepath.Join(cniBinDir, p))
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("a real node needs %s: run hack/node-deps.sh (make test does)", strings.Join(missing, ", "))
	}
	if os.Geteuid() != 0 {
		return "", errors.New("a real node needs root (the kubelet mounts volumes and makes cgroups)")
	}
	return NodeBinaries(dir), nil
}

// RequireNodeBinaries returns the node binaries' directory, skipping the test in -short mode
// and failing it when anything a real node needs is missing.
func RequireNodeBinaries(t testing.TB) NodeBinaries {
	t.Helper()
	return require(t, "a real kubelet and containerd", FindNodeBinaries)
}

// Path returns the path of one binary.
func (b NodeBinaries) Path(name string) string { return filepath.Join(string(b), name) }

// RealNodeOptions describes a real node.
type RealNodeOptions struct {
	// Name of the Node.
	Name string
	// Images are image tarballs (bin/images/*.tar of `make images`) imported into the node's
	// containerd before the kubelet starts: nothing can be pulled here.
	Images []string
	// PauseImage is the pod sandbox image, one of Images (default docker.io/library/stork-pause:dev).
	PauseImage string
	// Labels are added to the Node (e.g. topology.kubernetes.io/zone).
	Labels map[string]string
	// Registries are registries (host:port) the node's containerd pulls from over plain
	// HTTP, e.g. a test's registry on a loopback port.
	Registries []string
}

// RealNode is a kubelet with its own containerd and CNI bridge, registered with a cluster
// started with RealNodes. Pods on it really run: images from the node's containerd, volumes
// mounted by the kubelet, logs and exec through the API server. The nodes of a cluster share
// the machine's network namespace, where their bridges are routed to each other and one
// kube-proxy serves them all (realHost).
type RealNode struct {
	Name string
	// Dir holds the node's files: containerd's root and state, the kubelet's root, configs.
	Dir string
	// Subnet is the pods' address range on the node's bridge.
	Subnet *net.IPNet
	// KubeletPort is the kubelet's HTTPS port on the cluster's HostIP, and CAFile the
	// authority its serving certificate is signed by.
	KubeletPort int
	CAFile      string

	cluster    *Cluster
	bins       NodeBinaries
	labels     map[string]string
	socket     string
	bridge     string
	network    string // the CNI network's name, which tags its iptables rules
	cgroupRoot string
	stopped    bool
	containerd *Process
	kubelet    *Process
}

// podCIDR is the range of every real node's pod subnet (one /24 each, 10.244.INDEX.0/24);
// kube-proxy masquerades traffic to Services from outside it.
const podCIDR = "10.244.0.0/16"

// StartRealNode starts containerd, imports the images, and starts the kubelet for a Node
// named opts.Name, and kube-proxy with the cluster's first node; it returns once the Node is
// Ready. One cluster at a time has real nodes on the machine (they share iptables and the
// cluster DNS's port): another test's cluster wanting one waits for the first to stop.
func (c *Cluster) StartRealNode(ctx context.Context, bins NodeBinaries, opts RealNodeOptions) (*RealNode, error) {
	if c.HostIP == nil {
		return nil, fmt.Errorf("starting real node %s: the cluster was not started with RealNodes", opts.Name)
	}
	if opts.PauseImage == "" {
		opts.PauseImage = "docker.io/library/stork-pause:dev"
	}
	dir, err := c.env.dir(c.Name + "-node-" + opts.Name)
	if err != nil {
		return nil, err
	}
	c.realNodesMu.Lock()
	host, err := c.realHostLocked(ctx, bins)
	index := 0
	if err == nil {
		index = host.nodes
		host.nodes++
	}
	c.realNodesMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("starting real node %s: %w", opts.Name, err)
	}
	if index > 255 {
		return nil, fmt.Errorf("starting real node %s: a cluster has at most 256 real nodes", opts.Name)
	}
	_, subnet, _ := net.ParseCIDR(fmt.Sprintf("10.244.%d.0/24", index))
	n := &RealNode{Name: opts.Name, Dir: dir, Subnet: subnet, cluster: c, bins: bins, labels: opts.Labels,
		socket: filepath.Join(dir, "containerd", "containerd.sock"), bridge: fmt.Sprintf("storkbr%d", index),
		network: fmt.Sprintf("stork-harness-%d", index), cgroupRoot: "/stork-harness-" + opts.Name}
	c.env.onClose(n.Stop)
	opts.Images = append(slices.Clone(opts.Images), host.images...)
	if err := n.start(ctx, opts); err != nil {
		return nil, fmt.Errorf("starting real node %s: %w (logs in %s)", opts.Name, err, filepath.Join(c.env.Root, "logs"))
	}
	c.realNodesMu.Lock()
	defer c.realNodesMu.Unlock()
	if host.proxy == nil {
		if err := host.startProxy(ctx, c, n); err != nil {
			return nil, fmt.Errorf("starting kube-proxy: %w", err)
		}
	}
	c.realNodes = append(c.realNodes, n)
	return n, nil
}

func (n *RealNode) start(ctx context.Context, opts RealNodeOptions) error {
	for _, d := range []string{"containerd", "cni/net.d", "cni/ipam", "kubelet", "volume-plugins", "pod-logs"} {
		if err := os.MkdirAll(filepath.Join(n.Dir, d), 0o755); err != nil {
			return err
		}
	}
	// The bridge plugin forwards and kube-proxy's rules must see traffic between pods of the
	// same bridge (a Service whose endpoint is on the node it is called from).
	for path, v := range map[string]string{"/proc/sys/net/ipv4/ip_forward": "1", "/proc/sys/net/bridge/bridge-nf-call-iptables": "1"} {
		if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
			return fmt.Errorf("setting %s (is br_netfilter loaded?): %w", path, err)
		}
	}
	// The node's directory is a shared mount, as / is on systemd machines: the agent's volume
	// uses mountPropagation HostToContainer, which the runtime refuses on a private mount.
	if err := syscall.Mount(n.Dir, n.Dir, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mounting %s: %w", n.Dir, err)
	}
	if err := syscall.Mount("", n.Dir, "", syscall.MS_SHARED|syscall.MS_REC, ""); err != nil {
		return fmt.Errorf("making %s a shared mount: %w", n.Dir, err)
	}
	if err := makeCgroups(n.cgroupRoot); err != nil {
		return err
	}
	if err := n.startContainerd(ctx, opts); err != nil {
		return err
	}
	if err := n.startKubelet(ctx, opts); err != nil {
		return err
	}
	return n.cluster.WaitFor(ctx, 3*time.Minute, "node "+n.Name+" Ready", func(ctx context.Context) (bool, error) {
		node := &corev1.Node{}
		if err := n.cluster.Client.Get(ctx, client.ObjectKey{Name: n.Name}, node); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
}

func (n *RealNode) startContainerd(ctx context.Context, opts RealNodeOptions) error {
	cd := filepath.Join(n.Dir, "containerd")
	// containerd 1.6's configuration (version 2): everything under the node's directory, the
	// CRI plugin with cgroupfs (the kubelet's driver here) and a local sandbox image.
	config := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  # This machine refuses to lower oom_score_adj (the kubelet asks -998 for sandboxes).
  restrict_oom_score_adj = true
  # Pods' network namespaces under the node's state rather than the machine's /run/netns,
  # so that a node's Stop finds its own (unmountUnder).
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[6]q
    conf_dir = %[7]q
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %[8]q
`, filepath.Join(cd, "root"), filepath.Join(cd, "state"), n.socket, filepath.Join(cd, "opt"), opts.PauseImage,
		cniBinDir, filepath.Join(n.Dir, "cni/net.d"), filepath.Join(cd, "certs.d"))
	cfgPath := filepath.Join(cd, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		return err
	}
	// One hosts.toml per registry, in the directory layout of containerd's config_path.
	for _, host := range opts.Registries {
		hosts := fmt.Sprintf("server = %[1]q\n[host.%[1]q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+host)
		dir := filepath.Join(cd, "certs.d", host)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(hosts), 0o644); err != nil {
			return err
		}
	}
	cni := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}`, n.network, n.bridge, n.Subnet.String(), filepath.Join(n.Dir, "cni/ipam"))
	if err := os.WriteFile(filepath.Join(n.Dir, "cni/net.d/10-stork-harness.conflist"), []byte(cni), 0o644); err != nil {
		return err
	}
	var err error
	n.containerd, err = n.cluster.env.StartProcess(n.cluster.Name+"-"+n.Name+"-containerd", "containerd", []string{"--config", cfgPath}, nil)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, n.containerd, time.Minute, func() bool {
		_, err := n.Ctr(ctx, "version")
		return err == nil
	}); err != nil {
		return fmt.Errorf("containerd did not answer: %w", err)
	}
	for _, img := range opts.Images {
		if out, err := n.Ctr(ctx, "images", "import", "--no-unpack=false", img); err != nil {
			return fmt.Errorf("importing %s: %w\n%s", img, err, out)
		}
	}
	return nil
}

// Ctr runs containerd's ctr against the node's containerd in the Kubernetes namespace.
func (n *RealNode) Ctr(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return exec.CommandContext(ctx, "ctr", append([]string{"--address", n.socket, "--namespace", "k8s.io"}, args...)...).CombinedOutput()
}

func (n *RealNode) startKubelet(ctx context.Context, opts RealNodeOptions) error {
	c := n.cluster
	kubeconfig, err := c.UserKubeconfig("system:node:"+n.Name, "system:nodes")
	if err != nil {
		return err
	}
	port, err := c.env.FreePort()
	if err != nil {
		return err
	}
	healthz, err := c.env.FreePort()
	if err != nil {
		return err
	}
	resolv := filepath.Join(n.Dir, "resolv.conf")
	// Pods resolve with the cluster DNS (clusterDNS below); those that ask for the node's
	// resolver (dnsPolicy Default) get one that answers nothing rather than the machine's, so
	// that nothing in a test depends on the outside.
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\noptions ndots:1\n"), 0o644); err != nil {
		return err
	}
	// The kubelet serves with a certificate of the cluster's authority, which kube-apiserver
	// checks, and lets in only clients with a certificate of that authority (kube-apiserver's,
	// for logs, exec and port-forward) or a token, asking the API server whether they may
	// (webhook authentication and authorization), as kubeadm sets kubelets up. The eviction
	// thresholds are low because the test machines' disks are shared.
	pki := filepath.Join(n.Dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return err
	}
	caFile, certFile, keyFile := filepath.Join(pki, "ca.crt"), filepath.Join(pki, "kubelet.crt"), filepath.Join(pki, "kubelet.key")
	if err := os.WriteFile(caFile, c.ca.PEM, 0o644); err != nil {
		return err
	}
	if err := c.ca.issue(certFile, keyFile, "system:node:"+n.Name, []string{"system:nodes"}, x509.ExtKeyUsageServerAuth,
		[]string{n.Name}, []net.IP{c.HostIP}); err != nil {
		return fmt.Errorf("issuing the kubelet's serving certificate: %w", err)
	}
	n.KubeletPort, n.CAFile = port, caFile
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %[1]s
containerRuntimeEndpoint: unix://%[2]s
address: %[3]s
port: %[4]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[5]d
tlsCertFile: %[9]s
tlsPrivateKeyFile: %[10]s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[11]s}
authorization: {mode: Webhook}
resolvConf: %[6]s
clusterDNS: [%[12]s]
clusterDomain: %[13]s
failSwapOn: false
evictionHard: {memory.available: 100Mi, nodefs.available: 1%%, nodefs.inodesFree: 1%%, imagefs.available: 1%%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 60
volumePluginDir: %[7]s
podLogsDir: %[8]s
hairpinMode: hairpin-veth
`, n.cgroupRoot, n.socket, c.HostIP, port, healthz, resolv, filepath.Join(n.Dir, "volume-plugins"), filepath.Join(n.Dir, "pod-logs"),
		certFile, keyFile, caFile, c.HostIP, DNSDomain)
	cfgPath := filepath.Join(n.Dir, "kubelet-config.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		return err
	}
	labels := []string{}
	for k, v := range opts.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	args := []string{
		"--config=" + cfgPath,
		"--kubeconfig=" + kubeconfig,
		"--root-dir=" + filepath.Join(n.Dir, "kubelet"),
		"--cert-dir=" + filepath.Join(n.Dir, "kubelet", "pki"),
		"--hostname-override=" + n.Name,
		"--node-ip=" + c.HostIP.String(),
		"--v=2",
	}
	if len(labels) > 0 {
		args = append(args, "--node-labels="+strings.Join(labels, ","))
	}
	n.kubelet, err = c.env.StartProcess(c.Name+"-"+n.Name+"-kubelet", n.bins.Path("kubelet"), args, nil)
	if err != nil {
		return err
	}
	return waitHTTP(ctx, n.kubelet, fmt.Sprintf("http://127.0.0.1:%d/healthz", healthz), 2*time.Minute)
}

// waitFor polls ready until it holds, p exits, or timeout passes.
func waitFor(ctx context.Context, p *Process, timeout time.Duration, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if ready() {
			return nil
		}
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited: %v\n%s", p.Name, p.ExitError(), p.LogTail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s:\n%s", p.Name, timeout, p.LogTail(20))
		}
	}
}

// Stop removes everything the node made on the machine: its pods' processes, cgroups and
// network namespaces, the CNI plugins' iptables rules, mounts under its directory, and the
// bridge. It is safe to call twice.
func (n *RealNode) Stop() error {
	if n.stopped {
		return nil
	}
	n.stopped = true
	var errs []error
	if n.kubelet != nil {
		errs = append(errs, n.kubelet.Stop(15*time.Second))
	}
	if n.containerd != nil {
		errs = append(errs, n.stopContainers())
		errs = append(errs, n.containerd.Stop(15*time.Second))
	}
	// Shims outlive containerd by design; the node's are those started with its socket.
	errs = append(errs, killMatching("-address "+n.socket))
	errs = append(errs, killCgroups(n.cgroupRoot))
	// The pods were killed under the CRI plugin's feet, so the bridge plugin's DEL never ran:
	// its masquerade rules, tagged with the network's name, are removed here.
	errs = append(errs, removeIPTablesTagged("nat", fmt.Sprintf(`name: \"%s\"`, n.network)))
	errs = append(errs, unmountUnder(n.Dir))
	if _, err := net.InterfaceByName(n.bridge); err == nil {
		if out, err := exec.Command("ip", "link", "delete", n.bridge).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("deleting bridge %s: %w: %s", n.bridge, err, out))
		}
	}
	return errors.Join(errs...)
}

// stopContainers kills every task of the node's containerd and deletes it, so that containerd
// unmounts their root filesystems.
func (n *RealNode) stopContainers() error {
	ctx := context.Background()
	out, err := n.Ctr(ctx, "tasks", "list", "--quiet")
	if err != nil {
		return fmt.Errorf("listing tasks: %w: %s", err, out)
	}
	var errs []error
	for _, id := range strings.Fields(string(out)) {
		_, _ = n.Ctr(ctx, "tasks", "kill", "--signal", "SIGKILL", id)
		// "not found" and a closed ttrpc connection both mean the task's shim is already gone.
		if out, err := n.Ctr(ctx, "tasks", "delete", "--force", id); err != nil && !bytes.Contains(out, []byte("not found")) &&
			!bytes.Contains(out, []byte("ttrpc: closed")) {
			errs = append(errs, fmt.Errorf("deleting task %s: %w: %s", id, err, out))
		}
	}
	return errors.Join(errs...)
}

// removeIPTablesTagged rewrites table without the rules that contain tag and the chains only
// they jump to (the CNI plugins' per-pod chains).
func removeIPTablesTagged(table, tag string) error {
	saved, err := exec.Command("iptables-save", "-t", table).Output()
	if err != nil {
		return fmt.Errorf("iptables-save -t %s: %w", table, err)
	}
	lines := strings.Split(string(saved), "\n")
	doomed := map[string]bool{}
	for _, l := range lines {
		if strings.Contains(l, tag) {
			if i := strings.Index(l, " -j CNI-"); i >= 0 {
				doomed[strings.Fields(l[i+4:])[0]] = true
			}
		}
	}
	var kept []string
	removed := 0
	for _, l := range lines {
		f := strings.Fields(l)
		chainDecl := len(f) > 0 && strings.HasPrefix(f[0], ":") && doomed[f[0][1:]]
		chainRule := len(f) > 1 && f[0] == "-A" && doomed[f[1]]
		if strings.Contains(l, tag) || chainDecl || chainRule {
			removed++
			continue
		}
		kept = append(kept, l)
	}
	if removed == 0 {
		return nil
	}
	cmd := exec.Command("iptables-restore")
	cmd.Stdin = strings.NewReader(strings.Join(kept, "\n"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables-restore of table %s without the node's rules: %w: %s", table, err, out)
	}
	return nil
}

// killMatching kills the processes whose command line contains s.
func killMatching(s string) error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.Contains(strings.ReplaceAll(string(cmdline), "\x00", " "), s) {
			var pid int
			if _, err := fmt.Sscan(e.Name(), &pid); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	return nil
}

// makeCgroups makes the cgroup root in every v1 hierarchy, as the kubelet requires of its
// cgroupRoot; a cpuset cgroup starts with no CPUs or memory nodes, so it gets its parent's.
func makeCgroups(root string) error {
	hierarchies, err := filepath.Glob("/sys/fs/cgroup/*")
	if err != nil {
		return err
	}
	for _, h := range hierarchies {
		if _, err := os.Stat(filepath.Join(h, "cgroup.procs")); err != nil {
			continue // not a hierarchy
		}
		dir := filepath.Join(h, root)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("making cgroup %s: %w", dir, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if data, err := os.ReadFile(filepath.Join(h, f)); err == nil {
				if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
					return fmt.Errorf("setting %s of %s: %w", f, dir, err)
				}
			}
		}
	}
	return nil
}

// killCgroups kills every process in the cgroup tree root of each v1 hierarchy and removes
// the tree (the kubelet makes it for its pods: cgroupRoot).
func killCgroups(root string) error {
	hierarchies, err := filepath.Glob("/sys/fs/cgroup/*")
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hierarchies {
		top := filepath.Join(h, root)
		if _, err := os.Stat(top); err != nil {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(top, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for range 50 {
			alive := false
			for _, d := range dirs {
				data, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
				for _, f := range strings.Fields(string(data)) {
					var pid int
					if _, err := fmt.Sscan(f, &pid); err == nil {
						alive = true
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
			if !alive {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		slices.Reverse(dirs) // children first
		for _, d := range dirs {
			if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		p := strings.ReplaceAll(fields[4], `\040`, " ")
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// realNodeList is a copy of the cluster's real nodes.
func (c *Cluster) realNodeList() []*RealNode {
	c.realNodesMu.Lock()
	defer c.realNodesMu.Unlock()
	return slices.Clone(c.realNodes)
}
