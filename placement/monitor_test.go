package placement

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	fakeclient "sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
	"stork.dev/stork/drivers/fake"
)

// Note on evictions: the controller-runtime fake client implements the pods/eviction
// subresource by deleting the pod, and knows nothing of PodDisruptionBudgets. The tests that
// need a budget's refusal (429) have an interceptor answer it instead.

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

// podNodeName is the spec.nodeName field index the monitor lists a node's pods with.
func podNodeName(o client.Object) []string { return []string{o.(*corev1.Pod).Spec.NodeName} }

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

// monPod is a pod on node using claims; owned pods have a ReplicaSet as their controller. Its
// UID derives from its name (the monitor reports once per pod UID).
func monPod(name, node string, owned bool, claims ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: monNS, Name: name, UID: types.UID("pod-uid-" + name)},
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
	return newMonEnvWith(t, interceptor.Funcs{}, objs...)
}

// newMonEnvWith is newMonEnv with a client whose calls funcs may intercept.
func newMonEnvWith(t *testing.T, funcs interceptor.Funcs, objs ...client.Object) *monEnv {
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
		WithIndex(&corev1.Pod{}, "spec.nodeName", podNodeName).
		WithIndex(&corev1.PersistentVolume{}, IndexPreboundClaim, PreboundClaim).
		WithStatusSubresource(&storkv1.Restore{}).
		WithInterceptorFuncs(funcs).
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

// optIn opts claim c-local into failover.
func (e *monEnv) optIn() {
	e.t.Helper()
	claim := &corev1.PersistentVolumeClaim{}
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: monNS, Name: "c-local"}, claim); err != nil {
		e.t.Fatal(err)
	}
	claim.Annotations = map[string]string{AnnotationFailover: "true"}
	if err := e.c.Update(e.ctx, claim); err != nil {
		e.t.Fatal(err)
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

// evictions is the monitor's count of a result for the fake driver.
func evictions(result string) float64 {
	return testutil.ToFloat64(monitorEvictions.WithLabelValues(fake.Name, result))
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
		{name: "each pod not evicted is reported",
			pods: []*corev1.Pod{monPod("bare-1", "n1", false, "c-rep"), monPod("bare-2", "n1", false, "c-rep")},
			left: []string{"bare-1", "bare-2"}, events: []string{"NotEvicted bare-1", "NotEvicted bare-2"}},
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

// pauseCases break the monitor's view (n1 being down) in each way that pauses it, and heal it.
var pauseCases = []struct {
	name        string
	setup, heal func(e *monEnv)
}{
	{name: "two of three nodes down: partition suspected",
		setup: func(e *monEnv) { e.set(storkv1.StorageDown, "n3") },
		heal:  func(e *monEnv) { e.set(storkv1.StorageHealthy, "n3") }},
	{name: "no storage node heard from within StaleAfter",
		setup: func(e *monEnv) { e.lastSeen = e.t0.Add(-2 * time.Hour); e.sync() },
		heal:  func(e *monEnv) { e.lastSeen = e.now; e.sync() }},
	{name: "the driver's storage nodes cannot be listed",
		setup: func(e *monEnv) {
			e.view.storage.Store(&storageView{at: time.Now(), drivers: map[string]driverView{fake.Name: {err: errors.New("driver unavailable")}}, table: buildTable(nil, nil)})
		},
		heal: func(e *monEnv) { e.sync() }},
}

// TestMonitorPauses: the monitor acts on nothing while it suspects a partition or its view is
// stale, and a node's probation starts only once it can trust what it sees again.
func TestMonitorPauses(t *testing.T) {
	t.Run("control: one of three nodes down", func(t *testing.T) {
		e := newMonEnv(t, monPod("web", "n1", true, "c-rep"))
		e.lastSeen = e.t0
		e.set(storkv1.StorageDown, "n1")
		e.check(0)
		e.check(monProbation + time.Second)
		e.expect("after probation", nil, []string{"Evicted web", "PodEvicted n1"})
	})
	for _, tc := range pauseCases {
		t.Run(tc.name, func(t *testing.T) {
			e := newMonEnv(t, monPod("web", "n1", true, "c-rep"))
			e.lastSeen = e.t0
			e.set(storkv1.StorageDown, "n1")
			tc.setup(e)
			e.check(0)
			e.check(monProbation + time.Second)
			e.check(2*monProbation + time.Second)
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

// TestMonitorPauseRestartsProbation: a pause in the middle of a node's probation drops what was
// seen before it: probation counts again from the first trusted check after the pause.
func TestMonitorPauseRestartsProbation(t *testing.T) {
	for _, tc := range pauseCases {
		t.Run(tc.name, func(t *testing.T) {
			e := newMonEnv(t, monPod("web", "n1", true, "c-rep"))
			e.lastSeen = e.t0
			e.set(storkv1.StorageDown, "n1")
			e.check(0) // n1 down and trusted: probation starts
			if _, ok := e.m.downSince[fake.Name]["n1"]; !ok {
				t.Fatalf("n1 not recorded down: %v", e.m.downSince)
			}
			e.check(time.Minute)
			e.now = e.t0.Add(90 * time.Second)
			tc.setup(e)
			e.check(90 * time.Second) // paused
			if since, ok := e.m.downSince[fake.Name]["n1"]; ok {
				t.Errorf("n1 still recorded down since %s during the pause", since.Sub(e.t0))
			}
			resumed := 100 * time.Second
			e.now = e.t0.Add(resumed)
			tc.heal(e)
			e.check(resumed) // n1 seen down again: probation starts here
			e.check(monProbation + time.Second)
			e.expect("the first probation would be over", []string{"web"}, nil)
			e.check(resumed + monProbation - time.Second)
			e.expect("in the new probation", []string{"web"}, nil)
			e.check(resumed + monProbation + time.Second)
			e.expect("after the new probation", nil, []string{"Evicted web", "PodEvicted n1"})
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

// TestMonitorBatches: BatchSize pods at a time, BatchInterval apart; between batches the
// monitor does not even list pods.
func TestMonitorBatches(t *testing.T) {
	var objs []client.Object
	var all []string
	for _, n := range []string{"p1", "p2", "p3", "p4", "p5", "p6", "p7"} {
		objs = append(objs, monPod(n, "n1", true, "c-rep"))
		all = append(all, n)
	}
	var mu sync.Mutex
	podLists := 0
	e := newMonEnvWith(t, interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		if _, ok := list.(*corev1.PodList); ok {
			mu.Lock()
			podLists++
			mu.Unlock()
		}
		return c.List(ctx, list, opts...)
	}}, objs...)
	lists := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := podLists
		podLists = 0
		return n
	}
	// check runs a check and reports how often it listed pods (the test's own lists aside).
	check := func(at time.Duration) int {
		lists()
		e.check(at)
		return lists()
	}
	e.set(storkv1.StorageDown, "n1")
	if n := check(0); n != 0 {
		t.Errorf("pods listed %d times during probation, want none", n)
	}
	e.expect("probation", all, nil)

	due := monProbation + time.Second
	if n := check(due); n != 1 {
		t.Errorf("pods listed %d times for the first batch, want 1", n)
	}
	if got := e.pods(); len(got) != 2 {
		t.Fatalf("first batch left %v, want 2 pods", got)
	}
	if evs := e.ev.take(); countPrefixed(evs, "Evicted ") != 5 {
		t.Errorf("first batch: events %q, want 5 evictions", evs)
	}
	left := e.pods()
	if n := check(due + time.Second); n != 0 {
		t.Errorf("pods listed %d times 1s after a batch, want none", n)
	}
	e.expect("1s later", left, nil)
	if n := check(due + monBatch - time.Second); n != 0 {
		t.Errorf("pods listed %d times just before the interval, want none", n)
	}
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

// TestMonitorPodErrorsDoNotBlockOthers: a pod the monitor fails to act on (reading its claims,
// or evicting it) is reported, once, and skipped: the others move in the same batch, and the
// check itself succeeds.
func TestMonitorPodErrorsDoNotBlockOthers(t *testing.T) {
	e := newMonEnvWith(t, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if key.Name == "c-broken" {
				return apierrors.NewServiceUnavailable("etcd is sad")
			}
			return c.Get(ctx, key, obj, opts...)
		},
		SubResourceCreate: func(ctx context.Context, c client.Client, sub string, obj client.Object, subObj client.Object, opts ...client.SubResourceCreateOption) error {
			if sub == "eviction" && obj.GetName() == "b-evict-fails" {
				return apierrors.NewInternalError(errors.New("webhook down"))
			}
			return c.SubResource(sub).Create(ctx, obj, subObj, opts...)
		},
	}, monPod("a-broken", "n1", true, "c-broken"), monPod("b-evict-fails", "n1", true, "c-rep"), monPod("c-web", "n1", true, "c-rep"))
	e.m.BatchSize = 1
	failed := evictions("failed")
	e.set(storkv1.StorageDown, "n1")
	e.check(0)
	e.check(monProbation + time.Second)
	e.expect("after probation", []string{"a-broken", "b-evict-fails"},
		[]string{"EvictFailed a-broken", "EvictFailed b-evict-fails", "Evicted c-web", "PodEvicted n1"})
	if got := evictions("failed") - failed; got != 2 {
		t.Errorf("%v failures counted, want 2", got)
	}
	// Tried again every batch, reported once.
	e.check(monProbation + time.Second + monBatch)
	e.check(monProbation + time.Second + 2*monBatch)
	e.expect("later batches", []string{"a-broken", "b-evict-fails"}, nil)
	if got := evictions("failed") - failed; got != 2 {
		t.Errorf("%v failures counted after later batches, want still 2", got)
	}
}

// TestMonitorTooManyRequests: an eviction a PodDisruptionBudget refuses (429) does not count
// against the batch: the next pods move in its place, and it is tried again at the next check.
func TestMonitorTooManyRequests(t *testing.T) {
	var mu sync.Mutex
	blocked := map[string]bool{"a-guarded": true}
	attempts := map[string]int{}
	e := newMonEnvWith(t, interceptor.Funcs{
		SubResourceCreate: func(ctx context.Context, c client.Client, sub string, obj client.Object, subObj client.Object, opts ...client.SubResourceCreateOption) error {
			mu.Lock()
			attempts[obj.GetName()]++
			refuse := blocked[obj.GetName()]
			mu.Unlock()
			if sub == "eviction" && refuse {
				return apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 10)
			}
			return c.SubResource(sub).Create(ctx, obj, subObj, opts...)
		},
	}, monPod("a-guarded", "n1", true, "c-rep"), monPod("b", "n1", true, "c-rep"), monPod("c", "n1", true, "c-rep"), monPod("d", "n1", true, "c-rep"))
	guarded := func() int {
		mu.Lock()
		defer mu.Unlock()
		return attempts["a-guarded"]
	}
	e.m.BatchSize = 2
	blockedCount := evictions("blocked_by_pdb")
	e.set(storkv1.StorageDown, "n1")
	e.check(0)
	due := monProbation + time.Second
	e.check(due)
	e.expect("first batch", []string{"a-guarded", "d"},
		[]string{"EvictionBlocked a-guarded", "Evicted b", "Evicted c", "PodEvicted n1", "PodEvicted n1"})
	if got := evictions("blocked_by_pdb") - blockedCount; got != 1 {
		t.Errorf("%v refusals counted, want 1", got)
	}
	e.check(due + time.Second) // the batch was used by b and c
	if n := guarded(); n != 1 {
		t.Errorf("a-guarded tried %d times within the batch interval, want 1", n)
	}
	e.check(due + monBatch)
	if got := e.pods(); !slices.Equal(got, []string{"a-guarded"}) {
		t.Errorf("second batch left %v, want [a-guarded]", got)
	}
	if evs := e.ev.take(); !slices.Contains(evs, "Evicted d") {
		t.Errorf("second batch: events %q, want d evicted", evs)
	}
	// Only refusals: no batch was used, so the next check tries again at once.
	e.check(due + 2*monBatch)
	e.check(due + 2*monBatch + time.Second)
	if n := guarded(); n != 4 {
		t.Errorf("a-guarded tried %d times, want 4 (refusals do not start the batch interval)", n)
	}
	mu.Lock()
	blocked["a-guarded"] = false
	mu.Unlock()
	e.ev.take()
	e.check(due + 2*monBatch + 2*time.Second)
	e.expect("budget allows it", nil, []string{"Evicted a-guarded", "PodEvicted n1"})
}

// TestMonitorReportsOncePerOutage: a pod that is not moved is reported once while its node's
// storage stays down, and again when it goes down another time.
func TestMonitorReportsOncePerOutage(t *testing.T) {
	e := newMonEnv(t, monPod("bare-1", "n1", false, "c-rep"), monPod("bare-2", "n1", false, "c-rep"), monPod("db", "n1", true, "c-local"))
	all := []string{"bare-1", "bare-2", "db"}
	reported := []string{"NotEvicted bare-1", "NotEvicted bare-2", "NotEvicted db"}
	noController, noCopy := evictions("no_controller"), evictions("no_usable_copy")
	counts := func(step string, wantNoController, wantNoCopy float64) {
		t.Helper()
		if got := evictions("no_controller") - noController; got != wantNoController {
			t.Errorf("%s: no_controller counted %v, want %v", step, got, wantNoController)
		}
		if got := evictions("no_usable_copy") - noCopy; got != wantNoCopy {
			t.Errorf("%s: no_usable_copy counted %v, want %v", step, got, wantNoCopy)
		}
	}
	e.set(storkv1.StorageDown, "n1")
	e.check(0)
	e.check(monProbation + time.Second)
	e.expect("after probation", all, reported)
	counts("after probation", 2, 1)
	for i := 1; i <= 3; i++ {
		e.check(monProbation + time.Second + time.Duration(i)*monBatch)
	}
	e.expect("still down", all, nil)
	counts("still down", 2, 1)

	// The storage comes back, then fails again: a new outage, reported again.
	e.set(storkv1.StorageHealthy, "n1")
	back := 10 * time.Minute
	e.check(back)
	e.expect("back", all, nil)
	e.set(storkv1.StorageDown, "n1")
	e.check(back + time.Minute)
	e.check(back + time.Minute + monProbation + time.Second)
	e.expect("down again", all, reported)
	counts("down again", 4, 2)
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

// monBackup is a finished Backup of c-local.
func monBackup(name string, claims ...string) *storkv1.Backup {
	b := &storkv1.Backup{
		ObjectMeta: metav1.ObjectMeta{Namespace: monNS, Name: name},
		Spec:       storkv1.BackupSpec{BackupLocation: "s3"},
		Status:     storkv1.BackupStatus{Phase: storkv1.BackupCompleted},
	}
	for _, c := range claims {
		b.Status.Volumes = append(b.Status.Volumes, storkv1.BackupVolume{ClaimName: c, Phase: storkv1.VolumeSucceeded, RepositorySnapshotID: "repo-" + c})
	}
	return b
}

// TestMonitorFailover: a claim whose only copy is on the down node, opted into failover, is
// restored elsewhere before its pod moves: the pod stays while the Restore runs and is evicted
// once the claim is repointed, which the monitor records on the old volume.
func TestMonitorFailover(t *testing.T) {
	cases := []struct {
		name   string
		phase  string // the failover phase the old volume is moved to after the first check
		left   []string
		events []string // at the second check
		// restores there are afterwards (1 when 0)
		restores int
	}{
		{name: "restoring: the pod waits", phase: FailoverRestoring, left: []string{"db"}},
		{name: "repointing: the pod is evicted", phase: FailoverRepointing,
			events: []string{"Evicted db", "PodEvicted n1"}},
		{name: "failed: the pod stays and says why", phase: FailoverFailed,
			left: []string{"db"}, events: []string{"NotEvicted db"}},
		{name: "cancelled earlier, down again: a new attempt starts", phase: FailoverCancelled,
			left: []string{"db"}, events: []string{"FailoverStarted c-local"}, restores: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newMonEnv(t, monBackup("nightly", "c-local"), monPod("db", "n1", true, "c-local"))
			e.m.Failover = &Failover{Client: e.c, Reader: e.c, View: e.view, Recorder: e.ev, Log: logr.Discard()}
			e.optIn()
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
			if rs := list.Items[0]; rs.Annotations[annotationOldVolume] != "pv-local" || rs.Spec.Source.BackupName != "nightly" {
				t.Errorf("Restore annotations %v, source %+v; want old volume pv-local, Backup nightly", rs.Annotations, rs.Spec.Source)
			}
			pv := &corev1.PersistentVolume{}
			if err := e.c.Get(e.ctx, client.ObjectKey{Name: "pv-local"}, pv); err != nil {
				t.Fatal(err)
			}
			a := pv.Annotations
			if a[AnnotationFailoverPhase] != FailoverRestoring || a[annotationClaimUID] != monLocalUID || a[annotationRestore] != list.Items[0].Name ||
				a[annotationNode] != "n1" || a[annotationDriver] != fake.Name {
				t.Errorf("pv-local annotations %v", a)
			}
			orig := pv.DeepCopy()
			pv.Annotations[AnnotationFailoverPhase] = tc.phase
			if err := e.c.Patch(e.ctx, pv, client.MergeFrom(orig)); err != nil {
				t.Fatal(err)
			}
			e.check(monProbation + time.Second + monBatch)
			e.expect("phase "+tc.phase, tc.left, tc.events)
			if tc.restores == 0 {
				tc.restores = 1
			}
			if err := e.c.List(e.ctx, &list); err != nil || len(list.Items) != tc.restores {
				t.Errorf("%d Restores (%v), want %d", len(list.Items), err, tc.restores)
			}
			if err := e.c.Get(e.ctx, client.ObjectKey{Name: "pv-local"}, pv); err != nil {
				t.Fatal(err)
			}
			if evicted := pv.Annotations[annotationEvicted] == "true"; evicted != (tc.phase == FailoverRepointing) {
				t.Errorf("pv-local marked evicted: %v, want %v", evicted, tc.phase == FailoverRepointing)
			}
		})
	}
}

// TestMonitorFailoverStartsUseTheBatch: starting a failover counts against BatchSize.
func TestMonitorFailoverStartsUseTheBatch(t *testing.T) {
	local2 := monClaim("c-local-2", "pv-local-2")
	local2.UID = "4567cdef-0000-4000-8000-000000000002"
	local2.Annotations = map[string]string{AnnotationFailover: "true"}
	e := newMonEnv(t, fake.PV("pv-local-2", 1<<30), local2, monBackup("nightly", "c-local", "c-local-2"),
		monPod("a-db", "n1", true, "c-local"), monPod("b-db", "n1", true, "c-local-2"))
	e.d.SetReplicas("pv-local-2", "n1")
	e.m.Failover = &Failover{Client: e.c, Reader: e.c, View: e.view, Recorder: e.ev, Log: logr.Discard()}
	e.m.BatchSize = 1
	e.optIn()
	restores := func() int {
		var list storkv1.RestoreList
		if err := e.c.List(e.ctx, &list); err != nil {
			t.Fatal(err)
		}
		return len(list.Items)
	}
	e.set(storkv1.StorageDown, "n1")
	e.check(0)
	due := monProbation + time.Second
	e.check(due)
	e.expect("first batch", []string{"a-db", "b-db"}, []string{"FailoverStarted c-local"})
	if n := restores(); n != 1 {
		t.Errorf("%d Restores after the first batch, want 1", n)
	}
	e.check(due + time.Second)
	if n := restores(); n != 1 {
		t.Errorf("%d Restores within the batch interval, want 1", n)
	}
	e.check(due + monBatch)
	e.expect("second batch", []string{"a-db", "b-db"}, []string{"FailoverStarted c-local-2"})
	if n := restores(); n != 2 {
		t.Errorf("%d Restores after the second batch, want 2", n)
	}
}

// TestMonitorFailoverImpossible: opted in, but no backup holds the claim: the pod stays, and both
// the claim (no backup) and the pod (no usable copy) say so; the pod only once.
func TestMonitorFailoverImpossible(t *testing.T) {
	e := newMonEnv(t, monPod("db", "n1", true, "c-local"))
	e.m.Failover = &Failover{Client: e.c, Reader: e.c, View: e.view, Recorder: e.ev, Log: logr.Discard()}
	e.optIn()
	e.set(storkv1.StorageDown, "n1")
	e.check(0)
	e.check(monProbation + time.Second)
	e.expect("no backup", []string{"db"}, []string{"FailoverImpossible c-local", "NotEvicted db"})
	e.check(monProbation + time.Second + monBatch)
	if evs := e.ev.take(); countPrefixed(evs, "NotEvicted ") != 0 {
		t.Errorf("next batch: events %q, want no NotEvicted again", evs)
	}
}
