package harness

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// RunPods plays the kubelet's part for pods bound to the cluster's simulated nodes, without
// running anything: a newly bound pod is reported Running and Ready (so that controllers and
// PodDisruptionBudgets count it healthy), and a pod being deleted is removed once its
// deletion starts, as a kubelet does after its containers stop. Pods on a node whose heartbeat
// was stopped are left alone, like those of a dead kubelet. It runs until the cluster stops.
func (c *Cluster) RunPods() {
	ctx, cancel := context.WithCancel(context.Background())
	c.heartbeatsMu.Lock()
	c.heartbeats["\x00kubelet"] = cancel
	c.heartbeatsMu.Unlock()
	go c.everyPod(ctx, 300*time.Millisecond, c.kubelet)
}

// everyPod calls step for each pod matching opts every interval, until ctx ends: the loop of
// the harness's kubelet stand-ins.
func (c *Cluster) everyPod(ctx context.Context, interval time.Duration, step func(context.Context, *corev1.Pod), opts ...client.ListOption) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var pods corev1.PodList
		if err := c.Client.List(ctx, &pods, opts...); err != nil {
			continue
		}
		for i := range pods.Items {
			step(ctx, &pods.Items[i])
		}
	}
}

func (c *Cluster) kubelet(ctx context.Context, p *corev1.Pod) {
	if p.Spec.NodeName == "" {
		return
	}
	c.heartbeatsMu.Lock()
	_, alive := c.heartbeats[p.Spec.NodeName]
	c.heartbeatsMu.Unlock()
	if !alive {
		return
	}
	if p.DeletionTimestamp != nil {
		_ = c.Client.Delete(ctx, p, client.GracePeriodSeconds(0), client.Preconditions{UID: &p.UID})
		return
	}
	if p.Status.Phase == corev1.PodRunning {
		return
	}
	now := metav1.Now()
	p.Status.Phase = corev1.PodRunning
	p.Status.StartTime = &now
	p.Status.Conditions = nil
	for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	p.Status.ContainerStatuses = nil
	for _, ct := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: ct.Name, Image: ct.Image, Ready: true,
			Started: ptr.To(true), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}})
	}
	_ = c.Client.Status().Update(ctx, p)
}
