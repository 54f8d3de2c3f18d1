package placement

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	fakeclient "sigs.k8s.io/controller-runtime/pkg/client/fake"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
	"stork.dev/stork/drivers/fake"
)

// testNodes: region r1 has zone-a (n1, n2 on rack-1; n3 on rack-2) and zone-b (n4, n5);
// region r2 has n6.
var testNodes = map[string]storkv1.Topology{
	"n1": {Region: "r1", Zone: "zone-a", Rack: "rack-1"},
	"n2": {Region: "r1", Zone: "zone-a", Rack: "rack-1"},
	"n3": {Region: "r1", Zone: "zone-a", Rack: "rack-2"},
	"n4": {Region: "r1", Zone: "zone-b", Rack: "rack-1"},
	"n5": {Region: "r1", Zone: "zone-b", Rack: "rack-2"},
	"n6": {Region: "r2", Zone: "zone-c", Rack: "rack-1"},
}

var allNodes = []string{"n1", "n2", "n3", "n4", "n5", "n6"}

// world is a fake driver, its View and a cache holding claims "c-<pv>" bound to fake volumes.
type world struct {
	d   *fake.Driver
	ext *Extender
	rec *eventLog
}

func newWorld(t *testing.T, health map[string]storkv1.StorageHealth, replicas map[string][]string) *world {
	t.Helper()
	d := fake.New(1)
	for n, topo := range testNodes {
		h := storkv1.StorageHealthy
		if hh, ok := health[n]; ok {
			h = hh
		}
		d.SetNode(drivers.StorageNode{Node: n, Topology: topo, Health: h})
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	var objs []client.Object
	for pv, nodes := range replicas {
		d.SetReplicas(pv, nodes...)
		objs = append(objs,
			&corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: pv}, Spec: corev1.PersistentVolumeSpec{
				PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: fake.Name, VolumeHandle: pv}}}},
			&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "c-" + pv}, Spec: corev1.PersistentVolumeClaimSpec{VolumeName: pv}})
	}
	objs = append(objs, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "unbound"},
		Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To("fast")}})
	// A claim not bound yet, with a volume reserved for it by name (as failover leaves it).
	d.SetReplicas("reserved", "n3")
	objs = append(objs, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "waiting"}},
		&corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "reserved"}, Spec: corev1.PersistentVolumeSpec{
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: fake.Name, VolumeHandle: "reserved"}},
			ClaimRef:               &corev1.ObjectReference{Namespace: "app", Name: "waiting"},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{"n3"}}}}}}}}})
	c := fakeclient.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
		WithIndex(&corev1.PersistentVolume{}, IndexPreboundClaim, PreboundClaim).Build()
	set := drivers.NewSet(d)
	view := NewView(set, logr.Discard())
	for n, topo := range testNodes {
		view.SetNode(n, map[string]string{storkv1.LabelRegion: topo.Region, storkv1.LabelZone: topo.Zone, storkv1.LabelRack: topo.Rack})
	}
	view.Refresh(context.Background())
	rec := &eventLog{}
	return &world{d: d, rec: rec, ext: &Extender{View: view, Volumes: &Volumes{Reader: c, Drivers: set}, Recorder: rec, Log: logr.Discard()}}
}

func podWith(annotations map[string]string, claims ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "p", Annotations: annotations}}
	for _, c := range claims {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: c,
			VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c}}})
	}
	return p
}

func argsFor(pod *corev1.Pod) *extenderv1.ExtenderArgs {
	names := append([]string(nil), allNodes...)
	return &extenderv1.ExtenderArgs{Pod: pod, NodeNames: &names}
}

func TestPrioritize(t *testing.T) {
	cases := []struct {
		name     string
		health   map[string]storkv1.StorageHealth
		replicas map[string][]string
		pod      *corev1.Pod
		want     map[string]int64
		event    bool
	}{
		{name: "replica node, then rack, zone, region, elsewhere: each level strictly above the next", replicas: map[string][]string{"v1": {"n1"}}, pod: podWith(nil, "c-v1"),
			want: map[string]int64{"n1": 10, "n2": 3, "n3": 2, "n4": 1, "n5": 1, "n6": 0}},
		{name: "a degraded copy on the node halves its points", health: map[string]storkv1.StorageHealth{"n1": storkv1.StorageDegraded},
			replicas: map[string][]string{"v1": {"n1", "n3"}}, pod: podWith(nil, "c-v1"),
			want: map[string]int64{"n3": 10, "n1": 3, "n2": 2, "n4": 1, "n5": 1, "n6": 0}},
		{name: "the best replica counts", replicas: map[string][]string{"v1": {"n3", "n4"}}, pod: podWith(nil, "c-v1"),
			want: map[string]int64{"n1": 3, "n2": 3, "n3": 10, "n4": 10, "n5": 3, "n6": 2}},
		{name: "a down replica counts for nothing", health: map[string]storkv1.StorageHealth{"n4": storkv1.StorageDown},
			replicas: map[string][]string{"v1": {"n3", "n4"}}, pod: podWith(nil, "c-v1"),
			want: map[string]int64{"n1": 3, "n2": 3, "n3": 10, "n4": 2, "n5": 2, "n6": 1}},
		{name: "volumes held first, then the sum of points", replicas: map[string][]string{"v1": {"n1"}, "v2": {"n4"}}, pod: podWith(nil, "c-v1", "c-v2"),
			want: map[string]int64{"n1": 10, "n2": 3, "n3": 2, "n4": 10, "n5": 2, "n6": 1}, event: true},
		{name: "a node holding more of the volumes beats one holding fewer, however close", replicas: map[string][]string{"v1": {"n1"}, "v2": {"n1"}, "v3": {"n4"}},
			pod: podWith(nil, "c-v1", "c-v2", "c-v3"), want: map[string]int64{"n1": 10, "n4": 3, "n2": 2, "n3": 1, "n5": 0, "n6": 0}, event: true},
		{name: "opted out", replicas: map[string][]string{"v1": {"n1"}}, pod: podWith(map[string]string{AnnotationPlacement: PlacementSkip}, "c-v1"),
			want: map[string]int64{"n1": 0, "n2": 0, "n3": 0, "n4": 0, "n5": 0, "n6": 0}},
		{name: "unbound and missing claims say nothing", pod: podWith(nil, "unbound", "missing"),
			want: map[string]int64{"n1": 0, "n2": 0, "n3": 0, "n4": 0, "n5": 0, "n6": 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.health, tc.replicas)
			got, err := w.ext.Prioritize(context.Background(), argsFor(tc.pod))
			if err != nil {
				t.Fatal(err)
			}
			scores := map[string]int64{}
			for _, h := range *got {
				scores[h.Host] = h.Score
			}
			for n, want := range tc.want {
				if scores[n] != want {
					t.Errorf("%s scored %d, want %d (all: %v)", n, scores[n], want, scores)
				}
			}
			events := w.rec.take()
			if gotEvent := slices.Contains(events, "NoDataLocalNode p"); gotEvent != tc.event {
				t.Errorf("NoDataLocalNode event: %v, want %v (%v)", gotEvent, tc.event, events)
			}
		})
	}
}

// TestPrioritizeRackFromNodeLabels: a driver that reports zones but not racks (Longhorn) still
// gets the same-rack score, from the Node labels.
func TestPrioritizeRackFromNodeLabels(t *testing.T) {
	w := newWorld(t, nil, map[string][]string{"v1": {"n1"}})
	w.d.SetNode(drivers.StorageNode{Node: "n1", Topology: storkv1.Topology{Region: "r1", Zone: "zone-a"}, Health: storkv1.StorageHealthy})
	w.ext.View.Refresh(context.Background())
	got, err := w.ext.Prioritize(context.Background(), argsFor(podWith(nil, "c-v1")))
	if err != nil {
		t.Fatal(err)
	}
	scores := map[string]int64{}
	for _, h := range *got {
		scores[h.Host] = h.Score
	}
	if scores["n2"] != 3 || scores["n3"] != 2 {
		t.Errorf("scores %v: want n2 (same rack by its labels) 3 and n3 (same zone) 2", scores)
	}
}

func TestFilter(t *testing.T) {
	cases := []struct {
		name     string
		health   map[string]storkv1.StorageHealth
		replicas map[string][]string
		pod      *corev1.Pod
		pass     []string
		failed   map[string]string // node → part of the reason
	}{
		{name: "nodes whose storage is down or unknown are removed",
			health:   map[string]storkv1.StorageHealth{"n2": storkv1.StorageDown, "n5": storkv1.StorageUnknown},
			replicas: map[string][]string{"v1": {"n1", "n2"}}, pod: podWith(nil, "c-v1"),
			pass: []string{"n1", "n3", "n4", "n6"}, failed: map[string]string{"n2": "is Down", "n5": "is Unknown"}},
		{name: "degraded storage stays", health: map[string]storkv1.StorageHealth{"n2": storkv1.StorageDegraded},
			replicas: map[string][]string{"v1": {"n1"}}, pod: podWith(nil, "c-v1"), pass: allNodes},
		{name: "require-local keeps only nodes with a usable copy", health: map[string]storkv1.StorageHealth{"n4": storkv1.StorageDown},
			replicas: map[string][]string{"v1": {"n1", "n4"}}, pod: podWith(map[string]string{AnnotationPlacement: PlacementRequireLocal}, "c-v1"),
			pass: []string{"n1"}, failed: map[string]string{"n2": "holds no usable copy of claim c-v1", "n4": "is Down"}},
		{name: "no usable copy anywhere fails the pod with where the copies are",
			health:   map[string]storkv1.StorageHealth{"n1": storkv1.StorageDown, "n4": storkv1.StorageDown},
			replicas: map[string][]string{"v1": {"n1", "n4"}}, pod: podWith(nil, "c-v1"),
			pass: []string{}, failed: map[string]string{"n1": "claim app/c-v1 has no usable copy of its data (n1 (storage Down), n4 (storage Down))",
				"n3": "claim app/c-v1 has no usable copy"}},
		{name: "a claim waiting for its reserved local volume may only go where that volume is",
			pod: podWith(nil, "waiting"), pass: []string{"n3"}, failed: map[string]string{"n1": "would get a new, empty volume here"}},
		{name: "pods without Stork volumes pass everywhere", health: map[string]storkv1.StorageHealth{"n1": storkv1.StorageDown},
			pod: podWith(nil), pass: allNodes},
		{name: "opted out pods pass everywhere", health: map[string]storkv1.StorageHealth{"n1": storkv1.StorageDown},
			replicas: map[string][]string{"v1": {"n1"}}, pod: podWith(map[string]string{AnnotationPlacement: PlacementSkip}, "c-v1"), pass: allNodes},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.health, tc.replicas)
			res, err := w.ext.Filter(context.Background(), argsFor(tc.pod))
			if err != nil {
				t.Fatal(err)
			}
			if res.Error != "" {
				t.Fatalf("unexpected error %q", res.Error)
			}
			if strings.Join(*res.NodeNames, ",") != strings.Join(tc.pass, ",") {
				t.Errorf("passing nodes %v, want %v (failed: %v)", *res.NodeNames, tc.pass, res.FailedAndUnresolvableNodes)
			}
			for n, why := range tc.failed {
				if !strings.Contains(res.FailedAndUnresolvableNodes[n], why) {
					t.Errorf("node %s failed with %q, want it to contain %q", n, res.FailedAndUnresolvableNodes[n], why)
				}
			}
		})
	}
}

// TestHandler speaks the wire protocol: JSON without tags, as kube-scheduler sends it, in both
// shapes (node names, and whole Nodes when the extender is not nodeCacheCapable).
func TestHandler(t *testing.T) {
	w := newWorld(t, map[string]storkv1.StorageHealth{"n2": storkv1.StorageDown}, map[string][]string{"v1": {"n1"}})
	srv := httptest.NewServer(w.ext.Handler())
	defer srv.Close()
	post := func(path string, body any) *http.Response {
		t.Helper()
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(srv.URL+path, "application/json", bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	var filtered extenderv1.ExtenderFilterResult
	if err := json.NewDecoder(post(FilterPath, argsFor(podWith(nil, "c-v1"))).Body).Decode(&filtered); err != nil {
		t.Fatal(err)
	}
	if filtered.NodeNames == nil || len(*filtered.NodeNames) != 5 || filtered.FailedAndUnresolvableNodes["n2"] == "" {
		t.Errorf("filter by names: %+v", filtered)
	}
	nodes := &corev1.NodeList{}
	for _, n := range []string{"n1", "n2", "n3"} {
		nodes.Items = append(nodes.Items, corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}})
	}
	filtered = extenderv1.ExtenderFilterResult{}
	if err := json.NewDecoder(post(FilterPath, &extenderv1.ExtenderArgs{Pod: podWith(nil, "c-v1"), Nodes: nodes}).Body).Decode(&filtered); err != nil {
		t.Fatal(err)
	}
	if filtered.Nodes == nil || len(filtered.Nodes.Items) != 2 || filtered.Nodes.Items[0].Name != "n1" || filtered.Nodes.Items[1].Name != "n3" {
		t.Errorf("filter by Nodes: %+v", filtered.Nodes)
	}
	var prios extenderv1.HostPriorityList
	if err := json.NewDecoder(post(PrioritizePath, argsFor(podWith(nil, "c-v1"))).Body).Decode(&prios); err != nil {
		t.Fatal(err)
	}
	if len(prios) != 6 || prios[0].Host != "n1" || prios[0].Score != 10 {
		t.Errorf("prioritize: %+v", prios)
	}
	for _, bad := range []any{"not args", map[string]any{"NodeNames": []string{"n1"}}} {
		if resp := post(FilterPath, bad); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("body %v: status %d, want 400", bad, resp.StatusCode)
		}
	}
}

// TestWire checks the hand-written JSON against encoding/json: decoding what it encodes gives
// the same ExtenderArgs, and the answers decode to what was encoded.
func TestWire(t *testing.T) {
	names := []string{"n1", "node-2.example", `odd"name\with<escapes>`, "ünïcode"}
	pod := podWith(map[string]string{"a": "b"}, "c1")
	bodies := map[string]any{
		"names":              &extenderv1.ExtenderArgs{Pod: pod, NodeNames: &names},
		"nodes":              &extenderv1.ExtenderArgs{Pod: pod, Nodes: &corev1.NodeList{Items: []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}}}},
		"lower-case, extras": map[string]any{"pod": pod, "nodenames": names, "Other": []int{1, 2}},
		"null names":         map[string]any{"Pod": pod, "NodeNames": nil},
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			data, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			var want, got extenderv1.ExtenderArgs
			if err := json.Unmarshal(data, &want); err != nil {
				t.Fatal(err)
			}
			if err := decodeArgs(bytes.NewReader(data), &got, &scratch{}); err != nil {
				t.Fatal(err)
			}
			wantJSON, _ := json.Marshal(want)
			gotJSON, _ := json.Marshal(got)
			if string(wantJSON) != string(gotJSON) {
				t.Errorf("decoded\n%s\nwant\n%s", gotJSON, wantJSON)
			}
		})
	}
	for _, bad := range []string{`[]`, `{"NodeNames": "n1"}`, `{"NodeNames": [1]}`, `{"Pod": `} {
		if err := decodeArgs(strings.NewReader(bad), &extenderv1.ExtenderArgs{}, &scratch{}); err == nil {
			t.Errorf("%s: decoded without error", bad)
		}
	}
	res := &extenderv1.ExtenderFilterResult{NodeNames: &names, FailedNodes: extenderv1.FailedNodesMap{"n9": `down: "disk" <gone>`},
		FailedAndUnresolvableNodes: extenderv1.FailedNodesMap{"n8": "gone\nfor good"}, Error: "x"}
	data, err := appendFilterResult(nil, res)
	if err != nil {
		t.Fatal(err)
	}
	var back extenderv1.ExtenderFilterResult
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
	if strings.Join(*back.NodeNames, "|") != strings.Join(names, "|") || back.FailedNodes["n9"] != res.FailedNodes["n9"] ||
		back.FailedAndUnresolvableNodes["n8"] != res.FailedAndUnresolvableNodes["n8"] || back.Error != "x" || back.Nodes != nil {
		t.Errorf("filter result round trip: %+v", back)
	}
	prios := extenderv1.HostPriorityList{{Host: "n1", Score: 10}, {Host: names[2], Score: 0}}
	var backPrios extenderv1.HostPriorityList
	if err := json.Unmarshal(appendPriorities(nil, &prios), &backPrios); err != nil || len(backPrios) != 2 || backPrios[1] != prios[1] || backPrios[0] != prios[0] {
		t.Errorf("priorities round trip: %v %+v", err, backPrios)
	}
}

// TestRankScores: distinct keys score 10, 3, 2, 1, then 0; equal keys score the same.
func TestRankScores(t *testing.T) {
	keys := []int64{7, 100, 3, 100, 50, 1, 0, 20, 2}
	out := make(extenderv1.HostPriorityList, len(keys))
	rankScores(out, keys, nil)
	want := []int64{1, 10, 0, 10, 3, 0, 0, 2, 0}
	for i := range keys {
		if out[i].Score != want[i] {
			t.Errorf("key %d scored %d, want %d", keys[i], out[i].Score, want[i])
		}
	}
}
