package harness

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	groupv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumegroupsnapshot/v1"
	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/deploy"
)

// Scheme knows the Kubernetes built-in types, CRDs and Stork's types.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	utilruntime.Must(storkv1.AddToScheme(s))
	utilruntime.Must(snapv1.AddToScheme(s))
	utilruntime.Must(groupv1.AddToScheme(s))
	return s
}

// ClusterOptions describes a cluster to start.
type ClusterOptions struct {
	// Name of the cluster, unique in the Env; also its directory under the root.
	Name string
	// Nodes to register, each kept Ready by a simulated kubelet heartbeat.
	Nodes []NodeSpec
	// ControlPlaneOnly starts etcd and kube-apiserver only: no scheduler, no controller
	// manager, no nodes. Enough for API validation tests, and faster.
	ControlPlaneOnly bool
	// SchedulerConfig, when set, is the KubeSchedulerConfiguration to run kube-scheduler
	// with; the harness fills in clientConnection.kubeconfig and disables leader election.
	// Placement tests use it to add Stork's extender.
	SchedulerConfig string
	// SkipCRDs leaves Stork's CRDs out.
	SkipCRDs bool
	// RealNodes prepares the control plane for real kubelets (StartRealNode): kube-apiserver
	// listens on this machine's address rather than loopback, with a certificate that also
	// names the kubernetes Service (what pods connect to), and authorizes kubelets with the
	// Node authorizer as real clusters do.
	RealNodes bool
	// NodeGracePeriod is how long kube-controller-manager waits for a node's heartbeat
	// before marking it NotReady (--node-monitor-grace-period); zero keeps its default, 50s.
	NodeGracePeriod time.Duration
}

// Cluster is a running control plane.
type Cluster struct {
	Name string
	// Dir holds the cluster's files: certificates, etcd data, kubeconfig, configs.
	Dir string
	// Config is an admin (system:masters) client configuration.
	Config *rest.Config
	// Client is an admin client that knows Stork's types.
	Client client.Client
	// Kubeconfig is the path of an admin kubeconfig file, for kubectl and storkctl.
	Kubeconfig string
	// HostIP is the address kube-apiserver listens on with RealNodes (nil otherwise).
	HostIP net.IP
	// ca signs the certificates of kube-apiserver and kubelets with RealNodes.
	ca *authority

	env       *Env
	testEnv   *envtest.Environment
	Scheduler *Process
	KCM       *Process
	// components are processes that talk to this cluster (Stork's controller and agents),
	// stopped before the control plane: their watches would hold kube-apiserver's shutdown.
	componentsMu sync.Mutex
	components   []*Process

	// logFiles are the envtest processes' logs, closed by Stop.
	logFiles []*os.File

	// realNodes are the nodes StartRealNode started, on which the kubelet registers CSI drivers.
	realNodesMu sync.Mutex
	realNodes   []*RealNode
	// realHost is what the real nodes share on the machine (realhost.go).
	realHost *realHost

	heartbeatsMu sync.Mutex
	heartbeats   map[string]context.CancelFunc
	stopOnce     sync.Once
	stopErr      error
}

// kubernetesServiceIP is the ClusterIP of the default/kubernetes Service: the first address of
// envtest's --service-cluster-ip-range 10.0.0.0/24.
var kubernetesServiceIP = net.IPv4(10, 0, 0, 1)

// StartCluster starts etcd and kube-apiserver through envtest, installs Stork's CRDs, and
// (unless ControlPlaneOnly) starts kube-controller-manager and kube-scheduler as processes and
// registers the nodes. It returns once the cluster can schedule pods.
func (e *Env) StartCluster(ctx context.Context, opts ClusterOptions) (*Cluster, error) {
	if opts.Name == "" {
		return nil, fmt.Errorf("starting a cluster: ClusterOptions.Name is empty")
	}
	dir, err := e.dir(opts.Name)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Name: opts.Name, Dir: dir, env: e, heartbeats: map[string]context.CancelFunc{}}
	e.onClose(c.Stop)
	if err := c.start(ctx, opts); err != nil {
		return nil, fmt.Errorf("starting cluster %s: %w (logs in %s)", opts.Name, err, filepath.Join(e.Root, "logs"))
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context, opts ClusterOptions) error {
	var crds []*apiextensionsv1.CustomResourceDefinition
	if !opts.SkipCRDs {
		var err error
		if crds, err = deploy.CRDs(); err != nil {
			return err
		}
	}
	certDir := filepath.Join(c.Dir, "apiserver")
	etcdDir := filepath.Join(c.Dir, "etcd")
	for _, d := range []string{certDir, etcdDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	logs := func(name string) (*os.File, error) {
		f, err := os.Create(filepath.Join(c.env.Root, "logs", c.Name+"-"+name+".log"))
		if err == nil {
			c.logFiles = append(c.logFiles, f)
		}
		return f, err
	}
	if err := os.MkdirAll(filepath.Join(c.env.Root, "logs"), 0o755); err != nil {
		return err
	}
	apiLog, err := logs("kube-apiserver")
	if err != nil {
		return err
	}
	etcdLog, err := logs("etcd")
	if err != nil {
		return err
	}
	api := &envtest.APIServer{CertDir: certDir, Out: apiLog, Err: apiLog}
	// envtest turns the ServiceAccount admission plugin off because it runs no controller
	// manager; this harness runs one, so the API server behaves as in a real cluster.
	api.Configure().Disable("disable-admission-plugins")
	if opts.RealNodes {
		ip, err := HostAddress()
		if err != nil {
			return err
		}
		if c.ca, err = writeServingPKI(certDir, []net.IP{ip, kubernetesServiceIP}); err != nil {
			return fmt.Errorf("writing kube-apiserver's certificates: %w", err)
		}
		port, err := c.env.FreePort()
		if err != nil {
			return err
		}
		// envtest picks a loopback address unless given both the address and the port.
		api.SecureServing.Address, api.SecureServing.Port = ip.String(), fmt.Sprint(port)
		api.SecureServing.CA = c.ca.PEM
		// kube-apiserver calls kubelets (logs, exec, port-forward) with a client certificate
		// they check, and checks theirs against the same authority (StartRealNode issues them).
		api.Configure().Set("advertise-address", ip.String()).Set("authorization-mode", "Node,RBAC").
			Set("kubelet-preferred-address-types", "InternalIP"). // no DNS knows the nodes' names
			Set("kubelet-client-certificate", filepath.Join(certDir, "kubelet-client.crt")).
			Set("kubelet-client-key", filepath.Join(certDir, "kubelet-client.key")).
			Set("kubelet-certificate-authority", filepath.Join(certDir, "harness-ca.crt"))
		c.HostIP = ip
	}
	c.testEnv = &envtest.Environment{
		BinaryAssetsDirectory: string(c.env.Bins),
		CRDs:                  crds,
		ErrorIfCRDPathMissing: true,
		Scheme:                Scheme(),
		ControlPlane: envtest.ControlPlane{
			Etcd:      &envtest.Etcd{DataDir: etcdDir, Out: etcdLog, Err: etcdLog},
			APIServer: api,
		},
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	cfg, err := c.testEnv.Start()
	if err != nil {
		return fmt.Errorf("starting etcd and kube-apiserver: %w", err)
	}
	c.Config = cfg
	if c.Client, err = client.New(cfg, client.Options{Scheme: Scheme()}); err != nil {
		return fmt.Errorf("making a client: %w", err)
	}
	admin, err := c.testEnv.ControlPlane.AddUser(envtest.User{Name: "stork-harness-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding the admin user: %w", err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return fmt.Errorf("writing the admin kubeconfig: %w", err)
	}
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kubeconfig, 0o600); err != nil {
		return err
	}
	if opts.ControlPlaneOnly {
		return nil
	}
	caFile := filepath.Join(c.Dir, "ca.crt")
	if err := os.WriteFile(caFile, api.SecureServing.CA, 0o644); err != nil {
		return err
	}
	if err := c.startControllerManager(certDir, caFile, opts.NodeGracePeriod); err != nil {
		return err
	}
	if err := c.startScheduler(opts.SchedulerConfig); err != nil {
		return err
	}
	for _, n := range opts.Nodes {
		if err := c.AddNode(ctx, n); err != nil {
			return err
		}
	}
	// The controller manager is working once it has made the default ServiceAccount, which
	// the ServiceAccount admission plugin needs before any pod can be created.
	return c.WaitFor(ctx, 2*time.Minute, "the default ServiceAccount", func(ctx context.Context) (bool, error) {
		err := c.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "default"}, &corev1.ServiceAccount{})
		return err == nil, client.IgnoreNotFound(err)
	})
}

func (c *Cluster) startControllerManager(certDir, caFile string, grace time.Duration) error {
	port, err := c.env.FreePort()
	if err != nil {
		return err
	}
	kcmDir := filepath.Join(c.Dir, "kube-controller-manager")
	if err := os.MkdirAll(kcmDir, 0o700); err != nil {
		return err
	}
	args := []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--authentication-kubeconfig=" + c.Kubeconfig,
		"--authorization-kubeconfig=" + c.Kubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=" + fmt.Sprint(port),
		"--cert-dir=" + kcmDir,
		"--service-account-private-key-file=" + filepath.Join(certDir, "sa-signer.key"),
		"--root-ca-file=" + caFile,
		"--use-service-account-credentials=false",
		"--cluster-name=" + c.Name,
	}
	if grace > 0 {
		args = append(args, "--node-monitor-grace-period="+grace.String())
	}
	c.KCM, err = c.env.StartProcess(c.Name+"-kube-controller-manager", c.env.Bins.Path("kube-controller-manager"), args, nil)
	if err != nil {
		return err
	}
	return waitHealthy(c.KCM, port, 2*time.Minute)
}

func (c *Cluster) startScheduler(base string) (err error) {
	c.Scheduler, err = c.schedulerProcess("kube-scheduler", base, c.Kubeconfig)
	return err
}

// StartScheduler runs another kube-scheduler named name (e.g. the stork scheduler of
// deploy/base/manifests) with the given KubeSchedulerConfiguration, next to the cluster's own, as
// the identity of kubeconfig (the admin's when empty).
func (c *Cluster) StartScheduler(name, config, kubeconfig string) (*Process, error) {
	if kubeconfig == "" {
		kubeconfig = c.Kubeconfig
	}
	p, err := c.schedulerProcess(name, config, kubeconfig)
	if p != nil {
		c.componentsMu.Lock()
		c.components = append(c.components, p)
		c.componentsMu.Unlock()
	}
	return p, err
}

func (c *Cluster) schedulerProcess(name, base, kubeconfig string) (*Process, error) {
	port, err := c.env.FreePort()
	if err != nil {
		return nil, err
	}
	schedDir := filepath.Join(c.Dir, name)
	if err := os.MkdirAll(schedDir, 0o700); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(schedDir, "config.yaml")
	cfg, err := schedulerConfig(base, kubeconfig)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return nil, err
	}
	p, err := c.env.StartProcess(c.Name+"-"+name, c.env.Bins.Path("kube-scheduler"), []string{
		"--config=" + cfgPath,
		"--authentication-kubeconfig=" + c.Kubeconfig,
		"--authorization-kubeconfig=" + c.Kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=" + fmt.Sprint(port),
		"--cert-dir=" + schedDir,
	}, nil)
	if err != nil {
		return nil, err
	}
	return p, waitHealthy(p, port, 2*time.Minute)
}

// waitHealthy polls https://127.0.0.1:port/healthz of a component serving a self-signed
// certificate, failing early if the process exits.
func waitHealthy(p *Process, port int, timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // loopback health probe of a self-signed test component
	}}
	url := fmt.Sprintf("https://127.0.0.1:%d/healthz", port)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited while starting: %v\n%s", p.Name, p.ExitError(), p.LogTail(30))
		default:
		}
		if resp, err := hc.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s not healthy at %s after %s:\n%s", p.Name, url, timeout, p.LogTail(30))
}

// WaitFor polls cond every 200ms until it returns true, an error, or timeout passes; the
// error names what was awaited.
func (c *Cluster) WaitFor(ctx context.Context, timeout time.Duration, what string, cond func(context.Context) (bool, error)) error {
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, cond)
	if err != nil {
		return fmt.Errorf("cluster %s: waiting for %s: %w", c.Name, what, err)
	}
	return nil
}

// Stop stops the cluster's heartbeats, scheduler and controller manager, then etcd and
// kube-apiserver. Env.Close calls it; calling it again does nothing.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		c.heartbeatsMu.Lock()
		for _, cancel := range c.heartbeats {
			cancel()
		}
		c.heartbeatsMu.Unlock()
		c.componentsMu.Lock()
		procs := append(c.components, c.Scheduler, c.KCM)
		c.componentsMu.Unlock()
		for _, p := range procs {
			if p != nil {
				_ = p.Stop(15 * time.Second)
			}
		}
		if c.testEnv != nil {
			if err := c.testEnv.Stop(); err != nil {
				c.stopErr = fmt.Errorf("stopping cluster %s: %w", c.Name, err)
			}
		}
		for _, f := range c.logFiles {
			f.Close()
		}
	})
	return c.stopErr
}

// RestartAPIServer kills kube-apiserver (SIGKILL, as a crash would), waits down, and runs it
// again with the same command line: the same port, certificates, service account keys and
// etcd, so every client's credentials still work. It returns once the API answers again.
func (c *Cluster) RestartAPIServer(ctx context.Context, down time.Duration) error {
	certDir := filepath.Join(c.Dir, "apiserver")
	var argv []string
	pid := 0
	for _, line := range ProcessesUnder(certDir) {
		p, _, _ := strings.Cut(line, ": ")
		raw, err := os.ReadFile("/proc/" + p + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if filepath.Base(args[0]) == "kube-apiserver" {
			argv = args
			if _, err := fmt.Sscan(p, &pid); err != nil {
				return err
			}
		}
	}
	if pid == 0 {
		return fmt.Errorf("cluster %s: no kube-apiserver process with --cert-dir=%s", c.Name, certDir)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("killing kube-apiserver (pid %d): %w", pid, err)
	}
	// Its port is free once it is gone (envtest reaps it).
	err := c.WaitFor(ctx, 10*time.Second, "kube-apiserver to exit", func(context.Context) (bool, error) {
		_, err := os.Stat(fmt.Sprintf("/proc/%d/cmdline", pid))
		return os.IsNotExist(err), nil
	})
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(down):
	}
	p, err := c.startComponent(c.Name+"-kube-apiserver-restarted", argv[0], argv[1:], nil)
	if err != nil {
		return err
	}
	return c.WaitFor(ctx, 2*time.Minute, "kube-apiserver to answer after its restart", func(ctx context.Context) (bool, error) {
		select {
		case <-p.Exited():
			return false, fmt.Errorf("kube-apiserver exited after its restart: %v\n%s", p.ExitError(), p.LogTail(20))
		default:
		}
		return c.Client.Get(ctx, client.ObjectKey{Name: "default"}, &corev1.Namespace{}) == nil, nil
	})
}
