package longhorn

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/rest"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
)

const ns = DefaultNamespace

// object makes a Longhorn object of kind with the given top-level fields (spec, status).
func object(kind, name string, fields map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	for k, v := range fields {
		u.Object[k] = v
	}
	u.SetAPIVersion(Group + "/" + Version)
	u.SetKind(kind)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

func cond(t, status, msg string) map[string]any {
	return map[string]any{"type": t, "status": status, "reason": "", "message": msg}
}

// disk is a diskStatus entry.
func disk(max, avail int64, conds ...any) map[string]any {
	if conds == nil {
		conds = []any{cond("Ready", "True", ""), cond("Schedulable", "True", "")}
	}
	return map[string]any{"storageMaximum": max, "storageAvailable": avail, "conditions": conds}
}

// nodeObj is a Longhorn Node in zone (region r1) with the given conditions and disks.
func nodeObj(name, zone string, conds []any, disks map[string]any) *unstructured.Unstructured {
	status := map[string]any{"region": "r1", "zone": zone}
	if conds != nil {
		status["conditions"] = conds
	}
	if disks != nil {
		status["diskStatus"] = disks
	}
	return object(kindNode, name, map[string]any{"spec": map[string]any{"allowScheduling": true}, "status": status})
}

// healthyNode is a ready, schedulable Longhorn Node with one disk.
func healthyNode(name, zone string) *unstructured.Unstructured {
	return nodeObj(name, zone, []any{cond("Ready", "True", ""), cond("Schedulable", "True", "")},
		map[string]any{"default-disk-1": disk(100000, 60000)})
}

func downNode(name, zone string) *unstructured.Unstructured {
	return nodeObj(name, zone, []any{cond("Ready", "False", "Kubelet is not ready on "+name), cond("Schedulable", "True", "")}, nil)
}

// replicaObj is a Longhorn Replica of volume on nodeID in state.
func replicaObj(name, volume, nodeID, state, failedAt string) *unstructured.Unstructured {
	return object(kindReplica, name, map[string]any{
		"spec":   map[string]any{"volumeName": volume, "nodeID": nodeID, "failedAt": failedAt, "diskID": "d"},
		"status": map[string]any{"currentState": state},
	})
}

func volumeObj(name, robustness string) *unstructured.Unstructured {
	return object(kindVolume, name, map[string]any{"status": map[string]any{"robustness": robustness, "state": "attached"}})
}

// pv is a bound Longhorn PersistentVolume of the Longhorn volume handle.
func pv(handle string) drivers.Volume {
	p := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: handle}}
	p.Spec.CSI = &corev1.CSIPersistentVolumeSource{Driver: CSIDriver, VolumeHandle: handle}
	return drivers.Volume{PV: p}
}

func newDriver(objs ...*unstructured.Unstructured) *Driver {
	d := NewWithClient(nil, "", logr.Discard())
	for _, o := range objs {
		d.Observe(o)
	}
	return d
}

func TestNew(t *testing.T) {
	d, err := New(drivers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.namespace != DefaultNamespace || d.dyn != nil {
		t.Errorf("New without config: namespace %q, client %v", d.namespace, d.dyn)
	}
	if err := d.SetupWithManager(nil); err == nil || !strings.Contains(err.Error(), "RESTConfig") {
		t.Errorf("SetupWithManager without a client: %v, want an error naming the missing RESTConfig", err)
	}
	d, err = New(drivers.Options{RESTConfig: &rest.Config{Host: "https://127.0.0.1:1"}, Config: map[string]string{ConfigNamespace: "storage"}})
	if err != nil {
		t.Fatal(err)
	}
	if d.namespace != "storage" || d.dyn == nil {
		t.Errorf("New with config: namespace %q, client %v", d.namespace, d.dyn)
	}
	if !slices.Contains(drivers.Registered(), Name) {
		t.Errorf("registered drivers %v lack %q", drivers.Registered(), Name)
	}
}

func TestOwns(t *testing.T) {
	d := newDriver()
	other := pv("x")
	other.PV.Spec.CSI.Driver = "ebs.csi.aws.com"
	local := &corev1.PersistentVolume{}
	local.Spec.Local = &corev1.LocalVolumeSource{Path: "/srv/a"}
	lhSC := &storagev1.StorageClass{Provisioner: CSIDriver}
	otherSC := &storagev1.StorageClass{Provisioner: "ebs.csi.aws.com"}
	claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "data"}}
	for _, tc := range []struct {
		name string
		v    drivers.Volume
		want bool
	}{
		{"longhorn PV", pv("pvc-1"), true},
		{"other CSI driver", other, false},
		{"local PV", drivers.Volume{PV: local}, false},
		{"unbound claim of a longhorn class", drivers.Volume{Claim: claim, StorageClass: lhSC}, true},
		{"unbound claim of another class", drivers.Volume{Claim: claim, StorageClass: otherSC}, false},
		{"unbound claim without class", drivers.Volume{Claim: claim}, false},
		// The PV decides once bound, whatever the class says.
		{"other driver's PV of a longhorn class", drivers.Volume{PV: other.PV, StorageClass: lhSC}, false},
		{"nil everything", drivers.Volume{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := d.Owns(tc.v); got != tc.want {
				t.Errorf("Owns = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStorageNodes(t *testing.T) {
	ready := cond("Ready", "True", "")
	sched := cond("Schedulable", "True", "")
	unschedulable := healthyNode("unschedulable", "z")
	unschedulable.Object["spec"] = map[string]any{"allowScheduling": false}
	mapShape := nodeObj("map-shape", "z", nil, nil)
	mapShape.Object["status"].(map[string]any)["conditions"] = map[string]any{
		"Ready":       map[string]any{"status": "False", "message": "node is gone"},
		"Schedulable": map[string]any{"status": "True"},
	}
	malformed := healthyNode("malformed", "z")
	malformed.Object["status"].(map[string]any)["diskStatus"] = map[string]any{
		"d1": "not an object", "d2": disk(10, 5), "d3": map[string]any{"storageMaximum": "big", "conditions": 7},
	}
	for _, tc := range []struct {
		name        string
		obj         *unstructured.Unstructured
		health      storkv1.StorageHealth
		reason      string // substring; "" means the reason must be empty
		total, free int64
	}{
		{"healthy", healthyNode("healthy", "z"), storkv1.StorageHealthy, "", 100000, 60000},
		{"not ready", downNode("down", "z"), storkv1.StorageDown, "Ready: Kubelet is not ready on down", 0, 0},
		{"unschedulable condition", nodeObj("cordoned", "z", []any{ready, cond("Schedulable", "False", "node is cordoned")}, nil),
			storkv1.StorageDegraded, "Schedulable: node is cordoned", 0, 0},
		{"scheduling disabled", unschedulable, storkv1.StorageDegraded, "spec.allowScheduling is false", 100000, 60000},
		{"disk not ready", nodeObj("bad-disk", "z", []any{ready, sched}, map[string]any{
			"d1": disk(100, 50),
			"d2": disk(200, 20, cond("Ready", "False", "disk is unreachable"), cond("Schedulable", "True", "")),
		}), storkv1.StorageDegraded, "disk d2 Ready: disk is unreachable", 300, 70},
		{"disk full", nodeObj("full-disk", "z", []any{ready, sched}, map[string]any{
			"d1": disk(100, 0, cond("Ready", "True", ""), cond("Schedulable", "False", "")),
		}), storkv1.StorageDegraded, "disk d1 Schedulable is False", 100, 0},
		{"no conditions", nodeObj("new", "z", nil, nil), storkv1.StorageUnknown, "no Ready condition", 0, 0},
		{"ready unknown", nodeObj("unsure", "z", []any{cond("Ready", "Unknown", "no heartbeat")}, nil), storkv1.StorageUnknown, "Ready: no heartbeat", 0, 0},
		{"conditions as a map", mapShape, storkv1.StorageDown, "Ready: node is gone", 0, 0},
		{"malformed disks are skipped", malformed, storkv1.StorageHealthy, "", 10, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := newDriver(tc.obj).StorageNodes(context.Background())
			if err != nil || len(list) != 1 {
				t.Fatalf("StorageNodes = %v, %v; want one node", list, err)
			}
			n := list[0]
			if n.Node != tc.obj.GetName() || n.Health != tc.health {
				t.Errorf("node %q health %s, want %q %s (reason %q)", n.Node, n.Health, tc.obj.GetName(), tc.health, n.Reason)
			}
			if (tc.reason == "") != (n.Reason == "") || !strings.Contains(n.Reason, tc.reason) {
				t.Errorf("reason %q, want one with %q", n.Reason, tc.reason)
			}
			if n.Capacity != (storkv1.StorageCapacity{TotalBytes: tc.total, FreeBytes: tc.free}) {
				t.Errorf("capacity %+v, want total %d free %d", n.Capacity, tc.total, tc.free)
			}
			if n.Topology != (storkv1.Topology{Region: "r1", Zone: "z"}) {
				t.Errorf("topology %+v", n.Topology)
			}
			if !n.LastSeen.IsZero() {
				t.Errorf("LastSeen %v, want zero", n.LastSeen)
			}
		})
	}
}

func TestStorageNodesSortedAndOnlyLonghorn(t *testing.T) {
	coreNode := &unstructured.Unstructured{}
	coreNode.SetAPIVersion("v1")
	coreNode.SetKind("Node")
	coreNode.SetName("a-core-node")
	d := newDriver(healthyNode("n3", "z"), healthyNode("n1", "z"), downNode("n2", "z"), coreNode)
	list, _ := d.StorageNodes(context.Background())
	var got []string
	for _, n := range list {
		got = append(got, n.Node)
	}
	if want := []string{"n1", "n2", "n3"}; !slices.Equal(got, want) {
		t.Errorf("nodes %v, want %v", got, want)
	}
}

func TestLocate(t *testing.T) {
	degraded := nodeObj("n4", "zone-b", []any{cond("Ready", "True", ""), cond("Schedulable", "False", "cordoned")}, nil)
	d := newDriver(
		healthyNode("n1", "zone-a"), healthyNode("n2", "zone-b"), downNode("n3", "zone-a"), degraded,
		nodeObj("n5", "zone-a", nil, nil), // no Ready condition: Unknown
		// Two healthy replicas in different zones.
		replicaObj("ok-r1", "ok", "n2", "running", ""), replicaObj("ok-r2", "ok", "n1", "running", ""),
		// A failed replica goes after the healthy one, whatever its node's name.
		replicaObj("failed-r1", "failed", "n1", "running", "2026-01-02T03:04:05Z"), replicaObj("failed-r2", "failed", "n2", "running", ""),
		replicaObj("stopped-r1", "stopped", "n1", "stopped", ""), // a detached volume
		replicaObj("errored-r1", "errored", "n1", "error", ""),
		volumeObj("faulted", "faulted"), replicaObj("faulted-r1", "faulted", "n1", "stopped", ""),
		replicaObj("down-r1", "down", "n3", "running", ""),
		replicaObj("unknown-r1", "unknown", "n5", "running", ""),
		replicaObj("gone-r1", "gone", "n9", "running", ""),
		replicaObj("degraded-r1", "degraded", "n4", "running", ""),
		// Not scheduled yet: holds no data.
		replicaObj("unsched-r1", "unsched", "", "", ""), replicaObj("unsched-r2", "unsched", "n1", "running", ""),
		// All in zone-a: the volume is confined to it.
		replicaObj("zonal-r1", "zonal", "n3", "running", ""), replicaObj("zonal-r2", "zonal", "n1", "running", ""),
		// Two replicas on one node are one copy; healthy if either is.
		replicaObj("dup-r1", "dup", "n1", "error", ""), replicaObj("dup-r2", "dup", "n1", "running", ""),
	)
	r := func(node string, healthy bool) drivers.Replica {
		zone := map[string]string{"n1": "zone-a", "n2": "zone-b", "n3": "zone-a", "n4": "zone-b", "n5": "zone-a"}[node]
		var t storkv1.Topology
		if zone != "" {
			t = storkv1.Topology{Region: "r1", Zone: zone}
		}
		return drivers.Replica{Node: node, Topology: t, Healthy: healthy}
	}
	zoneA := storkv1.Topology{Region: "r1", Zone: "zone-a"}
	for _, tc := range []struct {
		volume string
		want   drivers.Location
	}{
		{"ok", drivers.Location{Replicas: []drivers.Replica{r("n1", true), r("n2", true)}}},
		{"failed", drivers.Location{Replicas: []drivers.Replica{r("n2", true), r("n1", false)}}},
		{"stopped", drivers.Location{Replicas: []drivers.Replica{r("n1", true)}, Topology: zoneA}},
		{"errored", drivers.Location{Replicas: []drivers.Replica{r("n1", false)}, Topology: zoneA}},
		{"faulted", drivers.Location{Replicas: []drivers.Replica{r("n1", false)}, Topology: zoneA}},
		{"down", drivers.Location{Replicas: []drivers.Replica{r("n3", false)}, Topology: zoneA}},
		{"unknown", drivers.Location{Replicas: []drivers.Replica{r("n5", false)}, Topology: zoneA}},
		{"gone", drivers.Location{Replicas: []drivers.Replica{r("n9", false)}}},
		{"degraded", drivers.Location{Replicas: []drivers.Replica{r("n4", true)}, Topology: storkv1.Topology{Region: "r1", Zone: "zone-b"}}},
		{"unsched", drivers.Location{Replicas: []drivers.Replica{r("n1", true)}, Topology: zoneA}},
		{"zonal", drivers.Location{Replicas: []drivers.Replica{r("n1", true), r("n3", false)}, Topology: zoneA}},
		{"dup", drivers.Location{Replicas: []drivers.Replica{r("n1", true)}, Topology: zoneA}},
		{"never-seen", drivers.Location{}},
	} {
		t.Run(tc.volume, func(t *testing.T) {
			got, err := d.Locate(context.Background(), pv(tc.volume))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Replicas, tc.want.Replicas) || got.Topology != tc.want.Topology {
				t.Errorf("Locate =\n  %+v\nwant\n  %+v", got, tc.want)
			}
		})
	}

	other := pv("ok")
	other.PV.Spec.CSI.Driver = "ebs.csi.aws.com"
	if _, err := d.Locate(context.Background(), other); !errors.Is(err, drivers.ErrNotOwned) {
		t.Errorf("Locate of another driver's volume: %v, want ErrNotOwned", err)
	}
	unbound := drivers.Volume{Claim: &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "c"}},
		StorageClass: &storagev1.StorageClass{Provisioner: CSIDriver}}
	if _, err := d.Locate(context.Background(), unbound); err == nil || errors.Is(err, drivers.ErrNotOwned) {
		t.Errorf("Locate of an unbound claim: %v, want a not-bound error", err)
	}
}

func TestUpdatesAndForget(t *testing.T) {
	ctx := context.Background()
	d := newDriver(healthyNode("n1", "z"), healthyNode("n2", "z"), volumeObj("v", "degraded"),
		replicaObj("v-r1", "v", "", "", ""), replicaObj("v-r2", "v", "n2", "running", ""))
	nodesOf := func(vol string) []string {
		loc, err := d.Locate(ctx, pv(vol))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range loc.Replicas {
			out = append(out, fmt.Sprintf("%s:%v", r.Node, r.Healthy))
		}
		return out
	}
	if got := nodesOf("v"); !slices.Equal(got, []string{"n2:true"}) {
		t.Errorf("before scheduling: %v", got)
	}
	if got := d.idx.volumeRobustness("v"); got != "degraded" {
		t.Errorf("Robustness = %q", got)
	}

	// Scheduled, then running.
	d.Observe(replicaObj("v-r1", "v", "n1", "running", ""))
	d.Observe(volumeObj("v", "healthy"))
	if got := nodesOf("v"); !slices.Equal(got, []string{"n1:true", "n2:true"}) {
		t.Errorf("after scheduling: %v", got)
	}
	if got := d.idx.volumeRobustness("v"); got != "healthy" {
		t.Errorf("Robustness = %q", got)
	}
	// A replica that changes volume (not something Longhorn does, but the index must not
	// keep it under both).
	d.Observe(replicaObj("v-r1", "w", "n1", "running", ""))
	if got, w := nodesOf("v"), nodesOf("w"); !slices.Equal(got, []string{"n2:true"}) || !slices.Equal(w, []string{"n1:true"}) {
		t.Errorf("after moving a replica: v %v, w %v", got, w)
	}
	// The node goes down: its replica is no longer healthy.
	d.Observe(downNode("n2", "z"))
	if got := nodesOf("v"); !slices.Equal(got, []string{"n2:false"}) {
		t.Errorf("after n2 went down: %v", got)
	}

	d.Forget(replicaObj("v-r2", "", "", "", ""))
	d.Forget(nodeObj("n1", "", nil, nil))
	d.Forget(volumeObj("v", ""))
	if got := nodesOf("v"); got != nil {
		t.Errorf("after forgetting its replica: %v", got)
	}
	if got := nodesOf("w"); !slices.Equal(got, []string{"n1:false"}) {
		t.Errorf("after forgetting n1: %v", got)
	}
	if got := d.idx.volumeRobustness("v"); got != "" {
		t.Errorf("Robustness after Forget = %q", got)
	}
	list, _ := d.StorageNodes(ctx)
	if len(list) != 1 || list[0].Node != "n2" {
		t.Errorf("StorageNodes after forgetting n1: %+v", list)
	}
	if len(d.idx.byVolume) != 1 || len(d.idx.replicas) != 1 {
		t.Errorf("index keeps %d volumes and %d replicas, want 1 and 1", len(d.idx.byVolume), len(d.idx.replicas))
	}
}

// TestConcurrentAccess is for the race detector: handlers write while placement reads.
func TestConcurrentAccess(t *testing.T) {
	d := newDriver(healthyNode("n1", "z"))
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 500 {
			d.Observe(replicaObj(fmt.Sprintf("r%d", i%7), "v", "n1", "running", ""))
			d.Observe(healthyNode("n1", "z"))
			d.Forget(replicaObj(fmt.Sprintf("r%d", i%5), "", "", "", ""))
		}
	})
	for range 500 {
		if _, err := d.Locate(context.Background(), pv("v")); err != nil {
			t.Fatal(err)
		}
		_, _ = d.StorageNodes(context.Background())
	}
	wg.Wait()
}

func TestCRDs(t *testing.T) {
	crds, err := CRDs()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"volumes.longhorn.io": "Volume", "replicas.longhorn.io": "Replica", "nodes.longhorn.io": "Node"}
	if len(crds) != len(want) {
		t.Fatalf("%d CRDs, want %d", len(crds), len(want))
	}
	for _, c := range crds {
		kind, ok := want[c.Name]
		if !ok {
			t.Errorf("unexpected CRD %s", c.Name)
			continue
		}
		n := c.Spec.Names
		if c.Spec.Group != Group || c.Spec.Scope != apiextensionsv1.NamespaceScoped || n.Kind != kind || n.ListKind != kind+"List" ||
			n.Plural+"."+Group != c.Name || n.Singular != strings.ToLower(kind) {
			t.Errorf("CRD %s: group %q scope %q names %+v", c.Name, c.Spec.Group, c.Spec.Scope, n)
		}
		if len(c.Spec.Versions) != 1 {
			t.Fatalf("CRD %s has %d versions", c.Name, len(c.Spec.Versions))
		}
		v := c.Spec.Versions[0]
		if v.Name != Version || !v.Served || !v.Storage || v.Subresources == nil || v.Subresources.Status == nil {
			t.Errorf("CRD %s version %+v", c.Name, v)
		}
		s := v.Schema.OpenAPIV3Schema
		for _, f := range []string{"spec", "status"} {
			p := s.Properties[f]
			if s.Type != "object" || p.Type != "object" || p.XPreserveUnknownFields == nil || !*p.XPreserveUnknownFields {
				t.Errorf("CRD %s: %s is not an open object: %+v", c.Name, f, p)
			}
		}
	}
}

// fakeClient is a fake dynamic client with Longhorn's three resources and objs. started is
// closed once the replicas informer's watch is registered, after which the fake delivers every
// change to it (changes between the informer's list and its watch would be lost otherwise).
func fakeClient(objs ...runtime.Object) (_ *dynamicfake.FakeDynamicClient, started <-chan struct{}) {
	c := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		GVR(ResourceVolumes): "VolumeList", GVR(ResourceReplicas): "ReplicaList", GVR(ResourceNodes): "NodeList",
	}, objs...)
	ch := make(chan struct{})
	var once sync.Once
	c.PrependWatchReactor(ResourceReplicas, func(action clienttesting.Action) (bool, watch.Interface, error) {
		var opts metav1.ListOptions
		if wa, ok := action.(clienttesting.WatchActionImpl); ok {
			opts = wa.ListOptions
		}
		w, err := c.Tracker().Watch(action.GetResource(), action.GetNamespace(), opts)
		once.Do(func() { close(ch) })
		return true, w, err
	})
	return c, ch
}

// eventually polls cond until it holds or a timeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestInformers(t *testing.T) {
	elsewhere := replicaObj("other-r1", "vol-a", "n2", "running", "")
	elsewhere.SetNamespace("not-longhorn")
	client, watching := fakeClient(healthyNode("n1", "zone-a"), healthyNode("n2", "zone-a"), volumeObj("vol-a", "degraded"),
		replicaObj("vol-a-r1", "vol-a", "n1", "running", ""), elsewhere)
	d := NewWithClient(client, "", logr.Discard())
	r := &informers{d: d}
	if r.NeedLeaderElection() {
		t.Error("the informers need leader election; every Stork replica serves scheduling")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Start(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Start returned %v", err)
			}
			if d.Synced() {
				t.Error("Synced after the informers stopped")
			}
		case <-time.After(10 * time.Second):
			t.Error("Start did not return after its context ended")
		}
	}()

	eventually(t, "synced", d.Synced)
	nodesOf := func() []string {
		loc, err := d.Locate(ctx, pv("vol-a"))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range loc.Replicas {
			out = append(out, r.Node)
		}
		return out
	}
	// The initial list is in the index by the time Synced is true; the replica in another
	// namespace is not.
	if got := nodesOf(); !slices.Equal(got, []string{"n1"}) {
		t.Errorf("after sync: replicas on %v, want [n1]", got)
	}
	if got := d.idx.volumeRobustness("vol-a"); got != "degraded" {
		t.Errorf("Robustness = %q", got)
	}
	if list, _ := d.StorageNodes(ctx); len(list) != 2 {
		t.Errorf("StorageNodes = %+v, want n1 and n2", list)
	}

	<-watching
	replicas := client.Resource(GVR(ResourceReplicas)).Namespace(ns)
	if _, err := replicas.Create(ctx, replicaObj("vol-a-r2", "vol-a", "n2", "running", ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new replica is located", func() bool { return slices.Equal(nodesOf(), []string{"n1", "n2"}) })
	if err := replicas.Delete(ctx, "vol-a-r1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted replica is gone", func() bool { return slices.Equal(nodesOf(), []string{"n2"}) })
}

func TestHandlerTombstone(t *testing.T) {
	d := newDriver(healthyNode("n1", "z"), replicaObj("r1", "v", "n1", "running", ""))
	// Handlers take the kind from their informer: objects from the API server need not carry it.
	bare := replicaObj("r2", "v", "n1", "running", "")
	bare.SetKind("")
	d.handler(kindReplica).OnAdd(bare, false)
	if loc, _ := d.Locate(context.Background(), pv("v")); len(loc.Replicas) != 1 || len(d.idx.byVolume["v"]) != 2 {
		t.Fatalf("after adding r2: %+v, index %v", loc, d.idx.byVolume["v"])
	}
	h := d.handler(kindReplica)
	h.OnDelete(cacheTombstone(replicaObj("r1", "v", "n1", "running", "")))
	h.OnDelete(bare)
	if loc, _ := d.Locate(context.Background(), pv("v")); len(loc.Replicas) != 0 {
		t.Errorf("after deletes: %+v", loc)
	}
}

func TestTrim(t *testing.T) {
	junk := func(u *unstructured.Unstructured) *unstructured.Unstructured {
		u.SetLabels(map[string]string{"longhornvolume": "v"})
		u.SetResourceVersion("42")
		u.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "longhorn-manager"}})
		u.Object["spec"].(map[string]any)["extra"] = "x"
		if disks, ok := u.Object["status"].(map[string]any)["diskStatus"].(map[string]any); ok {
			for _, d := range disks {
				d.(map[string]any)["scheduledReplica"] = map[string]any{"pvc-1-r-1": int64(1 << 30)}
			}
		}
		return u
	}
	cordoned := nodeObj("n2", "z", []any{cond("Ready", "True", ""), cond("Schedulable", "False", "cordoned")},
		map[string]any{"d1": disk(10, 5, cond("Ready", "False", "gone"))})
	cordoned.Object["spec"] = map[string]any{"allowScheduling": false}
	for _, tc := range []struct {
		kind string
		obj  *unstructured.Unstructured
	}{
		{kindNode, junk(healthyNode("n1", "z"))},
		{kindNode, junk(cordoned)},
		{kindReplica, junk(replicaObj("r1", "v", "n1", "running", "2026-01-01T00:00:00Z"))},
		{kindVolume, junk(object(kindVolume, "v", map[string]any{"spec": map[string]any{"size": "1Gi"}, "status": map[string]any{"robustness": "faulted"}}))},
	} {
		t.Run(tc.kind+"/"+tc.obj.GetName(), func(t *testing.T) {
			whole, cut := newDriver(tc.obj.DeepCopy()), newDriver()
			got, err := trim(tc.kind)(tc.obj.DeepCopy())
			if err != nil {
				t.Fatal(err)
			}
			u := got.(*unstructured.Unstructured)
			cut.Observe(u)
			if !reflect.DeepEqual(whole.idx.nodes, cut.idx.nodes) || !reflect.DeepEqual(whole.idx.replicas, cut.idx.replicas) ||
				!reflect.DeepEqual(whole.idx.robustness, cut.idx.robustness) {
				t.Errorf("the trimmed object reads differently:\n  %+v\n  %+v", whole.idx, cut.idx)
			}
			if u.GetName() != tc.obj.GetName() || u.GetNamespace() != ns || u.GetResourceVersion() != "42" || u.GetKind() != tc.kind {
				t.Errorf("trimmed metadata: %v", u.Object)
			}
			if u.GetLabels() != nil || u.GetManagedFields() != nil || field(u.Object, "spec", "extra") != nil ||
				field(u.Object, "spec", "size") != nil || field(u.Object, "status", "diskStatus", "d1", "scheduledReplica") != nil ||
				field(u.Object, "status", "diskStatus", "default-disk-1", "scheduledReplica") != nil {
				t.Errorf("trimmed object keeps unread fields: %v", u.Object)
			}
			again, _ := trim(tc.kind)(u.DeepCopy())
			if !reflect.DeepEqual(again, u) {
				t.Errorf("trim is not idempotent:\n  %v\n  %v", u.Object, again.(*unstructured.Unstructured).Object)
			}
		})
	}
	if got, _ := trim(kindNode)("not an object"); got != "not an object" {
		t.Errorf("trim of a non-object: %v", got)
	}
}

func cacheTombstone(o *unstructured.Unstructured) cache.DeletedFinalStateUnknown {
	return cache.DeletedFinalStateUnknown{Key: o.GetNamespace() + "/" + o.GetName(), Obj: o}
}

// BenchmarkLocate locates volumes among 20,000 volumes of 3 replicas each over 5,000 nodes.
func BenchmarkLocate(b *testing.B) {
	const nodes, volumes, copies = 5000, 20000, 3
	d := NewWithClient(nil, "", logr.Discard())
	for i := range nodes {
		d.Observe(healthyNode(fmt.Sprintf("node-%d", i), fmt.Sprintf("zone-%d", i%3)))
	}
	pvs := make([]drivers.Volume, volumes)
	for v := range volumes {
		name := fmt.Sprintf("pvc-%d", v)
		pvs[v] = pv(name)
		d.Observe(volumeObj(name, "healthy"))
		for c := range copies {
			d.Observe(replicaObj(fmt.Sprintf("%s-r-%d", name, c), name, fmt.Sprintf("node-%d", (v*copies+c)%nodes), "running", ""))
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		loc, err := d.Locate(ctx, pvs[i%volumes])
		if err != nil || len(loc.Replicas) != copies {
			b.Fatalf("Locate = %+v, %v", loc, err)
		}
		i++
	}
}
