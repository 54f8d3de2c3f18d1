package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
	"k8s.io/utils/ptr"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
	"stork.dev/stork/drivers/longhorn"
	"stork.dev/stork/placement"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "client" {
		if err := clientMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench-extender client:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.IntVar(&o.nodes, "nodes", 5000, "nodes (2 regions × 5 zones × 10 racks)")
	flag.IntVar(&o.volumes, "volumes", 20000, "Longhorn volumes, each with -replicas replicas")
	flag.IntVar(&o.replicas, "replicas", 3, "replicas per volume")
	flag.IntVar(&o.pods, "pods", 2000, "pods to schedule per run (one filter and one prioritize request each)")
	flag.IntVar(&o.sample, "sample", 500, "node names per request in the second run (kube-scheduler's adaptive sampling sends about 10% of 5,000 nodes)")
	flag.Float64Var(&o.downFraction, "down", 0.02, "fraction of nodes whose storage is down")
	flag.StringVar(&o.json, "json", "", "also write the results as JSON to this file")
	cpuprofile := flag.String("cpuprofile", "", "write the extender's CPU profile (this process, not the client's) to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-extender:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(o); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench-extender:", err)
		os.Exit(1)
	}
}

type options struct {
	nodes, volumes, replicas, pods, sample int
	downFraction                           float64
	json                                   string
}

// warmup is how many filter requests the client sends before measuring.
const warmup = 200

// result is one measured run.
type result struct {
	Name    string        `json:"name"`
	Clients int           `json:"clients"`
	Pods    int           `json:"pods"`
	P50     time.Duration `json:"p50"`
	P90     time.Duration `json:"p90"`
	P99     time.Duration `json:"p99"`
	Max     time.Duration `json:"max"`
	PerSec  float64       `json:"requestsPerSecond"`
}

func run(o options) error {
	ctx := context.Background()
	setupStart := time.Now()
	w := build(o)
	fmt.Printf("world: %d nodes, %d volumes × %d replicas, %.0f%% of nodes with storage down; built in %s\n",
		o.nodes, o.volumes, o.replicas, o.downFraction*100, time.Since(setupStart).Round(time.Millisecond))

	ready := make(chan net.Addr, 1)
	// The server side's own time per request (handler entered to answer written), to tell the
	// extender's cost from the transport's and the client's.
	var served serverTimes
	srv := &placement.Server{Addr: "127.0.0.1:0", Handler: served.wrap(w.ext.Handler()), Log: logr.Discard(), Ready: ready}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = srv.Start(sctx) }()
	base := "http://" + (<-ready).String()

	// Bodies are encoded before timing: encoding them is the scheduler's work, not ours. The
	// scheduler's side runs in another process, as kube-scheduler does, so that its garbage and
	// ours are collected apart.
	rng := rand.New(rand.NewPCG(2, 2))
	var allBodies [][]byte
	for _, names := range [][]string{w.names, w.names[:min(len(w.names), o.sample)]} {
		for i := range o.pods {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: fmt.Sprintf("pod-%d", i)}}
			for range 1 + rng.IntN(3) {
				claim := fmt.Sprintf("claim-%05d", rng.IntN(o.volumes))
				pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: claim, VolumeSource: corev1.VolumeSource{
					PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}})
			}
			b, err := json.Marshal(&extenderv1.ExtenderArgs{Pod: pod, NodeNames: &names})
			if err != nil {
				return err
			}
			allBodies = append(allBodies, b)
		}
	}
	full, sampled := allBodies[:o.pods], allBodies[o.pods:]
	fmt.Printf("requests: %d pods with 1–3 claims each, with all %d node names (%d KiB per request), then with %d names\n",
		o.pods, len(w.names), len(full[0])>>10, min(len(w.names), o.sample))
	fmt.Printf("  (kube-scheduler's default percentageOfNodesToScore samples about 10%% of 5,000 nodes: %d is the usual request)\n\n", o.sample)

	var results []result
	for _, set := range []struct {
		label  string
		bodies [][]byte
	}{{fmt.Sprintf("%d names", len(w.names)), full}, {fmt.Sprintf("%d names", min(len(w.names), o.sample)), sampled}} {
		for _, clients := range []int{1, runtime.GOMAXPROCS(0)} {
			served.reset()
			rs, err := runClient(base, set.bodies, clients)
			if err != nil {
				return err
			}
			for _, r := range rs {
				r.Name = set.label + ": " + r.Name
				results = append(results, r)
			}
			if clients == 1 {
				results = append(results, summarize(set.label+": server time per request", 1, served.take(), 0))
			}
		}
	}
	// In process, without HTTP and JSON: where the time goes.
	var inproc []time.Duration
	for _, b := range full {
		var args extenderv1.ExtenderArgs
		if err := json.Unmarshal(b, &args); err != nil {
			return err
		}
		start := time.Now()
		if _, err := w.ext.Filter(ctx, &args); err != nil {
			return err
		}
		if _, err := w.ext.Prioritize(ctx, &args); err != nil {
			return err
		}
		inproc = append(inproc, time.Since(start))
	}
	results = append(results, summarize(fmt.Sprintf("%d names: filter+prioritize in process, no HTTP/JSON", len(w.names)), 1, inproc, 0))

	fmt.Printf("%-62s %7s %9s %9s %9s %9s %11s\n", "", "clients", "p50", "p90", "p99", "max", "requests/s")
	for _, r := range results {
		rate := "–"
		if r.PerSec > 0 {
			rate = fmt.Sprintf("%.0f", r.PerSec)
		}
		fmt.Printf("%-62s %7d %9s %9s %9s %9s %11s\n", r.Name, r.Clients, ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max), rate)
	}
	for _, r := range results {
		if strings.HasSuffix(r.Name, ": filter+prioritize") && r.Clients == 1 {
			fmt.Printf("p99 of %s: %s, %.2f× the 5 ms target (below 1 meets it)\n", r.Name, ms(r.P99), float64(r.P99)/float64(5*time.Millisecond))
		}
	}
	if o.json != "" {
		data, err := json.MarshalIndent(map[string]any{"options": map[string]any{"nodes": o.nodes, "volumes": o.volumes, "replicas": o.replicas, "pods": o.pods, "sample": o.sample},
			"results": results}, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(o.json, data, 0o644)
	}
	return nil
}

// runClient runs this program as the scheduler's side in a process of its own and returns
// what it measured.
func runClient(base string, bodies [][]byte, clients int) ([]result, error) {
	f, err := os.CreateTemp("", "bench-extender-bodies-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	enc := json.NewEncoder(f)
	if err := enc.Encode(bodies); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	cmd := exec.Command(os.Args[0], "client", base, f.Name(), fmt.Sprint(clients))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("the client process: %w", err)
	}
	var rs []result
	return rs, json.Unmarshal(out, &rs)
}

// clientMain is the scheduler's side: args are the extender's URL, the file of request bodies and
// the number of concurrent clients. It prints its results as JSON.
func clientMain(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("want URL BODIES-FILE CLIENTS")
	}
	base := args[0]
	data, err := os.ReadFile(args[1])
	if err != nil {
		return err
	}
	var bodies [][]byte
	if err := json.Unmarshal(data, &bodies); err != nil {
		return err
	}
	var clients int
	if _, err := fmt.Sscan(args[2], &clients); err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	post := func(path string, body []byte) error {
		resp, err := hc.Post(base+path, "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: HTTP %d", path, resp.StatusCode)
		}
		return nil
	}
	// Warm up: connections, the server's caches and allocator.
	for i := 0; i < warmup; i++ {
		if err := post(placement.FilterPath, bodies[i%len(bodies)]); err != nil {
			return err
		}
	}
	filter, prio, pair, perSec, err := measure(bodies, clients, post)
	if err != nil {
		return err
	}
	out := []result{summarize("filter", clients, filter, perSec), summarize("prioritize", clients, prio, perSec),
		summarize("filter+prioritize", clients, pair, perSec/2)}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// measure sends every pod's filter then prioritize request from clients goroutines and returns
// the latencies and the requests per second over the whole run.
func measure(bodies [][]byte, clients int, post func(string, []byte) error) (filter, prio, pair []time.Duration, perSec float64, err error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	next := make(chan []byte)
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range next {
				t0 := time.Now()
				e1 := post(placement.FilterPath, b)
				t1 := time.Now()
				e2 := post(placement.PrioritizePath, b)
				t2 := time.Now()
				mu.Lock()
				if e := cmpErr(e1, e2); e != nil && firstErr == nil {
					firstErr = e
				}
				filter, prio, pair = append(filter, t1.Sub(t0)), append(prio, t2.Sub(t1)), append(pair, t2.Sub(t0))
				mu.Unlock()
			}
		}()
	}
	for _, b := range bodies {
		next <- b
	}
	close(next)
	wg.Wait()
	return filter, prio, pair, float64(2*len(bodies)) / time.Since(start).Seconds(), firstErr
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func summarize(name string, clients int, lat []time.Duration, perSec float64) result {
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	return result{Name: name, Clients: clients, Pods: len(lat), P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: lat[len(lat)-1], PerSec: perSec}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond)) }

// world is the extender with its view, driver and cache filled in.
type world struct {
	ext   *placement.Extender
	names []string
}

// build makes the nodes, the Longhorn objects (fed to the driver's index as its informers
// would) and the claims and volumes (in a map-backed reader that copies objects out as
// controller-runtime's cache does).
func build(o options) world {
	rng := rand.New(rand.NewPCG(1, 1))
	lh := longhorn.NewWithClient(nil, "longhorn-system", logr.Discard())
	set := drivers.NewSet(lh)
	view := placement.NewView(set, logr.Discard())
	type node struct{ name, region, zone, rack string }
	nodes := make([]node, o.nodes)
	names := make([]string, o.nodes)
	for i := range nodes {
		region := fmt.Sprintf("r%d", i%2)
		zone := fmt.Sprintf("%s-z%d", region, (i/2)%5)
		rack := fmt.Sprintf("%s-rack%d", zone, (i/10)%10)
		nodes[i] = node{fmt.Sprintf("node-%05d", i), region, zone, rack}
		names[i] = nodes[i].name
		view.SetNode(nodes[i].name, map[string]string{storkv1.LabelRegion: region, storkv1.LabelZone: zone, storkv1.LabelRack: rack})
		ready := "True"
		if rng.Float64() < o.downFraction {
			ready = "False"
		}
		lh.Observe(lhObject("Node", nodes[i].name, nil, map[string]any{"region": region, "zone": zone,
			"conditions": []any{map[string]any{"type": "Ready", "status": ready}, map[string]any{"type": "Schedulable", "status": "True"}}}))
	}
	r := &mapReader{objs: map[string]any{}}
	r.put("", "longhorn", &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "longhorn"}, Provisioner: longhorn.CSIDriver})
	for v := range o.volumes {
		vol := fmt.Sprintf("vol-%05d", v)
		lh.Observe(lhObject("Volume", vol, nil, map[string]any{"robustness": "healthy"}))
		for k := range o.replicas {
			n := nodes[rng.IntN(len(nodes))]
			lh.Observe(lhObject("Replica", fmt.Sprintf("%s-r%d", vol, k), map[string]any{"volumeName": vol, "nodeID": n.name},
				map[string]any{"currentState": "running"}))
		}
		claim := fmt.Sprintf("claim-%05d", v)
		r.put("", vol, &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: vol}, Spec: corev1.PersistentVolumeSpec{
			StorageClassName:       "longhorn",
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: longhorn.CSIDriver, VolumeHandle: vol}},
			ClaimRef:               &corev1.ObjectReference{Namespace: "app", Name: claim}}})
		r.put("app", claim, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: claim},
			Spec: corev1.PersistentVolumeClaimSpec{VolumeName: vol, StorageClassName: ptr.To("longhorn")}})
	}
	view.Refresh(context.Background())
	return world{names: names, ext: &placement.Extender{View: view, Volumes: &placement.Volumes{Reader: r, Drivers: set}, Log: logr.Discard()}}
}

func lhObject(kind, name string, spec, status map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	if spec != nil {
		u.Object["spec"] = spec
	}
	if status != nil {
		u.Object["status"] = status
	}
	u.SetAPIVersion("longhorn.io/v1beta2")
	u.SetKind(kind)
	u.SetNamespace("longhorn-system")
	u.SetName(name)
	return u
}

// serverTimes records how long the handler takes per request.
type serverTimes struct {
	mu    sync.Mutex
	times []time.Duration
}

func (s *serverTimes) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(w, r)
		d := time.Since(start)
		s.mu.Lock()
		s.times = append(s.times, d)
		s.mu.Unlock()
	})
}

func (s *serverTimes) reset() {
	s.mu.Lock()
	s.times = nil
	s.mu.Unlock()
}

// take returns the times recorded since reset, without the client's warm-up requests.
func (s *serverTimes) take() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.times[min(len(s.times), warmup):]...)
}
