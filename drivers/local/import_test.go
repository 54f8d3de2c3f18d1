package local

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
	"stork.dev/stork/drivers/local/agent"
)

func sn(node, zone string, free int64, health storkv1.StorageHealth) drivers.StorageNode {
	return drivers.StorageNode{Node: node, Topology: storkv1.Topology{Region: "r1", Zone: zone}, Health: health,
		Capacity: storkv1.StorageCapacity{FreeBytes: free}}
}

func TestChooseNode(t *testing.T) {
	h := storkv1.StorageHealthy
	inRegion := func(n drivers.StorageNode, region string) drivers.StorageNode { n.Topology.Region = region; return n }
	for _, tc := range []struct {
		name  string
		nodes []drivers.StorageNode
		topo  storkv1.Topology
		want  string
	}{
		{"only the zone asked for", []drivers.StorageNode{sn("a1", "a", 900, h), sn("b1", "b", 10, h), sn("c1", "c", 500, h)}, storkv1.Topology{Zone: "b"}, "b1"},
		{"only healthy nodes", []drivers.StorageNode{sn("b1", "b", 900, storkv1.StorageDegraded), sn("b2", "b", 800, storkv1.StorageDown),
			sn("b3", "b", 700, storkv1.StorageUnknown), sn("b4", "b", 1, h)}, storkv1.Topology{Zone: "b"}, "b4"},
		{"the most free bytes", []drivers.StorageNode{sn("b1", "b", 10, h), sn("b2", "b", 30, h), sn("b3", "b", 20, h)}, storkv1.Topology{Zone: "b"}, "b2"},
		{"ties by name", []drivers.StorageNode{sn("b9", "b", 30, h), sn("b2", "b", 30, h), sn("b5", "b", 30, h)}, storkv1.Topology{Zone: "b"}, "b2"},
		{"anywhere without topology", []drivers.StorageNode{sn("a1", "a", 10, h), sn("c1", "c", 50, h), sn("b1", "", 20, h)}, storkv1.Topology{}, "c1"},
		{"the region asked for", []drivers.StorageNode{sn("a1", "a", 90, h), inRegion(sn("x1", "x", 10, h), "r2")}, storkv1.Topology{Region: "r2"}, "x1"},
		{"a zone name in the region asked for", []drivers.StorageNode{inRegion(sn("b-r2", "b", 90, h), "r2"), sn("b-r1", "b", 10, h)},
			storkv1.Topology{Region: "r1", Zone: "b"}, "b-r1"},
		{"none in the zone", []drivers.StorageNode{sn("a1", "a", 90, h)}, storkv1.Topology{Zone: "b"}, ""},
		{"none at all", nil, storkv1.Topology{}, ""},
	} {
		got, why, _, _ := chooseNode(tc.nodes, tc.topo, 0)
		if got != tc.want || (got == "") != (why != "") {
			t.Errorf("%s: chose %q (%s), want %q", tc.name, got, why, tc.want)
		}
	}
}

// TestChooseNodeByRoom: a restore goes to a node with room for the backup's data; when no
// healthy node has room, it fails naming the size and what each node has free.
func TestChooseNodeByRoom(t *testing.T) {
	h := storkv1.StorageHealthy
	unknown := sn("b9", "b", 0, h) // reports no capacity: taken at its word
	for _, tc := range []struct {
		name  string
		nodes []drivers.StorageNode
		need  int64
		want  string
		full  bool
		why   string
	}{
		{"the roomiest is too small for nothing", []drivers.StorageNode{sn("b1", "b", 100, h), sn("b2", "b", 300, h)}, 200, "b2", false, ""},
		{"only one has room", []drivers.StorageNode{sn("b1", "b", 1<<30, storkv1.StorageDown), sn("b2", "b", 300, h), sn("b3", "b", 100, h)}, 250, "b2", false, ""},
		{"none has room", []drivers.StorageNode{sn("b1", "b", 100, h), sn("b2", "b", 200, h), sn("a1", "a", 1<<30, h)}, 1 << 20, "", true,
			"no healthy local storage node in zone b has room for the backup's 1.0 MiB: b1 has 100 B free, b2 has 200 B free"},
		{"a node reporting no capacity", []drivers.StorageNode{sn("b1", "b", 100, h), unknown}, 1 << 20, "b9", false, ""},
	} {
		got, why, _, full := chooseNode(tc.nodes, storkv1.Topology{Zone: "b"}, tc.need)
		if got != tc.want || full != tc.full || why != tc.why {
			t.Errorf("%s: chose %q, full %v, %q; want %q, %v, %q", tc.name, got, full, why, tc.want, tc.full, tc.why)
		}
	}
}

func TestNoStorageNodeMessages(t *testing.T) {
	down := sn("n3", "b", 100, storkv1.StorageDown)
	down.Reason = "AgentAlive: lease expired"
	nodes := []drivers.StorageNode{sn("n1", "a", 1, storkv1.StorageHealthy), sn("n2", "c", 1, storkv1.StorageHealthy), down,
		sn("n0", "b", 1, storkv1.StorageUnknown)}
	for _, tc := range []struct {
		nodes []drivers.StorageNode
		topo  storkv1.Topology
		want  string
	}{
		{nodes, storkv1.Topology{Zone: "b"}, "no healthy local storage node in zone b: nodes in that zone: n0 (Unknown), n3 (Down: AgentAlive: lease expired)"},
		{nodes[:2], storkv1.Topology{Zone: "b"}, "no storage node has zone b; zones with local storage: a, c"},
		{nodes, storkv1.Topology{Region: "r9"}, "no storage node has region r9; regions with local storage: r1"},
		{nodes[:2], storkv1.Topology{Region: "r1", Zone: "b"}, "no storage node has zone b of region r1; zones with local storage: a (region r1), c (region r1)"},
		{nil, storkv1.Topology{Zone: "b"}, "no local storage node in zone b: no stork-agent has reported a StorageNode of driver local"},
	} {
		_, got, wait, _ := chooseNode(tc.nodes, tc.topo, 0)
		if got != tc.want || wait != strings.HasPrefix(tc.want, "no healthy") {
			t.Errorf("%+v:\n got %s (wait %v)\nwant %s", tc.topo, got, wait, tc.want)
		}
	}
}

func storageNode(node, zone string, free int64, health storkv1.StorageHealth, conds ...metav1.Condition) *storkv1.StorageNode {
	return &storkv1.StorageNode{ObjectMeta: metav1.ObjectMeta{Name: agent.StorageNodeName(Name, node)},
		Spec: storkv1.StorageNodeSpec{NodeName: node, Driver: Name},
		Status: storkv1.StorageNodeStatus{Health: health, Topology: storkv1.Topology{Zone: zone},
			Capacity: storkv1.StorageCapacity{FreeBytes: free}, Conditions: conds}}
}

func importRequest(id string) drivers.ImportRequest {
	return drivers.ImportRequest{ID: id, Namespace: "app", Location: "s3-backups", AccessSecret: "stork-access-1",
		RepositorySnapshotID: strings.Repeat("0123456789abcdef", 4), Topology: storkv1.Topology{Zone: "b"},
		Owner:           &metav1.OwnerReference{APIVersion: "stork.dev/v1alpha1", Kind: "Restore", Name: "r", UID: "r-uid", Controller: ptr.To(true)},
		TargetNamespace: "copy", TargetClaim: "data", SizeBytes: 1 << 30, StorageClassName: "local"}
}

func TestImportWithoutAHealthyNodeWaits(t *testing.T) {
	ctx := context.Background()
	dead := metav1.Condition{Type: storkv1.StorageConditionAgentAlive, Status: metav1.ConditionFalse, Reason: "LeaseExpired", Message: "lease expired"}
	c := fake.NewClientBuilder().WithScheme(scheme()).WithStatusSubresource(&storkv1.VolumeTask{}).
		WithObjects(storageNode("n1", "a", 100, storkv1.StorageHealthy), storageNode("n3", "b", 100, storkv1.StorageDown, dead)).Build()
	d, _ := New(drivers.Options{Client: c, Config: map[string]string{ConfigRoots: "/srv"}})
	st, err := d.Import(ctx, importRequest("i-1"))
	want := "no healthy local storage node in zone b: nodes in that zone: n3 (Down: AgentAlive: lease expired)"
	if err != nil || st.Phase != storkv1.VolumePending || st.Reason != drivers.ReasonNoHealthyStorage || st.Message != want {
		t.Fatalf("import with no healthy node in the zone: %+v, %v", st, err)
	}
	// A zone with no storage at all fails at once.
	req := importRequest("i-zone")
	req.Topology.Zone = "z"
	if st, err := d.Import(ctx, req); err != nil || st.Phase != storkv1.VolumeFailed || st.Reason != "NoStorageNode" {
		t.Fatalf("import into a zone without storage: %+v, %v", st, err)
	}
	var tasks storkv1.VolumeTaskList
	if err := c.List(ctx, &tasks); err != nil || len(tasks.Items) != 0 {
		t.Errorf("tasks made without a node: %v, %v", tasks.Items, err)
	}
	req = importRequest("i-2")
	req.AccessSecret = ""
	if st, err := d.Import(ctx, req); err != nil || st.Phase != storkv1.VolumeFailed || st.Reason != "InvalidRequest" || !strings.Contains(st.Message, "access Secret") {
		t.Errorf("import without an access Secret: %+v, %v", st, err)
	}
}

// The node of an import is chosen once; the volume is made on it, bound to the target claim,
// when the agent has downloaded the backup.
func TestImportMakesAVolumeOnTheChosenNode(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().WithScheme(scheme()).WithStatusSubresource(&storkv1.VolumeTask{}).
		WithObjects(storageNode("n1", "a", 1000, storkv1.StorageHealthy), storageNode("n2", "b", 100, storkv1.StorageHealthy),
			storageNode("n3", "b", 200, storkv1.StorageHealthy)).Build()
	d, _ := New(drivers.Options{Client: c, Config: map[string]string{ConfigRoots: "/srv"}})
	req := importRequest("restore-uid/data")
	st, err := d.Import(ctx, req)
	if err != nil || st.Phase != storkv1.VolumePending || st.Node != "n3" {
		t.Fatalf("first call: %+v, %v", st, err)
	}

	// The chosen node gets worse and another better: the choice stays.
	for _, n := range []*storkv1.StorageNode{storageNode("n2", "b", 5000, storkv1.StorageHealthy), storageNode("n3", "b", 1, storkv1.StorageDegraded)} {
		cur := &storkv1.StorageNode{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(n), cur); err != nil {
			t.Fatal(err)
		}
		cur.Status = n.Status
		if err := c.Update(ctx, cur); err != nil {
			t.Fatal(err)
		}
	}
	if st, err = d.Import(ctx, req); err != nil || st.Node != "n3" {
		t.Fatalf("after the capacities changed: %+v, %v", st, err)
	}
	// Even with no storage node left to choose from, the task goes on where it is.
	if err := c.DeleteAllOf(ctx, &storkv1.StorageNode{}); err != nil {
		t.Fatal(err)
	}
	if st, err = d.Import(ctx, req); err != nil || st.Node != "n3" || st.Phase != storkv1.VolumePending {
		t.Fatalf("with no storage nodes: %+v, %v", st, err)
	}
	var tasks storkv1.VolumeTaskList
	if err := c.List(ctx, &tasks); err != nil || len(tasks.Items) != 1 {
		t.Fatalf("tasks %v, %v", tasks.Items, err)
	}
	tk := tasks.Items[0]
	if s := tk.Spec; s.Type != storkv1.TaskDownload || s.NodeName != "n3" || s.Driver != Name || s.VolumeName != st.VolumeName ||
		s.BackupLocation != req.Location || s.AccessSecretName != req.AccessSecret || s.RepositorySnapshotID != req.RepositorySnapshotID ||
		tk.Labels[storkv1.LabelTaskNode] != "n3" || len(tk.OwnerReferences) != 1 || tk.OwnerReferences[0].UID != "r-uid" {
		t.Fatalf("task %+v", tk)
	}

	// Progress shows; no volume is made before the download is done.
	tk.Status = storkv1.VolumeTaskStatus{Phase: storkv1.TaskRunning, Progress: storkv1.Progress{BytesDone: 40, BytesTotal: 100}}
	if err := c.Status().Update(ctx, &tk); err != nil {
		t.Fatal(err)
	}
	if st, err = d.Import(ctx, req); err != nil || st.Phase != storkv1.VolumeInProgress || st.Progress.BytesDone != 40 || st.Progress.BytesTotal != 100 {
		t.Fatalf("while downloading: %+v, %v", st, err)
	}
	var pvs corev1.PersistentVolumeList
	if err := c.List(ctx, &pvs); err != nil || len(pvs.Items) != 0 {
		t.Fatalf("a volume was made before the download: %v", pvs.Items)
	}

	// An agent's report is not trusted with the path of the new volume.
	for _, bad := range []string{"/srv/n3/volumes/other", "/etc/volumes/" + tk.Spec.VolumeName, "/srv/n3/" + tk.Spec.VolumeName} {
		tk.Status = storkv1.VolumeTaskStatus{Phase: storkv1.TaskSucceeded, Path: bad}
		if err := c.Status().Update(ctx, &tk); err != nil {
			t.Fatal(err)
		}
		if st, err = d.Import(ctx, req); err != nil || st.Phase != storkv1.VolumeFailed || st.Reason != "InvalidVolumePath" {
			t.Fatalf("reported path %s: %+v, %v", bad, st, err)
		}
	}
	if err := c.List(ctx, &pvs); err != nil || len(pvs.Items) != 0 {
		t.Fatalf("a volume was made at a bad path: %v", pvs.Items)
	}

	tk.Status = storkv1.VolumeTaskStatus{Phase: storkv1.TaskSucceeded, Path: "/srv/n3/volumes/" + tk.Spec.VolumeName, SizeBytes: 100,
		Progress: storkv1.Progress{BytesDone: 100, BytesTotal: 100}}
	if err := c.Status().Update(ctx, &tk); err != nil {
		t.Fatal(err)
	}
	for range 2 { // and a retry after success is harmless
		if st, err = d.Import(ctx, req); err != nil || st.Phase != storkv1.VolumeSucceeded || st.Node != "n3" || st.Progress.BytesDone != 100 {
			t.Fatalf("after the download: %+v, %v", st, err)
		}
	}
	pv := &corev1.PersistentVolume{}
	if err := c.Get(ctx, client.ObjectKey{Name: st.VolumeName}, pv); err != nil {
		t.Fatal(err)
	}
	if pv.Spec.Local.Path != tk.Status.Path || VolumeNode(pv) != "n3" || pv.Spec.ClaimRef.Namespace != "copy" || pv.Spec.ClaimRef.Name != "data" ||
		pv.Spec.StorageClassName != "local" || pv.Spec.Capacity.Storage().Value() != 1<<30 || !d.Owns(drivers.Volume{PV: pv}) ||
		len(pv.Spec.AccessModes) != 1 || pv.Spec.AccessModes[0] != corev1.ReadWriteOnce ||
		pv.Labels[LabelRestoredFromBackup] != req.RepositorySnapshotID[:63] {
		t.Errorf("imported volume %+v %+v", pv.Labels, pv.Spec)
	}
}
