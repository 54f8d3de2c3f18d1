package placement

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// Paths the extender serves: kube-scheduler's urlPrefix plus filterVerb / prioritizeVerb.
const (
	FilterPath     = "/filter"
	PrioritizePath = "/prioritize"
)

// maxRequestBytes bounds a request body. With nodeCacheCapable the scheduler sends node names
// only (about 100 kB for 5,000 nodes); without it, whole Nodes, which is why the limit is wide.
const maxRequestBytes = 64 << 20

var (
	extenderRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stork_extender_requests_total",
		Help: "Scheduler extender requests by verb and result (ok, error, bad_request).",
	}, []string{"verb", "result"})
	extenderLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "stork_extender_request_duration_seconds",
		Help:    "Time to answer a scheduler extender request, from body read to response written.",
		Buckets: []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5},
	}, []string{"verb"})
)

// Extender answers kube-scheduler's filter and prioritize calls from the View and the cache.
type Extender struct {
	View    *View
	Volumes *Volumes
	// Recorder records NoDataLocalNode events on pods; nil records none.
	Recorder events.EventRecorder
	Log      logr.Logger

	// free holds each request's memory for the next (see scratch). A channel rather than a
	// sync.Pool: a pool is emptied by every garbage collection, which on a large heap comes
	// often enough that the buffers were made again for most requests.
	free     chan *scratch
	freeOnce sync.Once
}

// scratch is one request's reusable memory. A request with 5,000 node names allocated about
// 850 kB (names, node rows, answers); on a controller whose caches make the heap large, the
// garbage collector's work for that showed in the extender's tail latency.
type scratch struct {
	body  bytes.Buffer
	names []string
	// table is the View's node table when the request came in; rows are the rows of names
	// (rowsFor), looked up while decoding.
	table   *table
	rows    []int32
	rowsFor []string
	pass    []string
	prios   extenderv1.HostPriorityList
	// keys and sorted are the rank keys of Prioritize.
	keys, sorted []int64
	out          []byte
}

// maxPooled: scratch that grew past this (a request with whole Nodes) is not kept.
const maxPooled = 8 << 20

func (e *Extender) getScratch() *scratch {
	e.freeOnce.Do(func() { e.free = make(chan *scratch, 8) })
	select {
	case s := <-e.free:
		return s
	default:
		return &scratch{}
	}
}

func (e *Extender) putScratch(s *scratch) {
	if s.body.Cap() > maxPooled || cap(s.out) > maxPooled {
		return
	}
	select {
	case e.free <- s:
	default: // enough kept
	}
}

// Handler serves FilterPath and PrioritizePath.
func (e *Extender) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+FilterPath, func(w http.ResponseWriter, r *http.Request) {
		e.serve(w, r, "filter", func(ctx context.Context, args *extenderv1.ExtenderArgs, s *scratch) ([]byte, error) {
			res, err := e.filter(ctx, args, s)
			if err != nil {
				return nil, err
			}
			return appendFilterResult(s.out[:0], res)
		})
	})
	mux.HandleFunc("POST "+PrioritizePath, func(w http.ResponseWriter, r *http.Request) {
		e.serve(w, r, "prioritize", func(ctx context.Context, args *extenderv1.ExtenderArgs, s *scratch) ([]byte, error) {
			res, err := e.prioritize(ctx, args, s)
			if err != nil {
				return nil, err
			}
			return appendPriorities(s.out[:0], res), nil
		})
	})
	return mux
}

// serve decodes ExtenderArgs, answers and records the request's metrics.
func (e *Extender) serve(w http.ResponseWriter, r *http.Request, verb string, answer func(context.Context, *extenderv1.ExtenderArgs, *scratch) ([]byte, error)) {
	start := time.Now()
	defer func() { extenderLatency.WithLabelValues(verb).Observe(time.Since(start).Seconds()) }()
	s := e.getScratch()
	defer e.putScratch(s)
	s.table, s.rowsFor = e.View.nodeTable(), nil
	var args extenderv1.ExtenderArgs
	if err := decodeArgs(http.MaxBytesReader(w, r.Body, maxRequestBytes), &args, s); err != nil || args.Pod == nil {
		extenderRequests.WithLabelValues(verb, "bad_request").Inc()
		msg := "the body is not ExtenderArgs with a Pod"
		if err != nil {
			msg = "decoding ExtenderArgs: " + err.Error()
		}
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	body, err := answer(r.Context(), &args, s)
	if err != nil {
		// The protocol carries errors in the result (Error field) for filter; prioritize has
		// none, so a failure there is an HTTP error, which kube-scheduler logs and skips.
		extenderRequests.WithLabelValues(verb, "error").Inc()
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.out = body
	extenderRequests.WithLabelValues(verb, "ok").Inc()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// rowsOf returns the node table and the rows of the nodes: those found while decoding the
// request when they are for these nodes, else looked up now.
func (e *Extender) rowsOf(nodes []string, s *scratch) (*table, []int32) {
	if s.table != nil && len(s.rowsFor) == len(nodes) && (len(nodes) == 0 || &s.rowsFor[0] == &nodes[0]) {
		return s.table, s.rows
	}
	if s.table == nil {
		s.table = e.View.nodeTable()
	}
	s.rows = s.table.lookup(nodes, s.rows)
	s.rowsFor = nodes
	return s.table, s.rows
}

// candidates are the node names of the request: names only with nodeCacheCapable, else Nodes.
func candidates(args *extenderv1.ExtenderArgs) []string {
	if args.NodeNames != nil {
		return *args.NodeNames
	}
	if args.Nodes == nil {
		return nil
	}
	names := make([]string, len(args.Nodes.Items))
	for i := range args.Nodes.Items {
		names[i] = args.Nodes.Items[i].Name
	}
	return names
}

// filterResult answers with the nodes that pass, in the shape the request came in. The nodes
// that fail are unresolvable: evicting pods there (preemption) would not give the pod usable
// storage.
func filterResult(args *extenderv1.ExtenderArgs, pass []string, failed extenderv1.FailedNodesMap) *extenderv1.ExtenderFilterResult {
	res := &extenderv1.ExtenderFilterResult{FailedAndUnresolvableNodes: failed}
	if args.NodeNames != nil {
		res.NodeNames = &pass
		return res
	}
	keep := make(map[string]bool, len(pass))
	for _, n := range pass {
		keep[n] = true
	}
	res.Nodes = &corev1.NodeList{}
	if args.Nodes != nil {
		for _, n := range args.Nodes.Items {
			if keep[n.Name] {
				res.Nodes.Items = append(res.Nodes.Items, n)
			}
		}
	}
	return res
}

// Filter removes the nodes where the driver of one of the pod's volumes has storage that is
// down and, for pods that require it (or claims waiting for a reserved local volume), the nodes
// without a usable copy. When a volume has no usable copy anywhere, every node fails with a reason
// that says where the copies are, rather than the pod be placed where its data cannot be read.
func (e *Extender) Filter(ctx context.Context, args *extenderv1.ExtenderArgs) (*extenderv1.ExtenderFilterResult, error) {
	return e.filter(ctx, args, &scratch{})
}

func (e *Extender) filter(ctx context.Context, args *extenderv1.ExtenderArgs, s *scratch) (*extenderv1.ExtenderFilterResult, error) {
	nodes := candidates(args)
	pod := args.Pod
	if pod.Annotations[AnnotationPlacement] == PlacementSkip {
		return filterResult(args, nodes, nil), nil
	}
	vols, err := e.Volumes.Of(ctx, pod)
	if err != nil {
		res := filterResult(args, nil, nil)
		res.Error = err.Error()
		return res, nil
	}
	if len(vols) == 0 {
		return filterResult(args, nodes, nil), nil
	}
	for _, v := range vols {
		if v.located && !e.View.hasUsableCopy(v.driver, v.loc) {
			// Every node fails with the reason rather than the result's Error: kube-scheduler
			// skips an ignorable extender that errors, and would place the pod by its own
			// filters alone, next to storage that cannot serve it.
			why := fmt.Sprintf("claim %s/%s has no usable copy of its data (%s): the pod cannot run until its storage recovers or is restored",
				pod.Namespace, v.claim, describeReplicas(v.loc, e.View, v.driver))
			failed := make(extenderv1.FailedNodesMap, len(nodes))
			for _, n := range nodes {
				failed[n] = why
			}
			return filterResult(args, []string{}, failed), nil
		}
	}
	requireLocal := pod.Annotations[AnnotationPlacement] == PlacementRequireLocal
	// Resolve once per request what every node is checked against.
	t, rows := e.rowsOf(nodes, s)
	health := t.healthOf(vols)
	copies := make([][]usableCopy, len(vols))
	for i, v := range vols {
		if v.located {
			copies[i] = e.View.usableCopies(t, v.driver, v.loc)
		}
	}
	pass := s.pass[:0]
	defer func() { s.pass = pass }()
	failed := extenderv1.FailedNodesMap{}
	for i, n := range nodes {
		if why := e.unfit(health, rows[i], n, vols, copies, requireLocal); why != "" {
			failed[n] = why
			continue
		}
		pass = append(pass, n)
	}
	return filterResult(args, pass, failed), nil
}

// unfit says why a node cannot take a pod with these volumes, or "" when it can.
func (e *Extender) unfit(health [][]storkv1.StorageHealth, row int32, node string, vols []podVolume, copies [][]usableCopy, requireLocal bool) string {
	for i, v := range vols {
		if !usableOn(health[i], row) {
			sn, _ := e.View.Storage(v.driver, node)
			msg := fmt.Sprintf("storage of driver %s on this node is %s", v.driver, sn.Health)
			if sn.Reason != "" {
				msg += ": " + sn.Reason
			}
			return msg
		}
		if (requireLocal || v.localOnly) && v.located && len(v.loc.Replicas) > 0 && !slices.ContainsFunc(copies[i], func(c usableCopy) bool { return c.on(row, node) }) {
			if v.localOnly {
				return fmt.Sprintf("holds no copy of the volume reserved for claim %s: the claim would get a new, empty volume here", v.claim)
			}
			return fmt.Sprintf("holds no usable copy of claim %s (pod annotation %s=%s)", v.claim, AnnotationPlacement, PlacementRequireLocal)
		}
	}
	return ""
}

// Prioritize scores each node by how close it is to the pod's data (see the points table).
// When no node holds a copy of every volume that has node copies, it records a NoDataLocalNode
// event on the pod: it will run, but reading its data over the network.
func (e *Extender) Prioritize(ctx context.Context, args *extenderv1.ExtenderArgs) (*extenderv1.HostPriorityList, error) {
	return e.prioritize(ctx, args, &scratch{})
}

func (e *Extender) prioritize(ctx context.Context, args *extenderv1.ExtenderArgs, s *scratch) (*extenderv1.HostPriorityList, error) {
	nodes := candidates(args)
	pod := args.Pod
	out := slices.Grow(s.prios[:0], len(nodes))[:len(nodes)]
	s.prios = out
	for i, n := range nodes {
		out[i] = extenderv1.HostPriority{Host: n}
	}
	if pod.Annotations[AnnotationPlacement] == PlacementSkip {
		return &out, nil
	}
	vols, err := e.Volumes.Of(ctx, pod)
	if err != nil {
		return nil, err
	}
	var located []podVolume
	for _, v := range vols {
		if v.located {
			located = append(located, v)
		}
	}
	if len(located) == 0 {
		return &out, nil
	}
	t, rows := e.rowsOf(nodes, s)
	copies := make([][]usableCopy, len(located))
	for i, v := range located {
		copies[i] = e.View.usableCopies(t, v.driver, v.loc)
	}
	local := false
	keys := slices.Grow(s.keys[:0], len(nodes))
	for i, n := range nodes {
		nt := t.topology(rows[i])
		key, all := int64(0), true
		for j, v := range located {
			p, holds := points(rows[i], n, nt, copies[j])
			key += int64(p)
			if holds {
				key += heldWeight
			}
			all = all && (holds || len(v.loc.Replicas) == 0)
		}
		keys = append(keys, key)
		local = local || all
	}
	s.keys = keys
	s.sorted = rankScores(out, keys, s.sorted)
	if !local && len(nodes) > 0 {
		e.noDataLocal(pod, nodes, located)
	}
	return &out, nil
}

// noDataLocal records that none of the candidates holds the pod's data.
func (e *Extender) noDataLocal(pod *corev1.Pod, nodes []string, vols []podVolume) {
	if e.Recorder == nil {
		return
	}
	var where []string
	for _, v := range vols {
		if len(v.loc.Replicas) > 0 {
			where = append(where, "claim "+v.claim+": "+describeReplicas(v.loc, e.View, v.driver))
		}
	}
	sort.Strings(where)
	e.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, "NoDataLocalNode", "Schedule",
		"none of the %d candidate nodes holds a usable copy of every volume (%s); preferring the nearest rack, zone or region",
		len(nodes), strings.Join(where, "; "))
}
