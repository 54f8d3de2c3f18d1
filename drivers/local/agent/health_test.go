package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

func TestReporterHealth(t *testing.T) {
	ctx := context.Background()
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(storkv1.AddToScheme(s))
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{
		storkv1.LabelRegion: "r", storkv1.LabelZone: "z", storkv1.LabelRack: "k"}}}
	for _, tc := range []struct {
		name    string
		setup   func(r *Reporter)
		health  storkv1.StorageHealth
		trueCnd []string
	}{
		// The free space is the real disk's under t.TempDir: the healthy case must not depend on
		// it (it failed once on a host with 9.7% free), so its threshold is next to nothing.
		{"healthy", func(r *Reporter) { r.NearlyFullPercent = 0.001 }, storkv1.StorageHealthy, []string{storkv1.StorageConditionAgentAlive, storkv1.StorageConditionWritable}},
		{"nearly full", func(r *Reporter) { r.NearlyFullPercent = 100 }, storkv1.StorageDegraded, []string{storkv1.StorageConditionNearlyFull}},
		{"recent I/O error", func(r *Reporter) { r.IOErrors.Add(&os.PathError{Op: "write", Path: "x", Err: syscall.EIO}) }, storkv1.StorageDegraded,
			[]string{storkv1.StorageConditionIOErrors}},
		{"root not writable", func(r *Reporter) {
			// Root ignores permissions: a file where the agent's directory should be stops writes.
			if err := os.WriteFile(filepath.Join(string(r.Root), ".stork"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, storkv1.StorageDown, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(s).WithObjects(node.DeepCopy()).WithStatusSubresource(&storkv1.StorageNode{}).Build()
			r := &Reporter{Client: c, Node: "n1", Root: Root(t.TempDir()), Namespace: "stork-system", AgentID: "a1", Version: "v"}
			r.defaults()
			tc.setup(r)
			st, err := r.observe(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.report(ctx, st); err != nil {
				t.Fatal(err)
			}
			sn := &storkv1.StorageNode{}
			if err := c.Get(ctx, client.ObjectKey{Name: "local.n1"}, sn); err != nil {
				t.Fatal(err)
			}
			if sn.Spec.NodeName != "n1" || sn.Spec.Driver != "local" || sn.Status.Health != tc.health ||
				sn.Status.Topology != (storkv1.Topology{Region: "r", Zone: "z", Rack: "k"}) || sn.Status.LastHeartbeatTime == nil {
				t.Fatalf("StorageNode %+v", sn)
			}
			for _, cnd := range tc.trueCnd {
				if !meta.IsStatusConditionTrue(sn.Status.Conditions, cnd) {
					t.Errorf("condition %s not True: %+v", cnd, sn.Status.Conditions)
				}
			}
			if tc.health == storkv1.StorageDown && !meta.IsStatusConditionFalse(sn.Status.Conditions, storkv1.StorageConditionWritable) {
				t.Errorf("StorageWritable not False: %+v", sn.Status.Conditions)
			}
			if err := r.renewLease(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestChanged(t *testing.T) {
	base := storkv1.StorageNodeStatus{Health: storkv1.StorageHealthy, Capacity: storkv1.StorageCapacity{TotalBytes: 1000, FreeBytes: 500}}
	small, big := base, base
	small.Capacity.FreeBytes, big.Capacity.FreeBytes = 505, 520
	if changed(base, small) {
		t.Error("a 0.5% move of free space counts as a change: every agent would write every round")
	}
	if !changed(base, big) {
		t.Error("a 2% move of free space is not reported")
	}
	down := base
	down.Health = storkv1.StorageDown
	if !changed(base, down) {
		t.Error("a health change is not reported")
	}
	var l ErrorLog
	if l.Since(metav1.Now().Time) != nil {
		t.Error("an empty error log has an error")
	}
	l.Add(errors.New("boom"))
}
