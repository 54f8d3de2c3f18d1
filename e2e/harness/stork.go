package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/deploy"
)

// StorkNamespace is where Stork's controller and agents run, as in deploy/manifests.
const StorkNamespace = "stork-system"

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Commands builds stork, stork-agent and storkctl from this checkout, once per test process,
// and returns the directory that holds them.
func Commands() (string, error) {
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		module := filepath.Join(filepath.Dir(file), "..", "..")
		buildDir, buildErr = os.MkdirTemp("", "stork-e2e-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", buildDir+"/", "./cmd/stork", "./cmd/stork-agent", "./cmd/storkctl")
		cmd.Dir = module
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building Stork's commands: %v\n%s", err, out)
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
	dir := filepath.Join(c.Dir, "users")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("%x.kubeconfig", []byte(name)))
	return path, os.WriteFile(path, data, 0o600)
}

// ServiceAccountKubeconfig is UserKubeconfig for a service account.
func (c *Cluster) ServiceAccountKubeconfig(namespace, name string) (string, error) {
	return c.UserKubeconfig("system:serviceaccount:"+namespace+":"+name, "system:serviceaccounts", "system:serviceaccounts:"+namespace)
}

// ApplyManifests creates the objects of deploy/manifests that keep selects (all when nil).
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

// RBACOnly keeps the namespace and RBAC objects of the manifests: no Deployment or DaemonSet,
// whose pods no kubelet would run here.
func RBACOnly(o *unstructured.Unstructured) bool {
	switch o.GetKind() {
	case "Deployment", "DaemonSet":
		return false
	}
	return true
}

// NodeRoot is the storage root directory of a simulated node's agent.
func (c *Cluster) NodeRoot(node string) string { return filepath.Join(c.Dir, "nodes", node) }

// NodesDir holds every node's storage root: the local driver's root on the controller side.
func (c *Cluster) NodesDir() string { return filepath.Join(c.Dir, "nodes") }

// StartStork runs the stork controller as the stork service account of deploy/manifests
// (apply them first), with the local driver owning the nodes' storage roots.
func (c *Cluster) StartStork(ctx context.Context, extraArgs ...string) (*Process, error) {
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
		"--drivers=local", "--driver-config=local.roots=" + c.NodesDir(), "--namespace=" + StorkNamespace,
	}, extraArgs...)
	return c.startComponent(c.Name+"-stork", filepath.Join(bins, "stork"), args, []string{"KUBECONFIG=" + kc})
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
	args := append([]string{"run", "--node=" + node, "--root=" + root, "--namespace=" + StorkNamespace,
		"--report-interval=1s", "--lease-duration=5s"}, extraArgs...)
	p, err := c.startComponent(c.Name+"-agent-"+node, filepath.Join(bins, "stork-agent"), args, []string{"KUBECONFIG=" + kc})
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
