package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/catalog"
	"stork.dev/stork/backup/engine/repo"
	"stork.dev/stork/backup/locator"
	"stork.dev/stork/internal/conditions"
	"stork.dev/stork/internal/names"
)

// Annotations on the Backups sync imports.
const (
	// ImportedFromAnnotation names the BackupLocation a Backup was imported from. It is set
	// when the object is created, so the Backup controller never mistakes an imported Backup,
	// whose status is written just after, for one to make.
	ImportedFromAnnotation = "stork.dev/imported-from"
	// SourceUIDAnnotation is the UID the Backup had in the cluster that made it.
	SourceUIDAnnotation = storkv1.AnnotationSourceUID
)

// SyncReconciler lists the backups in each readable location (Available, or refusing only writes) every sync period and makes a
// Backup object, in the location's namespace, for each complete backup (one with a record) that
// has none: how a cluster sees the backups another cluster writes, e.g. to restore them after a
// disaster. Imported Backups whose record is gone (deleted by the cluster that made them) are
// deleted. It never writes to the location, so ReadOnly locations work.
type SyncReconciler struct {
	Client   client.Client
	Repos    locator.Catalogs
	Recorder events.EventRecorder
	// AdminNamespace is Stork's namespace. Its locations import the backups of every namespace;
	// a location in another namespace imports only that namespace's backups, so that tenants
	// sharing a bucket do not see (and restore) each other's data.
	AdminNamespace string
}

// SetupWithManager registers the controller.
func (r *SyncReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("backupsync").For(&storkv1.BackupLocation{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: 2}).Complete(r)
}

func (r *SyncReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	loc := &storkv1.BackupLocation{}
	if err := r.Client.Get(ctx, req.NamespacedName, loc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	period := time.Minute
	if loc.Spec.SyncPeriod != nil {
		period = loc.Spec.SyncPeriod.Duration
	}
	if loc.DeletionTimestamp != nil || !locator.Readable(loc) {
		return ctrl.Result{RequeueAfter: period}, nil
	}
	if last := loc.Status.LastSyncTime; last != nil && time.Since(last.Time) < period {
		return ctrl.Result{RequeueAfter: period - time.Since(last.Time)}, nil
	}
	n, problems, err := r.sync(ctx, loc)
	if err != nil {
		// The location controller reports access problems; this says what sync could not do.
		conditions.Event(r.Recorder, loc, "Sync", corev1.EventTypeWarning, "SyncFailed", err.Error())
		return ctrl.Result{RequeueAfter: period}, nil
	}
	for _, p := range problems {
		conditions.Event(r.Recorder, loc, "Sync", corev1.EventTypeWarning, "RecordSkipped", p.Error())
	}
	orig := loc.DeepCopy()
	now := metav1.Now()
	loc.Status.LastSyncTime, loc.Status.Backups = &now, int32(n)
	if err := r.Client.Status().Patch(ctx, loc, client.MergeFrom(orig)); err != nil {
		return ctrl.Result{}, fmt.Errorf("updating the sync status of BackupLocation %s: %w", req.NamespacedName, err)
	}
	return ctrl.Result{RequeueAfter: period}, nil
}

// sync brings the location's namespace's Backups in line with the records in the repository
// and returns how many records there are. A record that cannot be imported is a problem for
// that record only: the others are imported, and it is tried again next time.
func (r *SyncReconciler) sync(ctx context.Context, loc *storkv1.BackupLocation) (int, []error, error) {
	cat, err := r.Repos.Catalog(ctx, loc)
	if err != nil {
		return 0, nil, err
	}
	records, err := cat.Records(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("listing the backups in %s: %w", loc.Spec.URL, err)
	}
	var list storkv1.BackupList
	if err := r.Client.List(ctx, &list, client.InNamespace(loc.Namespace)); err != nil {
		return 0, nil, fmt.Errorf("listing Backups in %s: %w", loc.Namespace, err)
	}
	known := map[string]bool{}                 // source UIDs of the complete Backups here
	unfinished := map[string]*storkv1.Backup{} // imported, but the status was not written
	taken := map[string]bool{}                 // names in use
	for i := range list.Items {
		b := &list.Items[i]
		taken[b.Name] = true
		known[string(b.UID)] = true // this cluster's own
		if uid := b.Annotations[SourceUIDAnnotation]; uid != "" {
			if b.Status.RecordID == "" {
				unfinished[uid] = b
			} else {
				known[uid] = true
			}
		}
	}
	present := map[string]bool{}
	var problems []error
	n := 0
	for _, s := range records {
		uid := s.Tags[catalog.TagBackupUID]
		if loc.Namespace != r.AdminNamespace && s.Tags[catalog.TagNamespace] != loc.Namespace {
			continue
		}
		n++
		present[uid] = true
		if known[uid] {
			continue
		}
		if err := r.importRecord(ctx, loc, cat, s, taken, unfinished[uid]); err != nil {
			problems = append(problems, err)
		}
	}
	for i := range list.Items {
		b := &list.Items[i]
		if b.Annotations[ImportedFromAnnotation] != loc.Name || present[b.Annotations[SourceUIDAnnotation]] || b.DeletionTimestamp != nil {
			continue
		}
		// Its record is gone: the cluster that made it deleted it.
		if err := r.Client.Delete(ctx, b); client.IgnoreNotFound(err) != nil {
			problems = append(problems, fmt.Errorf("deleting Backup %s, whose data is gone from %s: %w", b.Name, loc.Spec.URL, err))
			continue
		}
		conditions.Event(r.Recorder, loc, "Sync", corev1.EventTypeNormal, "BackupRemoved",
			fmt.Sprintf("Backup %s was deleted: its record is no longer in %s", b.Name, loc.Spec.URL))
	}
	return n, problems, nil
}

// importRecord makes the Backup object of one record, named like the original unless another
// Backup has that name, or completes the status of b, made by an earlier sync that stopped
// before writing it.
func (r *SyncReconciler) importRecord(ctx context.Context, loc *storkv1.BackupLocation, cat catalog.Catalog, s repo.SnapshotInfo, taken map[string]bool, b *storkv1.Backup) error {
	rec, err := cat.ReadRecord(ctx, s.ID)
	if err != nil {
		return fmt.Errorf("reading backup record %s in %s: %w", s.ID, loc.Spec.URL, err)
	}
	if rec.UID != s.Tags[catalog.TagBackupUID] {
		return fmt.Errorf("backup record %s in %s names Backup UID %s but is tagged %s: not imported", s.ID, loc.Spec.URL, rec.UID, s.Tags[catalog.TagBackupUID])
	}
	if b == nil {
		name := rec.Name
		if taken[name] {
			name = fmt.Sprintf("%s-%.8s", rec.Name, rec.UID)
		}
		b = &storkv1.Backup{
			ObjectMeta: metav1.ObjectMeta{Namespace: loc.Namespace, Name: name,
				Annotations: map[string]string{ImportedFromAnnotation: loc.Name, SourceUIDAnnotation: rec.UID},
				Labels:      map[string]string{"stork.dev/location": loc.Name, "stork.dev/source-cluster": names.LabelValue(rec.Cluster)}},
			Spec: storkv1.BackupSpec{BackupLocation: loc.Name, DeletionPolicy: storkv1.DeletionRetain},
		}
		if err := r.Client.Create(ctx, b); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return nil // another sync made it; the next one sees it
			}
			return fmt.Errorf("creating Backup %s/%s for record %s: %w", b.Namespace, b.Name, s.ID, err)
		}
		taken[name] = true
	}
	orig := b.DeepCopy()
	st := &b.Status
	st.Imported, st.Phase, st.Cluster, st.SourceNamespace, st.Zones = true, rec.Phase, rec.Cluster, rec.Namespace, rec.Zones
	st.Volumes, st.ResourceCount, st.ResourcesSnapshotID, st.RecordID = rec.Volumes, rec.ResourceCount, rec.ResourcesSnapshotID, s.ID.String()
	start, end := metav1.NewTime(rec.StartTime), metav1.NewTime(rec.CompletionTime)
	st.StartTime, st.CompletionTime = &start, &end
	for _, v := range rec.Volumes {
		st.Progress.BytesDone += v.Progress.BytesDone
		st.Progress.BytesTotal += v.Progress.BytesTotal
		st.Progress.BytesSkipped += v.Progress.BytesSkipped
	}
	st.Progress.ItemsDone, st.Progress.ItemsTotal = int64(len(rec.Volumes)), int64(len(rec.Volumes))
	conditions.Set(&st.Conditions, b.Generation, storkv1.ConditionReady, rec.Phase == storkv1.BackupCompleted, "Imported",
		fmt.Sprintf("imported from %s: backup %s/%s of cluster %s", loc.Spec.URL, rec.Namespace, rec.Name, rec.Cluster))
	if rec.Signed {
		conditions.Set(&st.Conditions, b.Generation, storkv1.ConditionSigned, true, "SignedRecord",
			fmt.Sprintf("the record is signed with the repository's key: written by cluster %s, or another holder of the key", rec.Cluster))
	} else {
		conditions.Set(&st.Conditions, b.Generation, storkv1.ConditionSigned, false, "Unsigned",
			"the record has no signature (written by a Stork from before signed records): its origin cannot be checked")
	}
	if err := r.Client.Status().Patch(ctx, b, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("writing the status of imported Backup %s/%s: %w", b.Namespace, b.Name, err)
	}
	conditions.Event(r.Recorder, b, "Sync", corev1.EventTypeNormal, "Imported",
		fmt.Sprintf("backup %s/%s of cluster %s found in %s", rec.Namespace, rec.Name, rec.Cluster, loc.Spec.URL))
	return nil
}
