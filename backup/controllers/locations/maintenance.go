package locations

import (
	"context"
	"fmt"
	"stork.dev/stork/backup/locator"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/archive"
	"stork.dev/stork/backup/engine/repo"
	"stork.dev/stork/internal/conditions"
	"stork.dev/stork/internal/units"
)

// Defaults of spec.maintenance.
const (
	DefaultPruneInterval = 24 * time.Hour
	DefaultPruneGrace    = time.Hour
	// DefaultPruneTimeout bounds one prune. A prune reads the whole index and every snapshot's
	// trees, and may repack: far longer than a check may take.
	DefaultPruneTimeout = 30 * time.Minute
	// minPruneInterval is the API's minimum, enforced here too in case the CRD's validation
	// is older than the controller.
	minPruneInterval = 10 * time.Second
)

// Events of maintenance.
const (
	EventPruned      = "Pruned"
	EventPruneFailed = "PruneFailed"
)

// notPrunedYet is status.lastPruneResult between a location's first Available check and its
// first prune.
const notPrunedYet = "not pruned yet: the first prune is one maintenance interval after the location became Available"

var (
	prunes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stork_location_prunes_total", Help: "Prunes of BackupLocations' repositories, by result (succeeded or failed).",
	}, []string{"result"})
	pruneDeletedBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "stork_location_prune_deleted_bytes_total", Help: "Bytes of pack files that prunes of BackupLocations deleted.",
	})
)

// pruneInterval is spec.maintenance.interval or its default.
func pruneInterval(loc *storkv1.BackupLocation) time.Duration {
	if m := loc.Spec.Maintenance; m != nil && m.Interval != nil {
		return max(m.Interval.Duration, minPruneInterval)
	}
	return DefaultPruneInterval
}

// pruneOptions are repo's defaults with the location's grace period (0 is allowed: it deletes
// at the first prune what no backup that began earlier may still use).
func pruneOptions(loc *storkv1.BackupLocation) repo.PruneOptions {
	o := repo.DefaultPruneOptions()
	o.Grace = DefaultPruneGrace // the API's default, whatever storkctl's becomes
	if m := loc.Spec.Maintenance; m != nil && m.Grace != nil {
		o.Grace = max(m.Grace.Duration, 0)
	}
	return o
}

// prunable says whether the location is one to prune now: writable, not being deleted, and
// found Available by a check of its current spec.
func prunable(loc *storkv1.BackupLocation) bool {
	st := &loc.Status
	return loc.Spec.AccessMode != storkv1.AccessReadOnly && loc.DeletionTimestamp == nil &&
		st.Phase == storkv1.BackupLocationAvailable && st.ObservedGeneration == loc.Generation
}

// nextPrune returns when the location's next prune is due, or false when none is planned.
func nextPrune(loc *storkv1.BackupLocation) (time.Time, bool) {
	if !prunable(loc) || loc.Status.LastPruneTime == nil {
		return time.Time{}, false
	}
	return loc.Status.LastPruneTime.Add(pruneInterval(loc)), true
}

// maintain prunes the location's repository when a prune is due and records the outcome in
// the status. A failed prune is reported (status, Event, metric) and tried again an interval
// later; it says nothing of the location's availability, which only the check decides.
func (r *Reconciler) maintain(ctx context.Context, loc *storkv1.BackupLocation) error {
	if !prunable(loc) {
		return nil
	}
	orig := loc.DeepCopy()
	st := &loc.Status
	if st.LastPruneTime == nil {
		// A location is first pruned one interval after it was first found Available, not at
		// once: a repository just initialised has nothing to prune, and a controller upgraded
		// in a cluster of many locations must not prune them all at the same moment. Setting
		// lastPruneTime here, as if a prune had run, is the simplest record of that start, and
		// lastPruneResult says no prune ran.
		now := metav1.NewTime(r.now())
		st.LastPruneTime, st.LastPruneResult = &now, notPrunedYet
	} else {
		if due, _ := nextPrune(loc); r.now().Before(due) {
			return nil
		}
		rep, err := r.prune(ctx, loc)
		r.recordPrune(loc, rep, err)
	}
	if err := r.Client.Status().Patch(ctx, loc, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("updating the maintenance status of BackupLocation %s/%s: %w", loc.Namespace, loc.Name, err)
	}
	return nil
}

// prune opens the location's repository on its own (not the controllers' shared one: a prune
// reloads and rewrites the index) and prunes it, within PruneTimeout.
func (r *Reconciler) prune(ctx context.Context, loc *storkv1.BackupLocation) (*repo.PruneReport, error) {
	a, err := locator.Resolve(ctx, r.Secrets, loc)
	if err != nil {
		return nil, err
	}
	timeout := r.PruneTimeout
	if timeout <= 0 {
		timeout = DefaultPruneTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	store, rp, err := a.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	defer rp.Close()
	return rp.Prune(ctx, archive.Referenced, pruneOptions(loc))
}

// recordPrune writes a prune's outcome into the status, the metrics and, when the prune failed
// or freed space, an Event. The interval counts from the end of the prune, so that a prune
// longer than the interval is not followed by another at once.
func (r *Reconciler) recordPrune(loc *storkv1.BackupLocation, rep *repo.PruneReport, err error) {
	st := &loc.Status
	now := metav1.NewTime(r.now())
	st.LastPruneTime = &now
	if err != nil {
		// What a failed prune did before failing is safe to leave: the next one resumes it.
		st.LastPruneResult = "failed: " + err.Error()
		prunes.WithLabelValues("failed").Inc()
		conditions.Event(r.Recorder, loc, "Prune", corev1.EventTypeWarning, EventPruneFailed,
			fmt.Sprintf("pruning the repository in %s: %v", loc.Spec.URL, err))
		return
	}
	st.LastPruneResult = PruneSummary(rep)
	prunes.WithLabelValues("succeeded").Inc()
	pruneDeletedBytes.Add(float64(rep.BytesDeleted))
	if rep.PacksDeleted > 0 || rep.PacksLocked > 0 {
		conditions.Event(r.Recorder, loc, "Prune", corev1.EventTypeNormal, EventPruned, st.LastPruneResult)
	}
}

// PruneSummary is a one-line account of a prune, as storkctl repo prune prints it.
func PruneSummary(rep *repo.PruneReport) string {
	s := fmt.Sprintf("%d blobs in use; marked %d packs (%s) for deletion; deleted %d packs (%s)",
		rep.BlobsReferenced, rep.PacksMarked, units.Bytes(rep.BytesMarked), rep.PacksDeleted, units.Bytes(rep.BytesDeleted))
	if rep.PacksKept > 0 {
		s += fmt.Sprintf(", kept %d that new snapshots use", rep.PacksKept)
	}
	if n := len(rep.Waiting); n > 0 {
		s += fmt.Sprintf("; %d deletion marks wait for their grace period or for running backups", n)
	}
	if locked := rep.LockedSummary(); locked != "" {
		s += "; " + locked
	}
	return s
}
