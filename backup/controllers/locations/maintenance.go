package locations

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/archive"
	"stork.dev/stork/backup/engine/catalog"
	"stork.dev/stork/backup/engine/repo"
	"stork.dev/stork/backup/locator"
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
	// EventOrphansForgotten: parts of backups that never completed were forgotten.
	EventOrphansForgotten = "OrphansForgotten"
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
	if err := r.forgetOrphans(ctx, rp, loc); err != nil {
		return nil, err
	}
	return rp.Prune(ctx, archive.Referenced, pruneOptions(loc))
}

// orphanAge is the least age of a part forgetOrphans forgets.
const orphanAge = 24 * time.Hour

// forgetOrphans forgets the parts (volume and objects snapshots) that this cluster's Backups
// wrote to the location when no record names their Backup, the Backup no longer exists, and they
// are older than the prune grace and a day: an upload that wrote its snapshot just after its Backup was
// cancelled and forgotten, or a Backup deleted by hand before it completed. The prune that
// follows frees their data. Parts of running Backups (the Backup exists) and of other clusters
// are never touched.
func (r *Reconciler) forgetOrphans(ctx context.Context, rp *repo.Repository, loc *storkv1.BackupLocation) error {
	if r.Cluster == "" {
		return nil
	}
	snaps, err := rp.Snapshots(ctx)
	if err != nil {
		return fmt.Errorf("listing the repository's snapshots: %w", err)
	}
	recorded := map[string]bool{}
	for _, s := range snaps {
		if s.Tags[catalog.TagKind] == catalog.KindRecord {
			recorded[s.Tags[catalog.TagBackupUID]] = true
		}
	}
	var backups storkv1.BackupList
	if err := r.Client.List(ctx, &backups, client.InNamespace(loc.Namespace)); err != nil {
		return fmt.Errorf("listing the Backups of namespace %s: %w", loc.Namespace, err)
	}
	live := map[string]bool{}
	for _, b := range backups.Items {
		live[string(b.UID)] = true
	}
	// A day at least: a Backup's first volume may wait long for its last before the record, and
	// a second cluster wrongly given this cluster's name must not lose a running upload.
	cutoff := r.now().Add(-max(pruneOptions(loc).Grace, orphanAge))
	var forgot []string
	for _, s := range snaps {
		uid, kind := s.Tags[catalog.TagBackupUID], s.Tags[catalog.TagKind]
		if uid == "" || (kind != catalog.KindVolume && kind != catalog.KindResources) || s.Tags[catalog.TagCluster] != r.Cluster ||
			recorded[uid] || live[uid] || s.Time.After(cutoff) {
			continue
		}
		if err := rp.Forget(ctx, s.ID); err != nil {
			return fmt.Errorf("forgetting snapshot %s of Backup %s/%s, which never completed: %w", s.ID, s.Tags[catalog.TagNamespace], s.Tags[catalog.TagBackup], err)
		}
		forgot = append(forgot, fmt.Sprintf("%s of Backup %s/%s", kind, s.Tags[catalog.TagNamespace], s.Tags[catalog.TagBackup]))
	}
	if len(forgot) > 0 {
		conditions.Event(r.Recorder, loc, "Prune", corev1.EventTypeNormal, EventOrphansForgotten,
			fmt.Sprintf("forgot %d parts of backups that never completed and are gone: %s", len(forgot), strings.Join(forgot, "; ")))
	}
	return nil
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
