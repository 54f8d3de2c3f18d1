package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// StorageNodeName is the name of the StorageNode of a driver on a node.
func StorageNodeName(driver, node string) string { return driver + "." + node }

// LeaseName is the name of the agent's Lease for a node, in the agents' namespace.
func LeaseName(driver, node string) string { return "stork-agent-" + driver + "." + node }

// ErrorLog remembers recent I/O errors for the IOErrors condition.
type ErrorLog struct {
	mu   sync.Mutex
	last time.Time
	err  error
}

// Add records an error.
func (l *ErrorLog) Add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last, l.err = time.Now(), err
}

// Since returns the last error recorded after t.
func (l *ErrorLog) Since(t time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil && l.last.After(t) {
		return l.err
	}
	return nil
}

// Reporter keeps the node's StorageNode and the agent's Lease up to date. It is a
// manager.Runnable.
type Reporter struct {
	Client client.Client
	Log    logr.Logger
	Node   string
	Root   Root
	// Namespace of the agent's Lease.
	Namespace string
	AgentID   string
	Version   string
	// Every is how often the agent probes its storage and renews its Lease (default 10s).
	Every time.Duration
	// LeaseDuration is how long the Lease is valid without renewal (default 40s): after
	// that the controller reports the agent dead.
	LeaseDuration time.Duration
	// NearlyFullPercent of free space or less sets NearlyFull (default DefaultNearlyFullPercent).
	NearlyFullPercent float64
	// ReportEvery bounds how long an unchanged status goes without being written (default 1m).
	ReportEvery time.Duration
	// IOErrorWindow is how long an I/O error keeps IOErrors True (default 10m).
	IOErrorWindow time.Duration
	IOErrors      *ErrorLog
}

func (r *Reporter) defaults() {
	if r.Every == 0 {
		r.Every = 10 * time.Second
	}
	if r.LeaseDuration == 0 {
		r.LeaseDuration = 40 * time.Second
	}
	if r.NearlyFullPercent == 0 {
		r.NearlyFullPercent = DefaultNearlyFullPercent
	}
	if r.ReportEvery == 0 {
		r.ReportEvery = time.Minute
	}
	if r.IOErrorWindow == 0 {
		r.IOErrorWindow = 10 * time.Minute
	}
	if r.IOErrors == nil {
		r.IOErrors = &ErrorLog{}
	}
}

// Start reports until ctx ends. Failures to report are logged and retried at the next round:
// the agent keeps doing its tasks while the API server is unreachable.
func (r *Reporter) Start(ctx context.Context) error {
	r.defaults()
	for {
		if err := r.renewLease(ctx); err != nil && ctx.Err() == nil {
			r.Log.Error(err, "renewing the agent lease")
		}
		st, err := r.observe(ctx)
		if err == nil {
			err = r.report(ctx, st)
		}
		if err != nil && ctx.Err() == nil {
			r.Log.Error(err, "reporting the storage node")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(r.Every):
		}
	}
}

// changed says whether a status differs in what placement reads; capacity counts as changed
// when free space moved by more than 1% of the total.
func changed(a, b storkv1.StorageNodeStatus) bool {
	if a.Health != b.Health || a.Topology != b.Topology || a.StorageRoot != b.StorageRoot || len(a.Conditions) != len(b.Conditions) {
		return true
	}
	for _, c := range b.Conditions {
		old := meta.FindStatusCondition(a.Conditions, c.Type)
		if old == nil || old.Status != c.Status || old.Reason != c.Reason || old.Message != c.Message {
			return true
		}
	}
	d := a.Capacity.FreeBytes - b.Capacity.FreeBytes
	return d*100 > b.Capacity.TotalBytes || -d*100 > b.Capacity.TotalBytes
}

// observe builds the status from the Node's labels and the storage root.
func (r *Reporter) observe(ctx context.Context) (storkv1.StorageNodeStatus, error) {
	node := &corev1.Node{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: r.Node}, node); err != nil {
		return storkv1.StorageNodeStatus{}, fmt.Errorf("reading node %s: %w", r.Node, err)
	}
	st := storkv1.StorageNodeStatus{
		StorageRoot:  string(r.Root),
		AgentVersion: r.Version,
		Topology: storkv1.Topology{
			Region: node.Labels[storkv1.LabelRegion],
			Zone:   node.Labels[storkv1.LabelZone],
			Rack:   node.Labels[storkv1.LabelRack],
		},
	}
	set := func(t string, ok bool, reason, msg string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg})
	}
	set(storkv1.StorageConditionAgentAlive, true, "AgentReporting", "agent "+r.AgentID+" is reporting")

	writable := true
	if err := r.probe(); err != nil {
		writable = false
		set(storkv1.StorageConditionWritable, false, "ProbeFailed", err.Error())
		if errors.Is(err, syscall.EIO) {
			r.IOErrors.Add(err)
		}
	} else {
		set(storkv1.StorageConditionWritable, true, "ProbeSucceeded", "a test file was written, synced, read back and removed")
	}
	if err := r.IOErrors.Since(time.Now().Add(-r.IOErrorWindow)); err != nil {
		set(storkv1.StorageConditionIOErrors, true, "IOErrorsSeen", err.Error())
	} else {
		set(storkv1.StorageConditionIOErrors, false, "NoIOErrors", fmt.Sprintf("no I/O error in the last %s", r.IOErrorWindow))
	}

	nearlyFull := false
	if total, free, pct, err := FreeSpace(string(r.Root)); err != nil {
		writable = false
		set(storkv1.StorageConditionNearlyFull, false, "StatfsFailed", err.Error())
	} else {
		st.Capacity = storkv1.StorageCapacity{TotalBytes: total, FreeBytes: free}
		nearlyFull = pct <= r.NearlyFullPercent
		reason := "EnoughSpace"
		if nearlyFull {
			reason = "LowSpace"
		}
		set(storkv1.StorageConditionNearlyFull, nearlyFull, reason, fmt.Sprintf("%.1f%% free (threshold %.0f%%)", pct, r.NearlyFullPercent))
	}
	switch {
	case !writable:
		st.Health = storkv1.StorageDown
	case nearlyFull || meta.IsStatusConditionTrue(st.Conditions, storkv1.StorageConditionIOErrors):
		st.Health = storkv1.StorageDegraded
	default:
		st.Health = storkv1.StorageHealthy
	}
	return st, nil
}

// probe writes a file under the root, syncs it, reads it back and removes it.
func (r *Reporter) probe() error {
	p := r.Root.probe(r.Node)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	want := make([]byte, 4096)
	_, _ = rand.Read(want)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(want)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("reading %s back: %w", p, err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s read back differs from what was written", p)
	}
	return os.Remove(p)
}

// report creates the StorageNode or updates its status when it differs from st (or was
// written more than ReportEvery ago). Comparing with the object rather than with what this
// agent wrote last also repairs what others changed (the controller marks a silent agent dead).
func (r *Reporter) report(ctx context.Context, st storkv1.StorageNodeStatus) error {
	sn := &storkv1.StorageNode{}
	key := client.ObjectKey{Name: StorageNodeName(DriverName, r.Node)}
	err := r.Client.Get(ctx, key, sn)
	if apierrors.IsNotFound(err) {
		sn = &storkv1.StorageNode{
			ObjectMeta: metav1.ObjectMeta{Name: key.Name},
			Spec:       storkv1.StorageNodeSpec{NodeName: r.Node, Driver: DriverName},
		}
		if err := r.Client.Create(ctx, sn); err != nil {
			return fmt.Errorf("creating StorageNode %s: %w", key.Name, err)
		}
	} else if err != nil {
		return fmt.Errorf("reading StorageNode %s: %w", key.Name, err)
	}
	if hb := sn.Status.LastHeartbeatTime; hb != nil && time.Since(hb.Time) < r.ReportEvery && !changed(sn.Status, st) {
		return nil
	}
	orig := sn.DeepCopy()
	now := metav1.Now()
	// Keep transition times of conditions that did not change.
	conds := sn.Status.Conditions
	for _, c := range st.Conditions {
		meta.SetStatusCondition(&conds, c)
	}
	sn.Status = st
	sn.Status.Conditions = conds
	sn.Status.ObservedGeneration = sn.Generation
	sn.Status.LastHeartbeatTime = &now
	if err := r.Client.Status().Patch(ctx, sn, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("updating StorageNode %s: %w", key.Name, err)
	}
	return nil
}

func (r *Reporter) renewLease(ctx context.Context) error {
	now := metav1.NewMicroTime(time.Now())
	lease := &coordinationv1.Lease{}
	key := client.ObjectKey{Namespace: r.Namespace, Name: LeaseName(DriverName, r.Node)}
	err := r.Client.Get(ctx, key, lease)
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(r.AgentID), LeaseDurationSeconds: ptr.To(int32(r.LeaseDuration.Seconds())),
				AcquireTime: &now, RenewTime: &now},
		}
		return r.Client.Create(ctx, lease)
	}
	if err != nil {
		return err
	}
	orig := lease.DeepCopy()
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != r.AgentID {
		lease.Spec.HolderIdentity, lease.Spec.AcquireTime = ptr.To(r.AgentID), &now
		lease.Spec.LeaseTransitions = ptr.To(ptr.Deref(lease.Spec.LeaseTransitions, 0) + 1)
	}
	lease.Spec.RenewTime = &now
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(r.LeaseDuration.Seconds()))
	return r.Client.Patch(ctx, lease, client.MergeFrom(orig))
}

// DefaultNearlyFullPercent is Reporter.NearlyFullPercent when it is not set.
const DefaultNearlyFullPercent = 10

// FreeSpace returns the size of root's file system, its space free to unprivileged writers, and
// that as a percentage of the size: what the NearlyFull condition is judged on.
func FreeSpace(root string) (total, free int64, pct float64, err error) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(root, &fs); err != nil {
		return 0, 0, 0, err
	}
	total, free = int64(fs.Blocks)*fs.Bsize, int64(fs.Bavail)*fs.Bsize
	return total, free, 100 * float64(free) / float64(max(total, 1)), nil
}
