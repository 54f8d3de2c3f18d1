package placement

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

var (
	monitorEvictions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stork_monitor_evictions_total",
		Help: "Pods the health monitor acted on, by driver and result (evicted, blocked_by_pdb, failed, no_usable_copy, no_controller, failover).",
	}, []string{"driver", "result"})
	monitorDown = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stork_monitor_storage_nodes_down",
		Help: "Storage nodes whose storage is down or unknown, by driver, at the last check.",
	}, []string{"driver"})
	monitorPaused = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stork_monitor_paused",
		Help: "1 while the health monitor acts on nothing for a driver, by reason (stale_view, partition_suspected).",
	}, []string{"driver", "reason"})
)

// Monitor moves pods off nodes whose storage has failed: once a driver has reported a node's
// storage down (or unknown) for Probation, it evicts that node's pods that use the driver's
// volumes, through the Eviction API so that PodDisruptionBudgets hold, BatchSize pods at a time
// and BatchInterval apart, so that their controllers recreate them and the extender places them
// near a usable copy. Safety first: it does nothing for a driver while its own view is stale
// (no fresh refresh, or no storage node heard from recently), and nothing while more than
// MaxDownFraction of the driver's storage nodes look down at once, which is a partition of the
// monitor from the nodes far more often than that many failures.
type Monitor struct {
	// Client evicts pods.
	Client client.Client
	// Reader lists a node's pods from the API server (only when acting: Stork caches no pods).
	Reader   client.Reader
	View     *View
	Volumes  *Volumes
	Recorder events.EventRecorder
	Log      logr.Logger
	// Failover, if set, restores opted-in local volumes whose only copy is on a down node.
	Failover *Failover

	// Probation is how long storage must stay down before pods move (default 2m).
	Probation time.Duration
	// Interval between checks (default 10s).
	Interval time.Duration
	// BatchSize pods are evicted at a time (default 5), BatchInterval apart (default 30s).
	BatchSize     int
	BatchInterval time.Duration
	// MaxDownFraction of a driver's storage nodes may be down before the monitor suspects a
	// partition and stops (default 0.5: more than half down stops it).
	MaxDownFraction float64
	// StaleAfter: the view is stale when its last refresh, or the newest heartbeat of any of a
	// driver's storage nodes, is older than this (default 3m, three agent report periods).
	StaleAfter time.Duration
	// Now is the clock (tests move it).
	Now func() time.Time

	downSince map[string]map[string]time.Time // driver → node → first seen down
	paused    map[string]string               // driver → why it is paused, to log transitions once
	reported  map[string]bool                 // pod UID/result already reported (see report)
	lastBatch time.Time
}

func (m *Monitor) defaults() {
	if m.Probation <= 0 {
		m.Probation = 2 * time.Minute
	}
	if m.Interval <= 0 {
		m.Interval = 10 * time.Second
	}
	if m.BatchSize <= 0 {
		m.BatchSize = 5
	}
	if m.BatchInterval <= 0 {
		m.BatchInterval = 30 * time.Second
	}
	if m.MaxDownFraction <= 0 {
		m.MaxDownFraction = 0.5
	}
	if m.StaleAfter <= 0 {
		m.StaleAfter = 3 * time.Minute
	}
	if m.Now == nil {
		m.Now = time.Now
	}
	if m.downSince == nil {
		m.downSince = map[string]map[string]time.Time{}
		m.paused = map[string]string{}
		m.reported = map[string]bool{}
	}
}

// Start checks every Interval until ctx ends (a manager.Runnable; the leader runs it).
func (m *Monitor) Start(ctx context.Context) error {
	m.defaults()
	t := time.NewTicker(m.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := m.Check(ctx); err != nil {
			m.Log.Error(err, "health monitor check")
		}
	}
}

// victim is a pod to move and the driver whose storage failed under it.
type victim struct {
	pod    corev1.Pod
	driver string
	node   string
}

// Check looks at every driver's storage once and acts on at most one batch of pods. A pod that
// cannot be acted on (an API error) is reported and skipped: it never holds up the others.
func (m *Monitor) Check(ctx context.Context) error {
	m.defaults()
	now := m.Now()
	batchDue := now.Sub(m.lastBatch) >= m.BatchInterval
	var due []victim
	for _, d := range m.View.Drivers.All() {
		nodes, ok := m.driverView(d.Name(), now)
		if !ok || !batchDue {
			continue
		}
		for _, n := range nodes {
			if now.Sub(m.downSince[d.Name()][n]) < m.Probation {
				continue
			}
			pods, err := m.podsOn(ctx, n)
			if err != nil {
				return err
			}
			for _, p := range pods {
				due = append(due, victim{pod: p, driver: d.Name(), node: n})
			}
		}
	}
	if !batchDue {
		return nil
	}
	m.forgetReports(due)
	acted := 0
	for _, v := range due {
		if acted == m.BatchSize {
			break
		}
		did, err := m.act(ctx, v)
		if err != nil {
			m.report(v, "failed", corev1.EventTypeWarning, "EvictFailed", fmt.Sprintf("moving the pod off node %s failed: %v; trying again next batch", v.node, err))
			m.Log.Error(err, "acting on a pod on a node whose storage is down", "pod", client.ObjectKeyFromObject(&v.pod), "node", v.node)
			continue
		}
		if did {
			acted++
		}
	}
	if acted > 0 {
		m.lastBatch = now
	}
	return nil
}

// driverView updates the down-since record of one driver and returns its nodes that are down,
// or ok=false when the monitor must not act for the driver now.
func (m *Monitor) driverView(driver string, now time.Time) (down []string, ok bool) {
	nodes, at, err := m.View.StorageNodes(driver)
	var newest time.Time
	for _, n := range nodes {
		if n.LastSeen.After(newest) {
			newest = n.LastSeen
		}
	}
	switch {
	case err != nil || at.IsZero() || now.Sub(at) > m.StaleAfter:
		return nil, m.pause(driver, "stale_view", fmt.Sprintf("the view of driver %s's storage is stale (last refresh %s, error %v)", driver, at.Format(time.RFC3339), err))
	case !newest.IsZero() && now.Sub(newest) > m.StaleAfter:
		return nil, m.pause(driver, "stale_view", fmt.Sprintf("no storage node of driver %s reported since %s: the monitor cannot tell failures from its own isolation", driver, newest.Format(time.RFC3339)))
	}
	since := m.downSince[driver]
	if since == nil {
		since = map[string]time.Time{}
		m.downSince[driver] = since
	}
	for name, n := range nodes {
		if usable(n.Health) {
			delete(since, name)
			continue
		}
		down = append(down, name)
	}
	for name := range since {
		if _, exists := nodes[name]; !exists {
			delete(since, name)
		}
	}
	sort.Strings(down)
	monitorDown.WithLabelValues(driver).Set(float64(len(down)))
	if len(nodes) > 0 && float64(len(down)) > m.MaxDownFraction*float64(len(nodes)) {
		return nil, m.pause(driver, "partition_suspected", fmt.Sprintf("%d of %d storage nodes of driver %s look down at once (%v): suspecting a partition, evicting nothing", len(down), len(nodes), driver, down))
	}
	// Probation starts only here, once the view is trusted: a node first seen down during a
	// suspected partition must not count that time as probation, or the first check after the
	// partition heals (while the node's own report is still late) would evict its pods at once.
	for _, name := range down {
		if _, seen := since[name]; !seen {
			since[name] = now
			n := nodes[name]
			m.Log.Info("storage down; pods move after probation", "driver", driver, "node", name, "health", n.Health, "reason", n.Reason, "probation", m.Probation)
		}
	}
	m.resume(driver)
	return down, true
}

// pause records that the monitor acts on nothing for a driver, logging and counting it once per
// transition. It returns false, for the caller to return.
func (m *Monitor) pause(driver, reason, msg string) bool {
	// Probation starts again after the pause: time seen through a view that could not be
	// trusted does not count.
	delete(m.downSince, driver)
	if m.paused[driver] != reason {
		m.resume(driver)
		m.paused[driver] = reason
		m.Log.Info("health monitor paused", "driver", driver, "reason", reason, "detail", msg)
		monitorPaused.WithLabelValues(driver, reason).Set(1)
	}
	return false
}

func (m *Monitor) resume(driver string) {
	if r, ok := m.paused[driver]; ok {
		monitorPaused.WithLabelValues(driver, r).Set(0)
		delete(m.paused, driver)
		m.Log.Info("health monitor resumed", "driver", driver)
	}
}

// podsOn lists the pods bound to a node that have not finished or started to go.
func (m *Monitor) podsOn(ctx context.Context, node string) ([]corev1.Pod, error) {
	var list corev1.PodList
	if err := m.Reader.List(ctx, &list, client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("spec.nodeName", node)}); err != nil {
		return nil, fmt.Errorf("listing the pods on node %s: %w", node, err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			out = append(out, p)
		}
	}
	return out, nil
}

// act decides about one pod on a down node and reports whether it took an action that counts
// against the batch: an eviction, or the start of a failover.
func (m *Monitor) act(ctx context.Context, v victim) (bool, error) {
	vols, err := m.Volumes.Of(ctx, &v.pod)
	if err != nil {
		return false, err
	}
	var mine []podVolume
	for _, pv := range vols {
		if pv.driver == v.driver {
			mine = append(mine, pv)
		}
	}
	if len(mine) == 0 {
		return false, nil // the pod does not use the failed storage
	}
	if !hasController(&v.pod) {
		m.report(v, "no_controller", corev1.EventTypeWarning, "NotEvicted",
			fmt.Sprintf("storage of driver %s on node %s is down, but nothing would recreate this pod if it were evicted; move it by hand", v.driver, v.node))
		return false, nil
	}
	var failedOver []string // claims whose failover waits for this eviction
	for _, pv := range mine {
		if !pv.located || m.View.hasUsableCopy(pv.driver, pv.loc) {
			continue
		}
		if m.Failover != nil {
			state, started, err := m.Failover.Step(ctx, &v.pod, pv.claim, pv.driver, v.node)
			if err != nil {
				return false, err
			}
			switch state {
			case failoverWaiting:
				return started, nil // restoring; the pod waits where it is
			case failoverReady:
				failedOver = append(failedOver, pv.claim)
				continue
			}
		}
		m.report(v, "no_usable_copy", corev1.EventTypeWarning, "NotEvicted",
			fmt.Sprintf("storage of driver %s on node %s is down and claim %s has no usable copy elsewhere (%s): moving the pod would not help; failover (annotation %s=true on the claim) restores it from its latest backup when there is one (see the claim's events)",
				v.driver, v.node, pv.claim, describeReplicas(pv.loc, m.View, pv.driver), AnnotationFailover))
		return false, nil
	}
	evicted, err := m.evict(ctx, v)
	if err != nil || !evicted {
		return false, err
	}
	for _, claim := range failedOver {
		if err := m.Failover.MarkEvicted(ctx, &v.pod, claim); err != nil {
			// The failover goes on without the mark once no scheduled pod uses the claim.
			m.Log.Error(err, "recording an eviction for a failover", "claim", claim)
		}
	}
	return true, nil
}

// report records, once per pod and reason while its node's storage stays down, an event and a
// count for a pod that is not moved.
func (m *Monitor) report(v victim, result, kind, reason, msg string) {
	key := string(v.pod.UID) + "/" + result
	if m.reported[key] {
		return
	}
	m.reported[key] = true
	monitorEvictions.WithLabelValues(v.driver, result).Inc()
	if m.Recorder != nil {
		m.Recorder.Eventf(&v.pod, nil, kind, reason, "Evict", "%s", msg)
	}
}

// forgetReports drops what was reported about pods no longer on a down node, so that a later
// outage reports them again.
func (m *Monitor) forgetReports(due []victim) {
	still := map[string]bool{}
	for _, v := range due {
		still[string(v.pod.UID)] = true
	}
	for key := range m.reported {
		uid, _, _ := strings.Cut(key, "/")
		if !still[uid] {
			delete(m.reported, key)
		}
	}
}

// evict asks the Eviction API to move the pod and reports whether it did; a PodDisruptionBudget
// may refuse (429), and the pod is tried again next batch.
func (m *Monitor) evict(ctx context.Context, v victim) (bool, error) {
	ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: v.pod.Name, Namespace: v.pod.Namespace}}
	err := m.Client.SubResource("eviction").Create(ctx, &v.pod, ev)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: v.node}}
	switch {
	case err == nil:
		monitorEvictions.WithLabelValues(v.driver, "evicted").Inc()
		msg := fmt.Sprintf("storage of driver %s on node %s has been down for over %s: evicted so that it is placed near a usable copy of its data", v.driver, v.node, m.Probation)
		m.Log.Info("evicted", "pod", client.ObjectKeyFromObject(&v.pod), "node", v.node, "driver", v.driver)
		if m.Recorder != nil {
			m.Recorder.Eventf(&v.pod, node, corev1.EventTypeNormal, "Evicted", "Evict", "%s", msg)
			m.Recorder.Eventf(node, nil, corev1.EventTypeNormal, "PodEvicted", "Evict", "pod %s/%s evicted: %s", v.pod.Namespace, v.pod.Name, msg)
		}
		return true, nil
	case apierrors.IsTooManyRequests(err):
		monitorEvictions.WithLabelValues(v.driver, "blocked_by_pdb").Inc()
		if m.Recorder != nil {
			m.Recorder.Eventf(&v.pod, nil, corev1.EventTypeWarning, "EvictionBlocked", "Evict",
				"storage of driver %s on node %s is down, but eviction is refused for now (%v); trying again next batch", v.driver, v.node, err)
		}
		return false, nil
	case apierrors.IsNotFound(err):
		return false, nil // gone already
	default:
		return false, fmt.Errorf("evicting pod %s/%s from node %s: %w", v.pod.Namespace, v.pod.Name, v.node, err)
	}
}

// hasController reports whether a controller (ReplicaSet, StatefulSet, …) owns the pod and so
// will recreate it.
func hasController(p *corev1.Pod) bool {
	return metav1.GetControllerOf(p) != nil
}
