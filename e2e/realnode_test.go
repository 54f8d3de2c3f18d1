package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stork.dev/stork/internal/harness"
)

// EnvImages names the directory of `make images` (stork.tar, stork-pause.tar).
const envImages = "STORK_IMAGES"

// requireImages returns the image tarballs of `make images`.
func requireImages(t *testing.T) []string {
	t.Helper()
	dir := os.Getenv(envImages)
	if dir == "" {
		t.Fatalf("%s is not set: run the tests with `make test` (which runs `make images`), or export %s=bin/images after `make images`", envImages, envImages)
	}
	var out []string
	for _, name := range []string{"stork.tar", "stork-pause.tar"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v (run `make images`)", p, err)
		}
		out = append(out, p)
	}
	return out
}

// startRealCluster starts a control plane for real nodes and one real node with Stork's images.
func startRealCluster(ctx context.Context, t *testing.T, env *harness.Env) (*harness.Cluster, *harness.RealNode) {
	t.Helper()
	nodeBins := harness.RequireNodeBinaries(t)
	images := requireImages(t)
	c, err := env.StartCluster(ctx, harness.ClusterOptions{Name: "real", RealNodes: true})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n, err := c.StartRealNode(ctx, nodeBins, harness.RealNodeOptions{Name: "real-1", Images: images,
		Labels: map[string]string{"topology.kubernetes.io/region": "region-1", "topology.kubernetes.io/zone": "zone-a"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("real node %s Ready in %s", n.Name, time.Since(start).Round(time.Millisecond))
	return c, n
}

// waitPodPhase waits for a pod to reach phase and returns it.
func waitPodPhase(ctx context.Context, t *testing.T, c *harness.Cluster, ns, name string, phase corev1.PodPhase, timeout time.Duration) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{}
	err := c.WaitFor(ctx, timeout, "pod "+ns+"/"+name+" "+string(phase), func(ctx context.Context) (bool, error) {
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pod); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		if pod.Status.Phase == corev1.PodFailed && phase != corev1.PodFailed {
			return false, fmt.Errorf("pod %s/%s failed: %s", ns, name, podSummary(pod))
		}
		return pod.Status.Phase == phase, nil
	})
	if err != nil {
		t.Fatalf("%v (%s)", err, podSummary(pod))
	}
	return pod
}

func podSummary(p *corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase %s", p.Status.Phase)
	for _, s := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		switch {
		case s.State.Waiting != nil:
			fmt.Fprintf(&b, "; %s waiting: %s %s", s.Name, s.State.Waiting.Reason, s.State.Waiting.Message)
		case s.State.Terminated != nil:
			fmt.Fprintf(&b, "; %s terminated: %s exit %d %s", s.Name, s.State.Terminated.Reason, s.State.Terminated.ExitCode, s.State.Terminated.Message)
		case s.State.Running != nil:
			fmt.Fprintf(&b, "; %s running (ready %v, restarts %d)", s.Name, s.Ready, s.RestartCount)
		}
	}
	for _, cond := range p.Status.Conditions {
		if cond.Status != corev1.ConditionTrue && cond.Message != "" {
			fmt.Fprintf(&b, "; %s: %s", cond.Type, cond.Message)
		}
	}
	return b.String()
}

// TestRealNode runs Stork on a real kubelet: pods from the images of `make images` in
// Debian's containerd and runc, networked by the CNI bridge, reaching the API server through
// kube-proxy.
func TestRealNode(t *testing.T) {
	env := harness.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	c, n := startRealCluster(ctx, t, env)
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a pod runs from the stork image", func(t *testing.T) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "version"},
			Spec: corev1.PodSpec{NodeName: n.Name, RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{
				Name: "storkctl", Image: "stork:dev", ImagePullPolicy: corev1.PullNever, Command: []string{"/storkctl", "version"}}}}}
		start := time.Now()
		mustCreate(t, c, pod)
		waitPodPhase(ctx, t, c, "default", "version", corev1.PodSucceeded, 2*time.Minute)
		t.Logf("pod Succeeded %s after creation", time.Since(start).Round(time.Millisecond))
		logs, err := cs.CoreV1().Pods("default").GetLogs("version", &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			t.Fatalf("reading the pod's logs through the API server: %v", err)
		}
		if got := strings.TrimSpace(string(logs)); got != "dev" {
			t.Errorf("storkctl version printed %q, want dev", got)
		}
	})
}
