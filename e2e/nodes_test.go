package e2e

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stork.dev/stork/internal/harness"
)

// TestNodeWithoutHeartbeatGoesNotReady shows that the simulated nodes behave like real ones to
// kube-controller-manager: a node whose heartbeat stops is marked not ready and tainted
// unreachable, while its neighbour, still heartbeating, stays Ready. Placement's failure tests
// build on this.
func TestNodeWithoutHeartbeatGoesNotReady(t *testing.T) {
	t.Parallel()
	env := harness.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := env.StartCluster(ctx, harness.ClusterOptions{
		Name:            "lifecycle",
		Nodes:           harness.Nodes("n", "r", []string{"z"}, 2),
		NodeGracePeriod: 15 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	dead, alive := "n-z-1", "n-z-2"
	c.StopHeartbeat(dead)
	stopped := time.Now()

	err = c.WaitFor(ctx, 2*time.Minute, "node "+dead+" to be tainted unreachable", func(ctx context.Context) (bool, error) {
		n := &corev1.Node{}
		if err := c.Client.Get(ctx, client.ObjectKey{Name: dead}, n); err != nil {
			return false, err
		}
		for _, taint := range n.Spec.Taints {
			if taint.Key == corev1.TaintNodeUnreachable {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The last heartbeat may have come up to 10s before StopHeartbeat, so the taint can come
	// as early as 15s-10s after it; earlier means the heartbeat was not what kept it Ready.
	if waited := time.Since(stopped); waited < 5*time.Second {
		t.Errorf("node tainted %s after its heartbeat stopped, before the grace period could pass", waited)
	}
	n := &corev1.Node{}
	if err := c.Client.Get(ctx, client.ObjectKey{Name: alive}, n); err != nil {
		t.Fatal(err)
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady && cond.Status != corev1.ConditionTrue {
			t.Errorf("node %s, still heartbeating, is %s: %s", alive, cond.Status, cond.Message)
		}
	}
	if len(n.Spec.Taints) > 0 {
		t.Errorf("node %s, still heartbeating, has taints %v", alive, n.Spec.Taints)
	}
}
