package placement

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	fakeclient "sigs.k8s.io/controller-runtime/pkg/client/fake"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
	"stork.dev/stork/drivers/fake"
)

// Note on evictions: the controller-runtime fake client implements the pods/eviction
// subresource by deleting the pod, and knows nothing of PodDisruptionBudgets. These tests
// therefore check which pods the monitor asks to evict, not that budgets hold: PDBs (the 429
// path) are covered by the e2e tests against a real API server.

// eventLog is an events.EventRecorder that keeps "<reason> <regarding object's name>".
type eventLog struct {
	mu     sync.Mutex
	events []string
}

var _ events.EventRecorder = (*eventLog)(nil)

func (l *eventLog) Eventf(regarding, _ runtime.Object, _, reason, _, _ string, _ ...any) {
	name := ""
	if o, ok := regarding.(client.Object); ok {
		name = o.GetName()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, reason+" "+name)
}

// take returns the events recorded since the last take, sorted, and forgets them.
func (l *eventLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.events
	l.events = nil
	sort.Strings(out)
	return out
}

// monScheme knows Kubernetes' types and Stork's.
func monScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := storkv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

const (
	monNS        = "app"
	monProbation = 2 * time.Minute
	monBatch     = 30 * time.Second
	// monLocalUID is the UID of claim c-local (failover names derive from it).
	monLocalUID = "0123abcd-0000-4000-8000-000000000001"
)

// monEnv is a monitor over the fake driver with three storage nodes n1..n3 and claims in
// namespace app: c-rep (replicas on n1 and n2), c-local (its only replica on n1) and c-other (a
// volume of another CSI driver).
type monEnv struct {
	t    *testing.T
	ctx  context.Context
	d    *fake.Driver
	view *View
	c    client.Client
	m    *Monitor
	ev   *eventLog
	// t0 is the start of the test's clock; now is the monitor's clock.
	t0, now time.Time
	// health and lastSeen of each storage node, pushed to the driver by sync.
	health   map[string]storkv1.StorageHealth
	lastSeen time.Time
}

func monClaim(name, pv string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: monNS, Name: name, UID: types.UID("uid-0000-" + name)},
		Spec:       corev1.PersistentVolumeClaimSpec{VolumeName: pv},
		Status:     corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound},
	}
}

// monPod is a pod on node using claims; owned pods have a ReplicaSet as their controller.
func monPod(name, node string, owned bool, claims ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: monNS, Name: name},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	if owned {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5d8f", UID: "rs-uid", Controller: ptr.To(true)}}
	}
	for _, c := range claims {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: c,
			VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c}}})
	}
	return p
}

func newMonEnv(t *testing.T, objs ...client.Object) *monEnv {
	t.Helper()
	d := fake.New(1)
	d.SetReplicas("pv-rep", "n1", "n2")
	d.SetReplicas("pv-local", "n1")
	other := fake.PV("pv-other", 1<<30)
	other.Spec.CSI.Driver = "other.csi.example.com"
	local := monClaim("c-local", "pv-local")
	local.UID = monLocalUID
	base := []client.Object{
		fake.PV("pv-rep", 1<<30), fake.PV("pv-local", 1<<30), other,
		monClaim("c-rep", "pv-rep"), local, monClaim("c-other", "pv-other"),
	}
	c := fakeclient.NewClientBuilder().WithScheme(monScheme(t)).
		WithObjects(append(base, objs...)...).
		WithIndex(&corev1.Pod{}, "spec.nodeName", func(o client.Object) []string { return []string{o.(*corev1.Pod).Spec.NodeName} }).
		WithStatusSubresource(&storkv1.Restore{}).
		Build()
	set := drivers.NewSet(d)
	view := NewView(set, logr.Discard())
	for _, n := range []string{"n1", "n2", "n3"} {
		view.SetNode(n, map[string]string{storkv1.LabelZone: "zone-a"})
	}
	// View.Refresh stamps its refreshes with the real clock, so the monitor's clock starts at
	// the real now and the tests stay well within StaleAfter of it.
	t0 := time.Now()
	e := &monEnv{t: t, ctx: context.Background(), d: d, view: view, c: c, ev: &eventLog{}, t0: t0, now: t0,
		health: map[string]storkv1.StorageHealth{"n1": storkv1.StorageHealthy, "n2": storkv1.StorageHealthy, "n3": storkv1.StorageHealthy}}
	e.m = &Monitor{
		Client: c, Reader: c, View: view, Volumes: &Volumes{Reader: c, Drivers: set}, Recorder: e.ev, Log: logr.Discard(),
		Probation: monProbation, BatchSize: 5, BatchInterval: monBatch, StaleAfter: time.Hour,
		Now: func() time.Time { return e.now },
	}
	e.sync()
	return e
}

// sync pushes the nodes' health and heartbeats to the driver and refreshes the View.
func (e *monEnv) sync() {
	for n, h := range e.health {
		e.d.SetNode(drivers.StorageNode{Node: n, Topology: storkv1.Topology{Zone: "zone-a"}, Health: h, LastSeen: e.lastSeen})
	}
	e.view.Refresh(e.ctx)
}

// set changes the health of storage nodes and refreshes the View.
func (e *monEnv) set(h storkv1.StorageHealth, nodes ...string) {
	for _, n := range nodes {
		e.health[n] = h
	}
	e.sync()
}

// check runs one check at t0+at.
func (e *monEnv) check(at time.Duration) {
	e.t.Helper()
	e.now = e.t0.Add(at)
	if err := e.m.Check(e.ctx); err != nil {
		e.t.Fatalf("check at t0+%s: %v", at, err)
	}
}

// pods returns the names of the pods that exist, sorted.
func (e *monEnv) pods() []string {
	e.t.Helper()
	var list corev1.PodList
	if err := e.c.List(e.ctx, &list); err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, p := range list.Items {
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return out
}

func (e *monEnv) expect(step string, pods, evs []string) {
	e.t.Helper()
	if got := e.pods(); !slices.Equal(got, pods) {
		e.t.Errorf("%s: pods %v, want %v", step, got, pods)
	}
	sort.Strings(evs)
	if got := e.ev.take(); !slices.Equal(got, evs) {
		e.t.Errorf("%s: events %q, want %q", step, got, evs)
	}
}

func podNames(pods ...*corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return out
}

// TestMonitorEvictsAfterProbation: storage of n1 goes down; nothing moves during probation,
// then the monitor evicts the pods that a move helps and says why it leaves the others.
func TestMonitorEvictsAfterProbation(t *testing.T) {
	finished := monPod("done", "n1", true, "c-rep")
	finished.Status.Phase = corev1.PodSucceeded
	cases := []struct {
		name string
		pods []*corev1.Pod
		// left are the pods that exist after probation; events are recorded then.
		left   []string
		events []string
	}{
		{name: "a ReplicaSet's pod with a healthy copy on n2 is evicted",
			pods: []*corev1.Pod{monPod("web", "n1", true, "c-rep")},
			left: nil, events: []string{"Evicted web", "PodEvicted n1"}},
		{name: "a pod without a controller is not evicted",
			pods: []*corev1.Pod{monPod("bare", "n1", false, "c-rep")},
			left: []string{"bare"}, events: []string{"NotEvicted bare"}},
		{name: "a claim whose only copy is on the down node, without failover",
			pods: []*corev1.Pod{monPod("db", "n1", true, "c-local")},
			left: []string{"db"}, events: []string{"NotEvicted db"}},
		{name: "one claim without a usable copy keeps the pod",
			pods: []*corev1.Pod{monPod("mixed", "n1", true, "c-rep", "c-local")},
			left: []string{"mixed"}, events: []string{"NotEvicted mixed"}},
		{name: "pods that do not use the driver's volumes stay",
			pods: []*corev1.Pod{
				monPod("no-claims", "n1", true),
				monPod("other-driver", "n1", true, "c-other"),
				monPod("missing-claim", "n1", true, "c-missing"),
			},
			left: []string{"missing-claim", "no-claims", "other-driver"}},
		{name: "pods on healthy nodes and finished pods stay",
			pods: []*corev1.Pod{monPod("on-n2", "n2", true, "c-rep"), monPod("pending", "", true, "c-rep"), finished},
			left: []string{"done", "on-n2", "pending"}},
		{name: "only the movable pods of a node are evicted",
			pods: []*corev1.Pod{monPod("web", "n1", true, "c-rep"), monPod("bare", "n1", false, "c-rep"), monPod("db", "n1", true, "c-local"), monPod("on-n2", "n2", true, "c-rep")},
			left: []string{"bare", "db", "on-n2"}, events: []string{"Evicted web", "PodEvicted n1", "NotEvicted bare", "NotEvicted db"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var objs []client.Object
			for _, p := range tc.pods {
				objs = append(objs, p)
			}
			e := newMonEnv(t, objs...)
			all := podNames(tc.pods...)
			e.check(0)
			e.expect("all healthy", all, nil)
			e.set(storkv1.StorageDown, "n1")
			e.check(time.Second) // n1 first seen down
			e.expect("just down", all, nil)
			e.check(monProbation) // a second short of probation
			e.expect("end of probation", all, nil)
			e.check(monProbation + 2*time.Second)
			e.expect("after probation", tc.left, tc.events)
		})
	}
}

// TestMonitorUnknownStorageCountsAsDown: Unknown health moves pods like Down; Degraded does not.
func TestMonitorUnknownStorageCountsAsDown(t *testing.T) {
	for _, tc := range []struct {
		health storkv1.StorageHealth
		left   []string
	}{
		{storkv1.StorageUnknown, nil},
		{storkv1.StorageDegraded, []string{"web"}},
	} {
		t.Run(string(tc.health), func(t *testing.T) {
			e := newMonEnv(t, monPod("web", "n1", true, "c-rep"))
			e.set(tc.health, "n1")
			e.check(0)
			e.check(monProbation + time.Second)
			if got := e.pods(); !slices.Equal(got, tc.left) {
				t.Errorf("pods %v, want %v", got, tc.left)
			}
		})
	}
}

// TestMonitorPauses: the monitor acts on nothing while it suspects a partition or its view is
// stale, and a node's probation starts only once it can trust what it sees again.
func TestMonitorPauses(t *testing.T) {
	cases := []struct {
		name string
		// setup breaks the view (n1 is down in every case), heal repairs it.
		setup, heal func(e *monEnv)
		evicts      bool
	}{
		{name: "control: one of three nodes down", evicts: true,
			setup: func(e *monEnv) {}, heal: func(e *monEnv) {}},
		{name: "two of three nodes down: partition suspected",
			setup: func(e *monEnv) { e.set(storkv1.StorageDown, "n3") },
			heal:  func(e *monEnv) { e.set(storkv1.StorageHealthy, "n3") }},
		{name: "no storage node heard from within StaleAfter",
			setup: func(e *monEnv) { e.lastSeen = e.t0.Add(-2 * time.Hour); e.sync() },
			heal:  func(e *monEnv) { e.lastSeen = e.now; e.sync() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newMonEnv(t, monPod("web", "n1", true, "c-rep"))
			e.lastSeen = e.t0
			e.set(storkv1.StorageDown, "n1")
			tc.setup(e)
			e.check(0)
			e.check(monProbation + time.Second)
			e.check(2*monProbation + time.Second)
			if tc.evicts {
				e.expect("after probation", nil, []string{"Evicted web", "PodEvicted n1"})
				return
			}
			e.expect("paused", []string{"web"}, nil)
			// Once the view is trustworthy again, n1's probation starts afresh.
			e.now = e.t0.Add(3 * monProbation)
			tc.heal(e)
			e.check(3 * monProbation)
			e.check(4*monProbation - time.Second)
			e.expect("probation after the pause", []string{"web"}, nil)
			e.check(4*monProbation + time.Second)
			e.expect("after probation", nil, []string{"Evicted web", "PodEvicted n1"})
		})
	}
}

// TestMonitorWithoutRefresh: a View that never refreshed is stale.
func TestMonitorWithoutRefresh(t *testing.T) {
	e := newMonEnv(t, monPod("web", "n1", true, "c-rep"))
	e.set(storkv1.StorageDown, "n1")
	e.view.storage.Store(nil) // as if the View had never refreshed
	e.check(0)
	e.check(monProbation + time.Second)
	e.expect("never refreshed", []string{"web"}, nil)
}

// TestMonitorBatches: BatchSize pods at a time, BatchInterval apart.
func TestMonitorBatches(t *testing.T) {
	var objs []client.Object
	var all []string
	for _, n := range []string{"p1", "p2", "p3", "p4", "p5", "p6", "p7"} {
		objs = append(objs, monPod(n, "n1", true, "c-rep"))
		all = append(all, n)
	}
	e := newMonEnv(t, objs...)
	e.set(storkv1.StorageDown, "n1")
	e.check(0)
	e.expect("probation", all, nil)

	due := monProbation + time.Second
	e.check(due)
	if got := e.pods(); len(got) != 2 {
		t.Fatalf("first batch left %v, want 2 pods", got)
	}
	if evs := e.ev.take(); countPrefixed(evs, "Evicted ") != 5 {
		t.Errorf("first batch: events %q, want 5 evictions", evs)
	}
	left := e.pods()
	e.check(due + time.Second)
	e.expect("1s later", left, nil)
	e.check(due + monBatch - time.Second)
	e.expect("just before the interval", left, nil)
	e.check(due + monBatch)
	e.expect("after the interval", nil, []string{"Evicted " + left[0], "Evicted " + left[1], "PodEvicted n1", "PodEvicted n1"})
}

// countPrefixed counts the strings with a prefix.
func countPrefixed(ss []string, prefix string) int {
	n := 0
	for _, s := range ss {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// TestMonitorNotEvictedPodsDoNotUseTheBatch: pods the monitor cannot move do not count against
// BatchSize, nor start the interval.
func TestMonitorNotEvictedPodsDoNotUseTheBatch(t *testing.T) {
	objs := []client.Object{monPod("a-bare", "n1", false, "c-rep"), monPod("b-db", "n1", true, "c-local")}
	for _, n := range []string{"p1", "p2", "p3", "p4", "p5"} {
		objs = append(objs, monPod(n, "n1", true, "c-rep"))
	}
	e := newMonEnv(t, objs...)
	e.set(storkv1.StorageDown, "n1")
	e.check(0)
	e.check(monProbation + time.Second)
	if got := e.pods(); !slices.Equal(got, []string{"a-bare", "b-db"}) {
		t.Errorf("pods %v, want the five movable ones evicted in one batch", got)
	}
}

// TestMonitorRecoveryDuringProbation: storage that comes back during probation moves nothing,
// and going down again restarts probation.
func TestMonitorRecoveryDuringProbation(t *testing.T) {
	e := newMonEnv(t, monPod("web", "n1", true, "c-rep"))
	e.set(storkv1.StorageDown, "n1")
	e.check(0)
	e.set(storkv1.StorageHealthy, "n1")
	e.check(30 * time.Second)
	e.check(monProbation + time.Second)
	e.expect("recovered", []string{"web"}, nil)

	e.set(storkv1.StorageDown, "n1")
	down := monProbation + 2*time.Second
	e.check(down)
	e.check(monProbation + 30*time.Second)
	e.check(down + monProbation - time.Second)
	e.expect("down again, in the new probation", []string{"web"}, nil)
	e.check(down + monProbation + time.Second)
	e.expect("after the new probation", nil, []string{"Evicted web", "PodEvicted n1"})
}

// TestMonitorForgetsRemovedNodes: a storage node the driver no longer reports loses its record.
func TestMonitorForgetsRemovedNodes(t *testing.T) {
	e := newMonEnv(t)
	e.set(storkv1.StorageDown, "n1")
	e.check(0)
	if _, ok := e.m.downSince[fake.Name]["n1"]; !ok {
		t.Fatalf("n1 not recorded down: %v", e.m.downSince)
	}
	delete(e.health, "n1")
	e.d = fake.New(1) // a driver without n1
	e.view.Drivers = drivers.NewSet(e.d)
	e.sync()
	e.check(time.Second)
	if _, ok := e.m.downSince[fake.Name]["n1"]; ok {
		t.Errorf("n1 still recorded down after the driver dropped it: %v", e.m.downSince)
	}
}

// TestMonitorFailover: a claim whose only copy is on the down node, opted into failover, is
// restored elsewhere before its pod moves: the pod stays while the Restore runs and is evicted
// once the claim is repointed.
func TestMonitorFailover(t *testing.T) {
	backup := &storkv1.Backup{
		ObjectMeta: metav1.ObjectMeta{Namespace: monNS, Name: "nightly"},
		Spec:       storkv1.BackupSpec{BackupLocation: "s3"},
		Status: storkv1.BackupStatus{Phase: storkv1.BackupCompleted, Volumes: []storkv1.BackupVolume{
			{ClaimName: "c-local", Phase: storkv1.VolumeSucceeded, RepositorySnapshotID: "repo-1"}}},
	}
	cases := []struct {
		name   string
		objs   []client.Object
		phase  string // the failover phase the Restore is moved to after the first check
		left   []string
		events []string // at the second check
	}{
		{name: "restoring: the pod waits", objs: []client.Object{backup}, phase: FailoverRestoring,
			left: []string{"db"}},
		{name: "repointed: the pod is evicted", objs: []client.Object{backup}, phase: FailoverRepointing,
			events: []string{"Evicted db", "PodEvicted n1"}},
		{name: "failed: the pod stays and says why", objs: []client.Object{backup}, phase: FailoverFailed,
			left: []string{"db"}, events: []string{"NotEvicted db"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newMonEnv(t, append(tc.objs, monPod("db", "n1", true, "c-local"))...)
			e.m.Failover = &Failover{Client: e.c, Reader: e.c, Recorder: e.ev, Log: logr.Discard()}
			claim := &corev1.PersistentVolumeClaim{}
			if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: monNS, Name: "c-local"}, claim); err != nil {
				t.Fatal(err)
			}
			claim.Annotations = map[string]string{AnnotationFailover: "true"}
			if err := e.c.Update(e.ctx, claim); err != nil {
				t.Fatal(err)
			}
			e.set(storkv1.StorageDown, "n1")
			e.check(0)
			e.check(monProbation + time.Second)
			e.expect("failover started", []string{"db"}, []string{"FailoverStarted c-local"})

			var list storkv1.RestoreList
			if err := e.c.List(e.ctx, &list, client.MatchingLabels{LabelFailoverOf: monLocalUID}); err != nil {
				t.Fatal(err)
			}
			if len(list.Items) != 1 {
				t.Fatalf("%d failover Restores, want 1", len(list.Items))
			}
			rs := &list.Items[0]
			orig := rs.DeepCopy()
			rs.Annotations[AnnotationFailoverPhase] = tc.phase
			if err := e.c.Patch(e.ctx, rs, client.MergeFrom(orig)); err != nil {
				t.Fatal(err)
			}
			e.check(monProbation + time.Second + monBatch)
			e.expect("phase "+tc.phase, tc.left, tc.events)
		})
	}
}

// TestMonitorFailoverImpossible: opted in, but no backup holds the claim: the pod stays, and both
// the claim (no backup) and the pod (no usable copy) say so.
func TestMonitorFailoverImpossible(t *testing.T) {
	e := newMonEnv(t, monPod("db", "n1", true, "c-local"))
	e.m.Failover = &Failover{Client: e.c, Reader: e.c, Recorder: e.ev, Log: logr.Discard()}
	claim := &corev1.PersistentVolumeClaim{}
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: monNS, Name: "c-local"}, claim); err != nil {
		t.Fatal(err)
	}
	claim.Annotations = map[string]string{AnnotationFailover: "true"}
	if err := e.c.Update(e.ctx, claim); err != nil {
		t.Fatal(err)
	}
	e.set(storkv1.StorageDown, "n1")
	e.check(0)
	e.check(monProbation + time.Second)
	e.expect("no backup", []string{"db"}, []string{"FailoverImpossible c-local", "NotEvicted db"})
}
