package local

import (
	"context"
	"errors"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
	"stork.dev/stork/drivers/local/agent"
)

func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(storkv1.AddToScheme(s))
	return s
}

func localPV(name, path, node string) *corev1.PersistentVolume {
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name}}
	pv.Spec.Local = &corev1.LocalVolumeSource{Path: path}
	if node != "" {
		pv.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{node}}}}}}}
	}
	return pv
}

func TestOwns(t *testing.T) {
	d, err := New(drivers.Options{Client: fake.NewClientBuilder().Build(), Config: map[string]string{ConfigRoots: "/srv/a, /srv/b"}})
	if err != nil {
		t.Fatal(err)
	}
	hostPath := localPV("hp", "", "n1")
	hostPath.Spec.Local = nil
	hostPath.Spec.HostPath = &corev1.HostPathVolumeSource{Path: "/srv/b/pvc-1"}
	csi := &corev1.PersistentVolume{}
	csi.Spec.CSI = &corev1.CSIPersistentVolumeSource{Driver: "ebs.csi.aws.com"}
	for _, tc := range []struct {
		name string
		pv   *corev1.PersistentVolume
		want bool
	}{
		{"local under a root", localPV("a", "/srv/a/vol", "n1"), true},
		{"hostPath under a root (local-path-provisioner)", hostPath, true},
		{"the root itself", localPV("r", "/srv/a", "n1"), false},
		{"a sibling of a root", localPV("s", "/srv/ab/vol", "n1"), false},
		{"escaping with ..", localPV("e", "/srv/a/../c/vol", "n1"), false},
		{"no node affinity", localPV("n", "/srv/a/vol", ""), false},
		{"a CSI volume", csi, false},
		{"unbound", nil, false},
	} {
		if got := d.Owns(drivers.Volume{PV: tc.pv}); got != tc.want {
			t.Errorf("%s: Owns = %v, want %v", tc.name, got, tc.want)
		}
	}
	if _, err := New(drivers.Options{Client: fake.NewClientBuilder().Build(), Config: map[string]string{ConfigRoots: "relative/path"}}); err == nil {
		t.Error("a relative root was accepted")
	}
}

func TestSnapshotMakesOneTaskPerVolumeAndReportsThem(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().WithScheme(scheme()).WithStatusSubresource(&storkv1.VolumeTask{}).Build()
	d, err := New(drivers.Options{Client: c, Config: map[string]string{ConfigRoots: "/srv"}})
	if err != nil {
		t.Fatal(err)
	}
	req := drivers.SnapshotRequest{ID: "uid-1", Namespace: "app", Volumes: []drivers.Volume{
		{PV: localPV("pv-a", "/srv/n1/a", "n1")}, {PV: localPV("pv-b", "/srv/n2/b", "n2")}}}
	st, err := d.Snapshot(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0].Phase != storkv1.VolumePending || st[0].Reason != "WaitingForAgent" || st[1].Node != "n2" {
		t.Fatalf("statuses %+v", st)
	}
	var tasks storkv1.VolumeTaskList
	if err := c.List(ctx, &tasks); err != nil || len(tasks.Items) != 2 {
		t.Fatalf("tasks %v, %v", tasks.Items, err)
	}
	for _, tk := range tasks.Items {
		if tk.Labels[storkv1.LabelTaskNode] != tk.Spec.NodeName || tk.Spec.Driver != Name || tk.Spec.SourcePath == "" {
			t.Errorf("task %+v", tk)
		}
	}
	// The same request again (a retry) makes no new task; the agent's result shows.
	tk := tasks.Items[0]
	tk.Status = storkv1.VolumeTaskStatus{Phase: storkv1.TaskSucceeded, SnapshotID: "pv-a-1234", SizeBytes: 42}
	if err := c.Status().Update(ctx, &tk); err != nil {
		t.Fatal(err)
	}
	st, err = d.Snapshot(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.List(ctx, &tasks); err != nil || len(tasks.Items) != 2 {
		t.Fatalf("a retry made new tasks: %d", len(tasks.Items))
	}
	var done drivers.VolumeStatus
	for _, s := range st {
		if s.VolumeName == tk.Spec.VolumeName {
			done = s
		}
	}
	if done.Phase != storkv1.VolumeSucceeded || done.SnapshotID != "pv-a-1234" || done.SizeBytes != 42 {
		t.Errorf("status after the agent's result: %+v", done)
	}
	if _, err := d.Snapshot(ctx, drivers.SnapshotRequest{ID: "x", Namespace: "app", Volumes: []drivers.Volume{{PV: localPV("o", "/elsewhere/o", "n1")}}}); !errors.Is(err, drivers.ErrNotOwned) {
		t.Errorf("snapshot of a volume of another driver: %v", err)
	}
}

func TestRestoreMakesAPreBoundVolumeOnceTheCopyIsDone(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().WithScheme(scheme()).WithStatusSubresource(&storkv1.VolumeTask{}).Build()
	d, _ := New(drivers.Options{Client: c, Config: map[string]string{ConfigRoots: "/srv"}})
	req := drivers.RestoreRequest{ID: "r-uid/data", Namespace: "app", Source: drivers.SnapshotRef{SnapshotID: "pv-a-1234", Node: "n1"},
		TargetNamespace: "copy", TargetClaim: "data", SizeBytes: 1 << 30, StorageClassName: "local",
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod}}
	st, err := d.Restore(ctx, req)
	if err != nil || st.Phase != storkv1.VolumePending {
		t.Fatalf("first call: %+v, %v", st, err)
	}
	var pvs corev1.PersistentVolumeList
	if err := c.List(ctx, &pvs); err != nil || len(pvs.Items) != 0 {
		t.Fatalf("a volume was made before the copy: %v", pvs.Items)
	}
	var tasks storkv1.VolumeTaskList
	if err := c.List(ctx, &tasks); err != nil || len(tasks.Items) != 1 {
		t.Fatal(tasks.Items, err)
	}
	tk := tasks.Items[0]
	if tk.Spec.Type != storkv1.TaskRestore || tk.Spec.NodeName != "n1" || tk.Spec.SnapshotID != "pv-a-1234" {
		t.Fatalf("task %+v", tk.Spec)
	}
	// An agent's report is not trusted with the path of the new volume.
	for _, bad := range []string{"/", "/srv/n1/volumes/other", "/etc/volumes/" + tk.Spec.VolumeName} {
		tk.Status = storkv1.VolumeTaskStatus{Phase: storkv1.TaskSucceeded, Path: bad}
		if err := c.Status().Update(ctx, &tk); err != nil {
			t.Fatal(err)
		}
		if st, err = d.Restore(ctx, req); err != nil || st.Phase != storkv1.VolumeFailed || st.Reason != "InvalidVolumePath" {
			t.Fatalf("reported path %s: %+v, %v", bad, st, err)
		}
	}
	tk.Status = storkv1.VolumeTaskStatus{Phase: storkv1.TaskSucceeded, Path: "/srv/n1/volumes/" + tk.Spec.VolumeName}
	if err := c.Status().Update(ctx, &tk); err != nil {
		t.Fatal(err)
	}
	for range 2 { // and a retry after success is harmless
		if st, err = d.Restore(ctx, req); err != nil || st.Phase != storkv1.VolumeSucceeded {
			t.Fatalf("after the copy: %+v, %v", st, err)
		}
	}
	pv := &corev1.PersistentVolume{}
	if err := c.Get(ctx, client.ObjectKey{Name: st.VolumeName}, pv); err != nil {
		t.Fatal(err)
	}
	if pv.Spec.Local.Path != tk.Status.Path || VolumeNode(pv) != "n1" || pv.Spec.ClaimRef.Namespace != "copy" || pv.Spec.ClaimRef.Name != "data" ||
		pv.Spec.StorageClassName != "local" || pv.Spec.Capacity.Storage().Value() != 1<<30 || !d.Owns(drivers.Volume{PV: pv}) ||
		len(pv.Spec.AccessModes) != 1 || pv.Spec.AccessModes[0] != corev1.ReadWriteOncePod {
		t.Errorf("restored volume %+v", pv.Spec)
	}
}

func TestLivenessMarksSilentAgentsDead(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	lease := func(renewed time.Time) *coordinationv1.Lease {
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "stork-system", Name: agent.LeaseName(Name, "n1")},
			Spec: coordinationv1.LeaseSpec{RenewTime: &metav1.MicroTime{Time: renewed}, LeaseDurationSeconds: ptr.To[int32](40)}}
	}
	for _, tc := range []struct {
		name  string
		lease *coordinationv1.Lease
		want  storkv1.StorageHealth
	}{
		{"no lease", nil, storkv1.StorageUnknown},
		{"expired lease", lease(now.Add(-time.Minute)), storkv1.StorageUnknown},
		{"fresh lease", lease(now.Add(-10 * time.Second)), storkv1.StorageHealthy},
	} {
		sn := &storkv1.StorageNode{ObjectMeta: metav1.ObjectMeta{Name: "local.n1"}, Spec: storkv1.StorageNodeSpec{NodeName: "n1", Driver: Name},
			Status: storkv1.StorageNodeStatus{Health: storkv1.StorageHealthy}}
		b := fake.NewClientBuilder().WithScheme(scheme()).WithObjects(sn).WithStatusSubresource(sn)
		if tc.lease != nil {
			b = b.WithObjects(tc.lease)
		}
		c := b.Build()
		l := &liveness{c: c, namespace: "stork-system", now: func() time.Time { return now }}
		res, err := l.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Name: "local.n1"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, client.ObjectKey{Name: "local.n1"}, sn); err != nil {
			t.Fatal(err)
		}
		alive := meta.FindStatusCondition(sn.Status.Conditions, storkv1.StorageConditionAgentAlive)
		if sn.Status.Health != tc.want || (tc.want == storkv1.StorageUnknown && (alive == nil || alive.Status != metav1.ConditionFalse)) {
			t.Errorf("%s: health %s, AgentAlive %+v; want %s", tc.name, sn.Status.Health, alive, tc.want)
		}
		if tc.name == "fresh lease" && (res.RequeueAfter < 29*time.Second || res.RequeueAfter > 32*time.Second) {
			t.Errorf("%s: looks again in %s, want just after the lease expires (~31s)", tc.name, res.RequeueAfter)
		}
	}
}
