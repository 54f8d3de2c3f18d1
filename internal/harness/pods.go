package harness

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// SchedulePod creates the pod and returns the node kube-scheduler binds it to. Creation is
// retried for a minute because the ServiceAccount admission plugin refuses pods until
// kube-controller-manager has made the namespace's default ServiceAccount, as in a real cluster.
func (c *Cluster) SchedulePod(ctx context.Context, pod *corev1.Pod) (string, error) {
	what := fmt.Sprintf("the default ServiceAccount of %s to admit pod %s", pod.Namespace, pod.Name)
	if err := c.WaitFor(ctx, time.Minute, what, func(ctx context.Context) (bool, error) {
		return c.Client.Create(ctx, pod) == nil, nil
	}); err != nil {
		return "", err
	}
	err := c.WaitFor(ctx, time.Minute, "pod "+pod.Name+" to be bound", func(ctx context.Context) (bool, error) {
		err := c.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)
		return err == nil && pod.Spec.NodeName != "", err
	})
	return pod.Spec.NodeName, err
}
