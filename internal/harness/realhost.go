package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"stork.dev/stork/internal/images"
)

// realHost is what a cluster's real nodes share on this machine, which is one network
// namespace for all of them: the machine lock (iptables and port 53 are the machine's),
// kube-proxy (one per network namespace, as on any node: it programs the host's iptables for
// every node's pods), the cluster DNS, and the kube-scheduler image.
type realHost struct {
	lock     *os.File
	dns      *Process
	proxy    *Process
	proxyCfg string
	bins     NodeBinaries
	// images are imported into every node's containerd besides the test's own: the
	// kube-scheduler image the stork scheduler's Deployment names.
	images []string
	// nodes is how many nodes have started: the next node's index (bridge, subnet).
	nodes int
}

// DNSDomain is the cluster domain of clusters with real nodes: CoreDNS answers for it on the
// cluster's HostIP, which the kubelets give pods as their nameserver.
const DNSDomain = "cluster.local"

// realHostLocked returns the cluster's real-node host, setting it up for the first node: the machine
// lock (waiting for another test's cluster to release it), CoreDNS and the scheduler image.
// The caller holds c.realNodesMu.
func (c *Cluster) realHostLocked(ctx context.Context, bins NodeBinaries) (*realHost, error) {
	if c.realHost != nil {
		return c.realHost, nil
	}
	h := &realHost{bins: bins}
	var err error
	if h.lock, err = lockMachine(ctx); err != nil {
		return nil, err
	}
	// Registered before any node's Stop, so it runs after them all (Env.Close runs the last
	// registered first).
	c.env.onClose(h.stop)
	dir, err := c.env.dir(c.Name + "-real-host")
	if err != nil {
		return nil, err
	}
	img, err := schedulerImage(bins, dir)
	if err != nil {
		return nil, fmt.Errorf("building the kube-scheduler image: %w", err)
	}
	h.images = []string{img}
	if h.dns, err = c.startDNS(ctx, bins, dir); err != nil {
		return nil, err
	}
	c.realHost = h
	return h, nil
}

// lockMachine takes the machine-wide lock of real nodes, waiting for another test's cluster
// with real nodes to stop first.
func lockMachine(ctx context.Context) (*os.File, error) {
	f, err := os.OpenFile("/run/lock/stork-real-node.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the real-node lock: %w", err)
	}
	for {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			return f, nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another test's real nodes to stop: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// schedulerImage writes into dir an image of the node binaries' static kube-scheduler, named
// as the upstream image of its version (registry.k8s.io/kube-scheduler:vX.Y.Z), which the stork
// scheduler's Deployment runs: no registry is reachable here to pull that one. Its tag comes
// from the binary, so that a manifest naming another version fails to start its pods.
func schedulerImage(bins NodeBinaries, dir string) (string, error) {
	out, err := exec.Command(bins.Path("kube-scheduler"), "--version").Output()
	if err != nil {
		return "", fmt.Errorf("kube-scheduler --version: %w", err)
	}
	version, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "Kubernetes ")
	if !ok {
		return "", fmt.Errorf("kube-scheduler --version printed %q", out)
	}
	base, err := images.Base("")
	if err != nil {
		return "", err
	}
	img, err := images.Image(base, []images.File{{Path: "/usr/local/bin/kube-scheduler", Mode: 0o755, Source: bins.Path("kube-scheduler")}},
		"kube-scheduler "+version, images.Config{Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}})
	if err != nil {
		return "", err
	}
	written, err := images.Write(dir, []images.Named{{Ref: "registry.k8s.io/kube-scheduler:" + version, Image: img}})
	if err != nil {
		return "", err
	}
	return written[0].Tarball, nil
}

// startDNS runs CoreDNS on the cluster's HostIP, port 53, answering for DNSDomain from the
// API server (Services, their endpoints, pods), as a cluster's kube-dns Service does.
func (c *Cluster) startDNS(ctx context.Context, bins NodeBinaries, dir string) (*Process, error) {
	ready, err := c.env.FreePort()
	if err != nil {
		return nil, err
	}
	health, err := c.env.FreePort()
	if err != nil {
		return nil, err
	}
	// Only the cluster's zone: a name outside it gets SERVFAIL, so that nothing in a test
	// depends on the outside.
	corefile := fmt.Sprintf(`%[1]s:53 in-addr.arpa:53 {
    bind %[2]s
    errors
    health 127.0.0.1:%[3]d
    ready 127.0.0.1:%[4]d
    kubernetes %[1]s in-addr.arpa {
        kubeconfig %[5]s
        pods insecure
    }
    cache 30
}
`, DNSDomain, c.HostIP, health, ready, c.Kubeconfig)
	path := filepath.Join(dir, "Corefile")
	if err := os.WriteFile(path, []byte(corefile), 0o644); err != nil {
		return nil, err
	}
	p, err := c.env.StartProcess(c.Name+"-coredns", bins.Path("coredns"), []string{"-conf", path}, nil)
	if err != nil {
		return nil, err
	}
	// /ready answers 200 once the kubernetes plugin has synced with the API server.
	return p, waitHTTP(ctx, p, fmt.Sprintf("http://127.0.0.1:%d/ready", ready), time.Minute)
}

// startProxy starts kube-proxy for the host's network namespace, named after the first node.
func (h *realHost) startProxy(ctx context.Context, c *Cluster, node *RealNode) error {
	kubeconfig, err := c.UserKubeconfig("system:kube-proxy")
	if err != nil {
		return err
	}
	healthz, err := c.env.FreePort()
	if err != nil {
		return err
	}
	metrics, err := c.env.FreePort()
	if err != nil {
		return err
	}
	// conntrack: zeros leave the machine's settings alone (kube-proxy would otherwise write
	// sysctls a VM may refuse).
	config := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %s}
hostnameOverride: %s
mode: iptables
clusterCIDR: %s
healthzBindAddress: 127.0.0.1:%d
metricsBindAddress: 127.0.0.1:%d
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
`, kubeconfig, node.Name, podCIDR, healthz, metrics)
	h.proxyCfg = filepath.Join(node.Dir, "kube-proxy-config.yaml")
	if err := os.WriteFile(h.proxyCfg, []byte(config), 0o644); err != nil {
		return err
	}
	h.proxy, err = c.env.StartProcess(c.Name+"-kube-proxy", h.bins.Path("kube-proxy"), []string{"--config=" + h.proxyCfg, "--v=2"}, nil)
	if err != nil {
		return err
	}
	return waitHTTP(ctx, h.proxy, fmt.Sprintf("http://127.0.0.1:%d/healthz", healthz), time.Minute)
}

// stop stops kube-proxy and removes its rules, stops CoreDNS and releases the machine lock,
// after the nodes have stopped.
func (h *realHost) stop() error {
	if h.lock == nil {
		return nil
	}
	var errs []error
	for _, p := range []*Process{h.proxy, h.dns} {
		if p != nil {
			errs = append(errs, p.Stop(15*time.Second))
		}
	}
	if h.proxyCfg != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, h.bins.Path("kube-proxy"), "--cleanup", "--config="+h.proxyCfg).CombinedOutput()
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("kube-proxy --cleanup: %w\n%s", err, out))
		}
	}
	errs = append(errs, removeKubeletChains())
	h.lock.Close()
	h.lock = nil
	return errors.Join(errs...)
}

// removeKubeletChains removes the iptables chains every kubelet makes (and no kubelet
// removes): its canaries, kube-proxy's hint and the localnet firewall, with the rules that jump
// to them. The machine lock is held: no other kubelet of the harness uses them.
func removeKubeletChains() error {
	var errs []error
	for _, step := range [][]string{
		{"-t", "filter", "-D", "INPUT", "-j", "KUBE-FIREWALL"},
		{"-t", "filter", "-D", "OUTPUT", "-j", "KUBE-FIREWALL"},
		{"-t", "filter", "-F", "KUBE-FIREWALL"},
		{"-t", "filter", "-X", "KUBE-FIREWALL"},
		{"-t", "filter", "-X", "KUBE-KUBELET-CANARY"},
		{"-t", "nat", "-X", "KUBE-KUBELET-CANARY"},
		{"-t", "mangle", "-X", "KUBE-KUBELET-CANARY"},
		{"-t", "mangle", "-X", "KUBE-IPTABLES-HINT"},
	} {
		out, err := exec.Command("iptables", step...).CombinedOutput()
		// A chain or rule that is not there (the kubelet made none, or an earlier run
		// removed it) is what this wants.
		if err != nil && !strings.Contains(string(out), "No chain") && !strings.Contains(string(out), "does not exist") &&
			!strings.Contains(string(out), "matching rule") {
			errs = append(errs, fmt.Errorf("iptables %s: %w: %s", strings.Join(step, " "), err, out))
		}
	}
	return errors.Join(errs...)
}
