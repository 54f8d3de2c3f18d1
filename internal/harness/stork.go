package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/deploy"
	"stork.dev/stork/drivers/local/agent"
	"stork.dev/stork/internal/version"
)

// StorkNamespace is where Stork's controller and agents run, as in deploy/base/manifests.
const StorkNamespace = "stork-system"

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Commands builds stork, stork-agent and storkctl from this checkout, once per test process,
// and returns the directory that holds them: one per checkout under the user's cache, so that
// nothing piles up in /tmp. Each process builds into a directory of its own and renames the
// binaries into place, so test processes running at once do not trip over each other.
func Commands() (string, error) {
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		module := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
		cache, err := os.UserCacheDir()
		if err != nil {
			buildErr = err
			return
		}
		sum := sha256.Sum256([]byte(module))
		buildDir = filepath.Join(cache, "stork", "e2e-bin", hex.EncodeToString(sum[:6]))
		if buildErr = os.MkdirAll(buildDir, 0o755); buildErr != nil {
			return
		}
		tmp, err := os.MkdirTemp(buildDir, ".build-")
		if err != nil {
			buildErr = err
			return
		}
		defer os.RemoveAll(tmp)
		cmd := exec.Command("go", "build", "-tags="+version.BuildTags, "-o", tmp+"/", "./cmd/stork", "./cmd/stork-agent", "./cmd/storkctl")
		cmd.Dir = module
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building Stork's commands: %v\n%s", err, out)
			return
		}
		for _, b := range []string{"stork", "stork-agent", "storkctl"} {
			if err := os.Rename(filepath.Join(tmp, b), filepath.Join(buildDir, b)); err != nil {
				buildErr = err
				return
			}
		}
	})
	return buildDir, buildErr
}

// UserKubeconfig writes a kubeconfig for a user the API server authenticates by client
// certificate, and returns its path. A service account's identity is
// system:serviceaccount:NS:NAME with groups system:serviceaccounts and
// system:serviceaccounts:NS, which is what RBAC bindings to a ServiceAccount match.
func (c *Cluster) UserKubeconfig(name string, groups ...string) (string, error) {
	u, err := c.testEnv.ControlPlane.AddUser(envtest.User{Name: name, Groups: append(groups, "system:authenticated")}, nil)
	if err != nil {
		return "", fmt.Errorf("adding user %s: %w", name, err)
	}
	data, err := u.KubeConfig()
	if err != nil {
		return "", err
	}
	return c.writeKubeconfig(fmt.Sprintf("%x", []byte(name)), data)
}

// writeKubeconfig writes a kubeconfig under the cluster's users directory and returns its path.
func (c *Cluster) writeKubeconfig(name string, data []byte) (string, error) {
	dir := filepath.Join(c.Dir, "users")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name+".kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}

// PodTokenKubeconfig writes a kubeconfig with a token of the pod's service account bound to the
// pod (TokenRequest with the pod as bound object), as the kubelet mounts into a pod: the API
// server then names the pod in the user's extra (authentication.kubernetes.io/pod-name, pod-uid),
// which admission policies check.
func (c *Cluster) PodTokenKubeconfig(ctx context.Context, pod *corev1.Pod) (string, error) {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return "", err
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	tr, err := cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("making a token of service account %s/%s bound to pod %s: %w", pod.Namespace, sa, pod.Name, err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: c.Config.Host, CertificateAuthorityData: c.Config.CAData}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	cfg.CurrentContext = "c"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return "", err
	}
	return c.writeKubeconfig("pod-"+pod.Namespace+"-"+pod.Name, data)
}

// ClientFromKubeconfig is a client (of Scheme's types) with the identity of a kubeconfig file.
func ClientFromKubeconfig(path string) (client.Client, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig %s: %w", path, err)
	}
	return client.New(cfg, client.Options{Scheme: Scheme()})
}

// ServiceAccountKubeconfig is UserKubeconfig for a service account.
func (c *Cluster) ServiceAccountKubeconfig(namespace, name string) (string, error) {
	return c.UserKubeconfig("system:serviceaccount:"+namespace+":"+name, "system:serviceaccounts", "system:serviceaccounts:"+namespace)
}

// ApplyManifests creates the objects of deploy/base/manifests that keep selects (all when nil).
func (c *Cluster) ApplyManifests(ctx context.Context, keep func(*unstructured.Unstructured) bool) error {
	objs, err := deploy.Manifests()
	if err != nil {
		return err
	}
	for _, o := range objs {
		if keep != nil && !keep(o) {
			continue
		}
		if err := c.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return nil
}

// RBACOnly keeps the namespace, RBAC and configuration objects of the manifests: no Deployment
// or DaemonSet, whose pods no kubelet would run here, and no webhook configuration, which
// names a Service no process here backs (placement tests install it pointed at their Stork).
func RBACOnly(o *unstructured.Unstructured) bool {
	switch o.GetKind() {
	case "Deployment", "DaemonSet", "MutatingWebhookConfiguration":
		return false
	}
	return true
}

// NodeRoot is the storage root directory of a simulated node's agent.
func (c *Cluster) NodeRoot(node string) string { return filepath.Join(c.Dir, "nodes", node) }

// NodesDir holds every node's storage root: the local driver's root on the controller side.
func (c *Cluster) NodesDir() string { return filepath.Join(c.Dir, "nodes") }

// StartStork runs the stork controller as the stork service account of deploy/base/manifests
// (apply them first), with the local driver owning the nodes' storage roots. The extender, the
// webhook and the dashboard are off (their fixed ports would clash between clusters); tests turn
// them on with extraArgs, which come last and so win.
func (c *Cluster) StartStork(ctx context.Context, extraArgs ...string) (*Process, error) {
	return c.StartStorkEnv(ctx, nil, extraArgs...)
}

// StartStorkEnv is StartStork with env added to the process's environment.
func (c *Cluster) StartStorkEnv(ctx context.Context, env []string, extraArgs ...string) (*Process, error) {
	bins, err := Commands()
	if err != nil {
		return nil, err
	}
	kc, err := c.ServiceAccountKubeconfig(StorkNamespace, "stork")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.NodesDir(), 0o755); err != nil {
		return nil, err
	}
	args := append([]string{
		"--leader-elect=false", "--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--drivers=local", "--driver-config=local.roots=" + c.NodesDir(), "--namespace=" + StorkNamespace, "--cluster=" + c.Name,
		"--extender-bind-address=0", "--webhook-port=0", "--dashboard-bind-address=0",
	}, extraArgs...)
	return c.startComponent(c.Name+"-stork", filepath.Join(bins, "stork"), args, append([]string{"KUBECONFIG=" + kc}, env...))
}

func (c *Cluster) startComponent(name, bin string, args, env []string) (*Process, error) {
	p, err := c.env.StartProcess(name, bin, args, env)
	if err == nil {
		c.componentsMu.Lock()
		c.components = append(c.components, p)
		c.componentsMu.Unlock()
	}
	return p, err
}

// StartAgent runs stork-agent for a node as the stork-agent service account, with the node's
// storage root (made if missing), and waits for its StorageNode. Heartbeats are fast (1s
// reports, 5s leases) so that tests see a dead agent quickly.
func (c *Cluster) StartAgent(ctx context.Context, node string, extraArgs ...string) (*Process, error) {
	return c.StartAgentEnv(ctx, node, nil, extraArgs...)
}

// StartAgentEnv is StartAgent with env added to the process's environment.
func (c *Cluster) StartAgentEnv(ctx context.Context, node string, env []string, extraArgs ...string) (*Process, error) {
	bins, err := Commands()
	if err != nil {
		return nil, err
	}
	kc, err := c.ServiceAccountKubeconfig(StorkNamespace, "stork-agent")
	if err != nil {
		return nil, err
	}
	root := c.NodeRoot(node)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	if err := roomFor(root); err != nil {
		return nil, err
	}
	args := append([]string{"run", "--node=" + node, "--root=" + root, "--namespace=" + StorkNamespace,
		"--report-interval=1s", "--lease-duration=5s"}, extraArgs...)
	p, err := c.startComponent(c.Name+"-agent-"+node, filepath.Join(bins, "stork-agent"), args, append([]string{"KUBECONFIG=" + kc}, env...))
	if err != nil {
		return nil, err
	}
	return p, c.WaitFor(ctx, time.Minute, "the StorageNode of "+node, func(ctx context.Context) (bool, error) {
		select {
		case <-p.Exited():
			return false, fmt.Errorf("stork-agent for %s exited: %v\n%s", node, p.ExitError(), p.LogTail(20))
		default:
		}
		sn := &storkv1.StorageNode{}
		err := c.Client.Get(ctx, client.ObjectKey{Name: "local." + node}, sn)
		return err == nil && sn.Status.Health != "", client.IgnoreNotFound(err)
	})
}

// minFreePercent is the least free space a node's storage root may start with. stork-agent
// reports its node NearlyFull at agent.DefaultNearlyFullPercent free or less, and a test waiting
// for healthy storage then times out with no word of why (restores stay Pending,
// NoHealthyStorageNode): a CI run failed nine tests that way on a disk filled by benchmark data.
// 2 points of margin for what the tests write.
const minFreePercent = agent.DefaultNearlyFullPercent + 2

// roomFor fails, saying what to do, when root's file system has too little free space for a
// healthy node.
func roomFor(root string) error {
	_, _, pct, err := agent.FreeSpace(root)
	if err != nil {
		return fmt.Errorf("checking the free space of %s: %w", root, err)
	}
	return enoughFree(root, pct)
}

func enoughFree(root string, pct float64) error {
	if pct < minFreePercent {
		return fmt.Errorf("the file system of %s has %.1f%% free, under %d%%: stork-agent would report the node NearlyFull "+
			"and tests waiting for healthy storage would time out; free space there (make bench-backup leaves its datasets "+
			"in /tmp/stork-bench-backup) and run again", root, pct, minFreePercent)
	}
	return nil
}

// LocalVolume makes a volume directory under the node's storage root, a local PersistentVolume
// for it (storage class "local", pre-bound) and a claim bound to it, as an administrator or
// local-path-provisioner would, and returns the directory.
func (c *Cluster) LocalVolume(ctx context.Context, ns, claim, node string, labels map[string]string) (string, error) {
	dir := filepath.Join(c.NodeRoot(node), "app-volumes", ns+"-"+claim)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, c.Volume(ctx, ns, claim, node, dir, labels)
}

// Volume makes a local PersistentVolume of 1Gi at dir on node and a claim bound to it.
func (c *Cluster) Volume(ctx context.Context, ns, claim, node, dir string, labels map[string]string) error {
	pvName := "pv-" + ns + "-" + claim
	size := resource.MustParse("1Gi")
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: pvName},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			StorageClassName:              "local",
			PersistentVolumeSource:        corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: dir}},
			ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: ns, Name: claim},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{node}}}}}}},
		}}
	if err := c.Client.Create(ctx, pv); err != nil {
		return fmt.Errorf("creating PersistentVolume %s: %w", pvName, err)
	}
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: claim, Labels: labels},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
			StorageClassName: ptr.To("local"), VolumeName: pvName}}
	if err := c.Client.Create(ctx, pvc); err != nil {
		return fmt.Errorf("creating PersistentVolumeClaim %s/%s: %w", ns, claim, err)
	}
	return c.WaitFor(ctx, time.Minute, "claim "+ns+"/"+claim+" to bind", func(ctx context.Context) (bool, error) {
		err := c.Client.Get(ctx, client.ObjectKeyFromObject(pvc), pvc)
		return err == nil && pvc.Status.Phase == corev1.ClaimBound, err
	})
}

// Components lists the processes started for the cluster (Stork's controller and agents among
// them), in start order.
func (c *Cluster) Components() []*Process {
	c.componentsMu.Lock()
	defer c.componentsMu.Unlock()
	return append([]*Process(nil), c.components...)
}
