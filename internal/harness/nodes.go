package harness

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	kubeschedv1 "k8s.io/kube-scheduler/config/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// NodeSpec is a simulated node: a Node object with topology labels, kept Ready by a heartbeat
// the harness sends in the kubelet's place (there is no kubelet here).
type NodeSpec struct {
	Name   string
	Region string
	Zone   string
	Rack   string
	// Labels are added to the topology labels.
	Labels map[string]string
}

// Nodes returns count nodes per zone, named PREFIX-ZONE-N, spread over racks rack-1..rack-2,
// all in region.
func Nodes(prefix, region string, zones []string, count int) []NodeSpec {
	var out []NodeSpec
	for _, z := range zones {
		for i := 1; i <= count; i++ {
			out = append(out, NodeSpec{
				Name:   fmt.Sprintf("%s-%s-%d", prefix, z, i),
				Region: region,
				Zone:   z,
				Rack:   fmt.Sprintf("rack-%d", (i-1)%2+1),
			})
		}
	}
	return out
}

// heartbeatEvery is how often a simulated node renews its Lease. The kubelet's default is 10s
// and kube-controller-manager marks a node NotReady after 50s without one.
const heartbeatEvery = 10 * time.Second

// AddNode registers a Ready node and starts its heartbeat.
func (c *Cluster) AddNode(ctx context.Context, n NodeSpec) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: map[string]string{
		corev1.LabelHostname: n.Name,
		corev1.LabelOSStable: "linux",
	}}}
	for k, v := range map[string]string{storkv1.LabelRegion: n.Region, storkv1.LabelZone: n.Zone, storkv1.LabelRack: n.Rack} {
		if v != "" {
			node.Labels[k] = v
		}
	}
	for k, v := range n.Labels {
		node.Labels[k] = v
	}
	if err := c.Client.Create(ctx, node); err != nil {
		return fmt.Errorf("creating node %s: %w", n.Name, err)
	}
	if err := c.heartbeat(ctx, node.Name, true); err != nil {
		return err
	}
	hbCtx, cancel := context.WithCancel(context.Background())
	c.heartbeatsMu.Lock()
	c.heartbeats[n.Name] = cancel
	c.heartbeatsMu.Unlock()
	go func() {
		t := time.NewTicker(heartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-hbCtx.Done():
				return
			case <-t.C:
				_ = c.heartbeat(hbCtx, n.Name, false)
			}
		}
	}()
	return nil
}

// StopHeartbeat stops a node's heartbeat, as if its kubelet died: after the grace period
// kube-controller-manager marks the node NotReady and taints it.
func (c *Cluster) StopHeartbeat(node string) {
	c.heartbeatsMu.Lock()
	defer c.heartbeatsMu.Unlock()
	if cancel, ok := c.heartbeats[node]; ok {
		cancel()
		delete(c.heartbeats, node)
	}
}

// heartbeat renews the node's Lease and, when status is set or the Ready condition is older
// than a minute, reports the node Ready. kube-controller-manager writes to the same Node (taints,
// annotations), so both writes retry on conflict with a fresh read, as the kubelet does.
func (c *Cluster) heartbeat(ctx context.Context, name string, status bool) error {
	if err := retry.RetryOnConflict(retry.DefaultBackoff, func() error { return c.renewLease(ctx, name) }); err != nil {
		return fmt.Errorf("renewing the lease of node %s: %w", name, err)
	}
	if err := retry.RetryOnConflict(retry.DefaultBackoff, func() error { return c.reportReady(ctx, name, status) }); err != nil {
		return fmt.Errorf("reporting node %s Ready: %w", name, err)
	}
	return nil
}

func (c *Cluster) renewLease(ctx context.Context, name string) error {
	now := metav1.NewMicroTime(time.Now())
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: corev1.NamespaceNodeLease, Name: name}}
	err := c.Client.Get(ctx, client.ObjectKeyFromObject(lease), lease)
	switch {
	case apierrors.IsNotFound(err):
		lease.Spec = coordinationv1.LeaseSpec{HolderIdentity: ptr.To(name), LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &now}
		return c.Client.Create(ctx, lease)
	case err != nil:
		return err
	}
	lease.Spec.RenewTime = &now
	return c.Client.Update(ctx, lease)
}

func (c *Cluster) reportReady(ctx context.Context, name string, force bool) error {
	node := &corev1.Node{}
	if err := c.Client.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
		return err
	}
	ready := findCondition(node.Status.Conditions, corev1.NodeReady)
	if !force && ready != nil && ready.Status == corev1.ConditionTrue && time.Since(ready.LastHeartbeatTime.Time) < time.Minute {
		return nil
	}
	if node.Status.Capacity == nil {
		// First report: what a kubelet would say about an 8-CPU, 32 GiB machine.
		capacity := corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("8"),
			corev1.ResourceMemory: resource.MustParse("32Gi"),
			corev1.ResourcePods:   resource.MustParse("110"),
		}
		node.Status.Capacity, node.Status.Allocatable = capacity, capacity
		node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: name}}
		node.Status.NodeInfo = corev1.NodeSystemInfo{KubeletVersion: "v1.37.2", OperatingSystem: "linux", Architecture: "amd64"}
	}
	now := metav1.Now()
	cond := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		Message: "simulated by the Stork test harness", LastHeartbeatTime: now, LastTransitionTime: now}
	if ready != nil {
		if ready.Status == corev1.ConditionTrue {
			cond.LastTransitionTime = ready.LastTransitionTime
		}
		*ready = cond
	} else {
		node.Status.Conditions = append(node.Status.Conditions, cond)
	}
	return c.Client.Status().Update(ctx, node)
}

func findCondition(conds []corev1.NodeCondition, t corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// schedulerConfig completes a KubeSchedulerConfiguration (empty means the defaults) with the
// harness's kubeconfig and no leader election.
func schedulerConfig(base, kubeconfig string) ([]byte, error) {
	cfg := &kubeschedv1.KubeSchedulerConfiguration{}
	if base != "" {
		if err := yaml.UnmarshalStrict([]byte(base), cfg); err != nil {
			return nil, fmt.Errorf("parsing the scheduler configuration: %w", err)
		}
	}
	cfg.APIVersion, cfg.Kind = kubeschedv1.SchemeGroupVersion.String(), "KubeSchedulerConfiguration"
	cfg.ClientConnection.Kubeconfig = kubeconfig
	cfg.LeaderElection.LeaderElect = ptr.To(false)
	return yaml.Marshal(cfg)
}
