package restore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/catalog"
	"stork.dev/stork/backup/engine/repo"
	"stork.dev/stork/backup/engine/resources"
	"stork.dev/stork/backup/locator"
	"stork.dev/stork/drivers"
	"stork.dev/stork/internal/crashpoint"
	"stork.dev/stork/internal/retry"
)

// A restore from a Backup goes in three stages, in the order the application needs them:
//  1. plan: each volume's target claim and zone, decided once; then the namespace and the
//     objects the volumes' users need first (service accounts, config maps, secrets);
//  2. volumes: each volume's driver makes it from the backup in its target zone (the local
//     driver: a Download task on a node of that zone) and the claim is bound to it;
//  3. the other objects (services, then workloads), once every volume is final, so pods
//     start on restored data.

// accessName is the access Secret of a Restore, in Stork's namespace.
func accessName(rs *storkv1.Restore) string { return locator.AccessSecretName(rs.UID) }

// beforeVolumes reports whether objects of a kind are restored before the volumes.
func beforeVolumes(kind string) bool {
	for _, k := range resources.Kinds {
		if k.Kind == "PersistentVolumeClaim" {
			return false
		}
		if k.Kind == kind {
			return true
		}
	}
	return false
}

// stepBackup moves a Restore from a Backup on by one reconcile, one phase after the other: the
// Backup must be usable and its location Available; then the volumes are planned and the
// objects volumes need restored (planFromBackup), the volumes imported (importVolumes), and
// the remaining objects restored (finishFromBackup). A phase that must wait or fail returns a
// result to stop at (stop != nil).
func (r *Reconciler) stepBackup(ctx context.Context, rs *storkv1.Restore) (ctrl.Result, error) {
	b, srcNS, stop, err := r.usableBackup(ctx, rs)
	if stop != nil || err != nil {
		return ptr.Deref(stop, ctrl.Result{}), err
	}
	loc, stop, err := r.readableLocation(ctx, rs, b)
	if stop != nil || err != nil {
		return ptr.Deref(stop, ctrl.Result{}), err
	}
	if meta.FindStatusCondition(rs.Status.Conditions, storkv1.ConditionValid) == nil {
		return r.planFromBackup(ctx, rs, b, loc, srcNS)
	}
	if done, err := r.importVolumes(ctx, rs, b, loc); err != nil {
		return ctrl.Result{}, err
	} else if !done {
		return ctrl.Result{RequeueAfter: r.Poll}, nil
	}
	crashpoint.Here(CrashVolumesImported)
	return r.finishFromBackup(ctx, rs, b, loc, srcNS)
}

// Crash points of a restore from a Backup (see internal/crashpoint), each before the status
// records the step.
const (
	// CrashFirstObjectsRestored: the objects that come before volumes (claims, config) are
	// applied.
	CrashFirstObjectsRestored = "restore/first-objects-restored"
	// CrashImportRequested: a volume's driver was asked to import its copy (a download task
	// made).
	CrashImportRequested = "restore/import-requested"
	// CrashVolumesImported: every volume is final, the remaining objects not applied.
	CrashVolumesImported = "restore/volumes-imported"
	// CrashObjectsRestored: every object is applied, the Restore not yet Completed.
	CrashObjectsRestored = "restore/objects-restored"
)

// usableBackup reads the Restore's Backup and the namespace it was taken in; it stops the step
// while the Backup is not complete yet, and fails the Restore when the Backup is missing,
// unusable, or from a namespace this Restore may not restore.
func (r *Reconciler) usableBackup(ctx context.Context, rs *storkv1.Restore) (b *storkv1.Backup, srcNS string, stop *ctrl.Result, err error) {
	b = &storkv1.Backup{}
	key := client.ObjectKey{Namespace: sourceNamespace(rs), Name: rs.Spec.Source.BackupName}
	err = r.Client.Get(ctx, key, b)
	if apierrors.IsNotFound(err) {
		r.fail(rs, "BackupNotFound", fmt.Sprintf("spec.source.backupName: Backup %s does not exist (backups made by another cluster appear once their BackupLocation has synced)", key))
		return nil, "", &ctrl.Result{}, nil
	}
	if err != nil {
		return nil, "", nil, err
	}
	switch b.Status.Phase {
	case storkv1.BackupCompleted, storkv1.BackupPartiallyFailed:
	case storkv1.BackupFailed, storkv1.BackupDeleting:
		r.fail(rs, "BackupNotUsable", fmt.Sprintf("Backup %s is %s and cannot be restored", key, b.Status.Phase))
		return nil, "", &ctrl.Result{}, nil
	default:
		r.setCondition(rs, storkv1.ConditionProgressing, true, "WaitingForBackup", "waiting for Backup "+key.String()+" to complete")
		return nil, "", &ctrl.Result{RequeueAfter: r.Poll}, nil
	}
	srcNS = b.Status.SourceNamespace
	if srcNS == "" {
		srcNS = b.Namespace
	}
	if msg := r.crossNamespaceBackup(rs, srcNS); msg != "" {
		r.fail(rs, "CrossNamespaceNotAllowed", msg)
		return nil, "", &ctrl.Result{}, nil
	}
	return b, srcNS, nil, nil
}

// readableLocation reads the Backup's location; it stops the step while the location is not
// Available and fails the Restore when it is gone.
func (r *Reconciler) readableLocation(ctx context.Context, rs *storkv1.Restore, b *storkv1.Backup) (loc *storkv1.BackupLocation, stop *ctrl.Result, err error) {
	loc = &storkv1.BackupLocation{}
	err = r.Client.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.Spec.BackupLocation}, loc)
	switch {
	case apierrors.IsNotFound(err):
		r.fail(rs, "LocationNotFound", fmt.Sprintf("BackupLocation %s/%s of Backup %s/%s does not exist", b.Namespace, b.Spec.BackupLocation, b.Namespace, b.Name))
		return nil, &ctrl.Result{}, nil
	case err != nil:
		return nil, nil, err
	case !locator.Readable(loc):
		res := r.retryStep(rs, "WaitingForLocation", errors.New(locator.Waiting(loc)))
		return nil, &res, nil
	}
	retry.Succeeded(&rs.Status.Retry, "WaitingForLocation")
	return loc, nil, nil
}

// catalog returns the location's catalog, or records why it cannot be read (a bounded retry)
// and when to try again. The repository is read when objects are restored, not on every poll of
// the volumes.
func (r *Reconciler) catalog(ctx context.Context, rs *storkv1.Restore, loc *storkv1.BackupLocation) (catalog.Catalog, *ctrl.Result) {
	cat, err := r.Repos.Catalog(ctx, loc)
	if err != nil {
		res := r.retryStep(rs, "OpeningRepository", err)
		return nil, &res
	}
	retry.Succeeded(&rs.Status.Retry, "OpeningRepository")
	return cat, nil
}

// planFromBackup plans the volumes and restores the objects that come before them (the
// namespace, what pods refer to, the claims), then marks the Restore Valid. A failure plans
// again next time.
func (r *Reconciler) planFromBackup(ctx context.Context, rs *storkv1.Restore, b *storkv1.Backup, loc *storkv1.BackupLocation, srcNS string) (ctrl.Result, error) {
	st := &rs.Status
	if err := r.planBackup(ctx, rs, b, srcNS); err != nil {
		return ctrl.Result{}, err
	}
	if st.Phase == storkv1.RestoreFailed {
		return ctrl.Result{}, nil
	}
	if len(st.Volumes) > 0 && r.volumesDone(rs) && allFailed(st.Volumes) {
		// Nothing to restore the application onto: no object is created either.
		r.complete(rs)
		return ctrl.Result{}, nil
	}
	cat, stop := r.catalog(ctx, rs, loc)
	if stop != nil {
		st.Volumes = nil // planned again next time
		return *stop, nil
	}
	if reason, msg, err := checkRecord(ctx, cat, b, srcNS); err != nil {
		st.Volumes = nil // planned again next time
		return r.retryStep(rs, "ReadingRecord", err), nil
	} else if msg != "" {
		st.Volumes = nil
		r.fail(rs, reason, msg)
		r.event(rs, corev1.EventTypeWarning, reason, msg)
		return ctrl.Result{}, nil
	}
	retry.Succeeded(&st.Retry, "ReadingRecord")
	failed, err := r.restoreObjects(ctx, rs, cat, b, srcNS, true)
	if err != nil {
		st.Volumes = nil // planned again next time
		return r.retryStep(rs, "RestoringObjects", err), nil
	}
	retry.Succeeded(&st.Retry, "RestoringObjects")
	crashpoint.Here(CrashFirstObjectsRestored)
	if len(failed) > 0 {
		r.event(rs, corev1.EventTypeWarning, "ObjectsFailed", strings.Join(failed, "; "))
	}
	r.setCondition(rs, storkv1.ConditionValid, true, "Planned", fmt.Sprintf("%d claims to restore from Backup %s/%s", len(st.Volumes), b.Namespace, b.Name))
	r.setCondition(rs, storkv1.ConditionProgressing, true, "Restoring", "restoring the volumes")
	return ctrl.Result{Requeue: true}, nil
}

// importVolumes hands the agents access to the location and has each volume's driver import
// its copy; it reports whether every volume is final.
func (r *Reconciler) importVolumes(ctx context.Context, rs *storkv1.Restore, b *storkv1.Backup, loc *storkv1.BackupLocation) (bool, error) {
	if err := locator.EnsureAccessSecret(ctx, r.Client, r.reader(), r.AdminNamespace, accessName(rs), rs.Namespace,
		map[string]string{"stork.dev/restore-namespace": rs.Namespace, "stork.dev/restore": rs.Name}, loc); err != nil {
		return false, err
	}
	for i := range rs.Status.Volumes {
		v := &rs.Status.Volumes[i]
		if v.Phase == storkv1.VolumeSucceeded || v.Phase == storkv1.VolumeFailed {
			continue
		}
		if err := r.importVolume(ctx, rs, b, loc, v); err != nil {
			return false, err
		}
		crashpoint.Here(CrashImportRequested)
	}
	return r.volumesDone(rs), nil
}

// finishFromBackup runs once every volume is final: it drops the agents' access, restores the
// remaining objects (services, workloads), and completes the Restore.
func (r *Reconciler) finishFromBackup(ctx context.Context, rs *storkv1.Restore, b *storkv1.Backup, loc *storkv1.BackupLocation, srcNS string) (ctrl.Result, error) {
	if err := r.dropAccess(ctx, rs); err != nil {
		return ctrl.Result{}, err
	}
	// Workloads are created only for volumes that exist: with none, they would wait forever.
	vols := rs.Status.Volumes
	if rs.Status.ObjectsRestoredTime == nil {
		if len(vols) == 0 || !allFailed(vols) {
			cat, stop := r.catalog(ctx, rs, loc)
			if stop != nil {
				return *stop, nil
			}
			if _, err := r.restoreObjects(ctx, rs, cat, b, srcNS, false); err != nil {
				return r.retryStep(rs, "RestoringObjects", err), nil
			}
			retry.Succeeded(&rs.Status.Retry, "RestoringObjects")
		}
		crashpoint.Here(CrashObjectsRestored)
		now := metav1.Now()
		rs.Status.ObjectsRestoredTime = &now
	}
	if len(rs.Spec.Hooks) > 0 && (len(vols) == 0 || !allFailed(vols)) {
		if wait, err := r.runHooks(ctx, rs, targetNamespace(rs, srcNS)); err != nil || wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, err
		}
	}
	r.complete(rs)
	return ctrl.Result{}, nil
}

func allFailed(vols []storkv1.RestoreVolumeStatus) bool {
	for _, v := range vols {
		if v.Phase != storkv1.VolumeFailed {
			return false
		}
	}
	return true
}

// crossNamespaceBackup says why the Restore may not restore a backup of srcNS where its mapping
// puts it ("" if it may): outside Stork's namespace, a Restore restores into its own namespace
// only, whatever namespace the backup came from.
func (r *Reconciler) crossNamespaceBackup(rs *storkv1.Restore, srcNS string) string {
	if r.AdminNamespace != "" && rs.Namespace == r.AdminNamespace {
		return ""
	}
	if to := targetNamespace(rs, srcNS); to != rs.Namespace {
		return fmt.Sprintf("the Backup holds namespace %s, which would be restored into %s: a Restore in %s restores into %s only; add spec.namespaceMapping {%s: %s}, or create the Restore in %s (Stork's namespace)",
			srcNS, targetNamespace(rs, srcNS), rs.Namespace, rs.Namespace, srcNS, rs.Namespace, r.AdminNamespace)
	}
	return ""
}

// targetNamespace is where a Restore puts what came from namespace srcNS.
func targetNamespace(rs *storkv1.Restore, srcNS string) string {
	if m, ok := rs.Spec.NamespaceMapping[srcNS]; ok {
		return m
	}
	return srcNS
}

// planBackup decides each volume's target claim and target zone, once.
func (r *Reconciler) planBackup(ctx context.Context, rs *storkv1.Restore, b *storkv1.Backup, srcNS string) error {
	if _, err := resources.Prepare(nil, r.mapping(rs)); err != nil {
		r.fail(rs, "InvalidKinds", err.Error())
		return nil
	}
	if msg := checkTransforms(rs.Spec.Transforms); msg != "" {
		r.fail(rs, "InvalidTransforms", msg)
		return nil
	}
	if msg := checkInitHooks(rs.Spec.InitHooks); msg != "" {
		r.fail(rs, "InvalidInitHooks", msg)
		return nil
	}
	zm := rs.Spec.ZoneMapping
	if zm == nil {
		zm = &storkv1.ZoneMapping{Mode: storkv1.ZoneKeep}
	}
	vols := append([]storkv1.BackupVolume(nil), b.Status.Volumes...)
	sort.Slice(vols, func(i, j int) bool { return vols[i].ClaimName < vols[j].ClaimName })
	spread := map[string][]string{} // driver → zones with healthy storage, for Spread
	targets := map[string]string{}
	i := 0 // the wanted volumes' index, for Spread
	for _, bv := range vols {
		if !wanted(rs, bv.ClaimName) {
			continue
		}
		v, err := r.planVolume(ctx, rs, targets, srcNS, bv.ClaimName, bv.Phase == storkv1.VolumeSucceeded && bv.RepositorySnapshotID != "")
		if err != nil {
			return err
		}
		if v.Phase == storkv1.VolumePending || v.Reason == "Replacing" {
			switch zm.Mode {
			case storkv1.ZoneMap:
				z, ok := zm.Zones[bv.Topology.Zone]
				if !ok {
					r.failVolume(rs, &v, "ZoneNotMapped", fmt.Sprintf("claim %s comes from zone %q, which spec.zoneMapping.zones does not map; add %q: <target zone>", bv.ClaimName, bv.Topology.Zone, bv.Topology.Zone))
				}
				v.Zone = z
			case storkv1.ZoneSpread:
				zones, ok := spread[bv.Driver]
				if !ok {
					if zones, err = r.healthyZones(ctx, bv.Driver); err != nil {
						return err
					}
					spread[bv.Driver] = zones
				}
				if len(zones) > 0 {
					v.Zone = zones[i%len(zones)]
				}
				i++
			default:
				v.Zone = bv.Topology.Zone
			}
		}
		rs.Status.Volumes = append(rs.Status.Volumes, v)
	}
	r.missingClaims(rs)
	return nil
}

// healthyZones lists the zones where a driver has healthy storage, sorted.
func (r *Reconciler) healthyZones(ctx context.Context, driver string) ([]string, error) {
	d, ok := r.Drivers.Get(driver)
	if !ok {
		return nil, nil // the volume fails with DriverUnavailable when restored
	}
	nodes, err := d.StorageNodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the storage nodes of driver %s: %w", driver, err)
	}
	set := map[string]bool{}
	for _, n := range nodes {
		if n.Health == storkv1.StorageHealthy && n.Topology.Zone != "" {
			set[n.Topology.Zone] = true
		}
	}
	zones := make([]string, 0, len(set))
	for z := range set {
		zones = append(zones, z)
	}
	sort.Strings(zones)
	return zones, nil
}

// importVolume moves one volume of a backup on: clear the target, have the driver make the
// volume from the backup in the target zone, bind the claim.
func (r *Reconciler) importVolume(ctx context.Context, rs *storkv1.Restore, b *storkv1.Backup, loc *storkv1.BackupLocation, v *storkv1.RestoreVolumeStatus) error {
	var bv *storkv1.BackupVolume
	for i := range b.Status.Volumes {
		if b.Status.Volumes[i].ClaimName == v.SourceClaim {
			bv = &b.Status.Volumes[i]
		}
	}
	if bv == nil {
		r.failVolume(rs, v, "SourceGone", "the Backup no longer lists claim "+v.SourceClaim)
		return nil
	}
	from := "Backup " + b.Name
	existing, ours, ready, err := r.clearTarget(ctx, rs, v, from)
	if err != nil || !ready {
		return err
	}
	d, ok := r.Drivers.Get(bv.Driver)
	imp, isImporter := drivers.As[drivers.Importer](d)
	if !ok || !isImporter {
		r.failVolume(rs, v, "DriverUnavailable", "driver "+bv.Driver+" is not enabled in this Stork or cannot restore backups")
		return nil
	}
	claim := r.claimFor(rs, v, bv.StorageClassName, bv.SizeBytes, nil, bv.AccessModes)
	vs, err := imp.Import(ctx, drivers.ImportRequest{
		ID:                   string(rs.UID) + "/" + v.SourceClaim,
		Namespace:            rs.Namespace,
		Owner:                owner(rs),
		Location:             loc.Name,
		AccessSecret:         accessName(rs),
		RepositorySnapshotID: bv.RepositorySnapshotID, DataBytes: bv.Progress.BytesTotal,
		Topology:        storkv1.Topology{Zone: v.Zone},
		TargetNamespace: v.TargetNamespace, TargetClaim: v.TargetClaim,
		SizeBytes: claim.Spec.Resources.Requests.Storage().Value(), StorageClassName: *claim.Spec.StorageClassName, AccessModes: claim.Spec.AccessModes,
		Verify: rs.Spec.Verify,
		Paths:  rs.Spec.Paths,
	})
	if err != nil {
		return fmt.Errorf("driver %s: restoring claim %s from Backup %s: %w", bv.Driver, v.SourceClaim, b.Name, err)
	}
	if vs.Phase == storkv1.VolumeSucceeded && rs.Spec.Verify && vs.Verification == nil {
		r.failVolume(rs, v, "VerificationUnsupported", "driver "+bv.Driver+" restored the volume but does not verify restores: restore without spec.verify")
		return nil
	}
	v.Verification = vs.Verification
	if vs.Reason == drivers.ReasonNoHealthyStorage && rs.Status.StartTime != nil && time.Since(rs.Status.StartTime.Time) > r.storageWait() {
		r.failVolume(rs, v, vs.Reason, fmt.Sprintf("waited %s for healthy storage: %s", r.storageWait(), vs.Message))
		return nil
	}
	return r.bindClaim(ctx, rs, v, vs, claim, existing, ours, from)
}

// storageWait is how long a volume waits for healthy storage in its zone.
func (r *Reconciler) storageWait() time.Duration {
	if r.StorageWait > 0 {
		return r.StorageWait
	}
	return 10 * time.Minute
}

func (r *Reconciler) mapping(rs *storkv1.Restore) resources.Mapping {
	return resources.Mapping{Namespaces: rs.Spec.NamespaceMapping, Claims: rs.Spec.ClaimNameMapping, StorageClasses: rs.Spec.StorageClassMapping,
		IncludeKinds: rs.Spec.IncludeKinds, ExcludeKinds: rs.Spec.ExcludeKinds}
}

// restoreObjects recreates the Backup's objects of one stage (before the volumes, or after) in
// restore order, records each result in status, and returns the failures. An API error that
// may pass is returned as an error: the stage is done again, and objects it already made count
// as Created.
func (r *Reconciler) restoreObjects(ctx context.Context, rs *storkv1.Restore, cat catalog.Catalog, b *storkv1.Backup, srcNS string, first bool) ([]string, error) {
	var objs []*unstructured.Unstructured
	if b.Status.ResourcesSnapshotID != "" && !rs.Spec.VolumesOnly {
		id, err := repo.ParseID(b.Status.ResourcesSnapshotID)
		if err != nil {
			return nil, fmt.Errorf("Backup %s: status.resourcesSnapshotID: %w", b.Name, err)
		}
		if objs, err = cat.ReadResources(ctx, id); err != nil {
			return nil, fmt.Errorf("reading the objects of Backup %s: %w", b.Name, err)
		}
	}
	prepared, err := resources.Prepare(objs, r.mapping(rs))
	if err != nil {
		return nil, err
	}
	restored := map[string]bool{} // namespace/claim of the volumes this Restore makes
	for _, v := range rs.Status.Volumes {
		restored[v.TargetNamespace+"/"+v.TargetClaim] = true
	}
	// Everything is restored into the one namespace the Backup's namespace maps to, whatever
	// the stored objects say: a backup is of one namespace, and one crafted to hold objects of
	// others (kube-system, say) must not reach them with Stork's rights.
	target := targetNamespace(rs, srcNS)
	var results []storkv1.ObjectResult
	var failed []string
	for _, o := range prepared {
		if beforeVolumes(o.GetKind()) != first {
			continue
		}
		if o.GetKind() == "PersistentVolumeClaim" && restored[o.GetNamespace()+"/"+o.GetName()] {
			// Made from the volume's record; it takes the backed-up claim's labels and
			// annotations, which applications select claims by.
			if err := r.labelClaim(ctx, rs, o); err != nil {
				return nil, err
			}
			continue
		}
		ns := o.GetNamespace()
		if o.GetKind() == "Namespace" {
			ns = o.GetName()
		}
		result, msg := "", ""
		if ns != target {
			result, msg = Failed, fmt.Sprintf("the Backup is of namespace %s, restored into %s: an object of namespace %q is not restored", srcNS, target, ns)
		} else if err := transform(o, rs.Spec.Transforms); err != nil {
			result, msg = Failed, err.Error()
		} else if hooks, err := addInitContainers(o, rs.Spec.InitHooks); err != nil {
			result, msg = Failed, err.Error()
		} else if result, msg, err = Apply(ctx, r.Client, o, rs.Spec.ExistingObjectPolicy, string(rs.UID)); err != nil {
			return nil, fmt.Errorf("restoring %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		} else if len(hooks) > 0 && (result == Created || result == Updated) {
			msg = strings.TrimPrefix(msg+"; ", "; ") + "init containers of spec.initHooks " + strings.Join(hooks, ", ") + " added"
		}
		results = append(results, storkv1.ObjectResult{Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName(), Result: result, Message: msg})
		if result == "Failed" {
			failed = append(failed, fmt.Sprintf("%s %s/%s: %s", o.GetKind(), o.GetNamespace(), o.GetName(), msg))
		}
	}
	rs.Status.Objects = append(rs.Status.Objects, results...)
	// The namespaces of the volumes exist even with no objects to restore.
	if first {
		for _, v := range rs.Status.Volumes {
			if v.Phase != storkv1.VolumeFailed {
				if err := r.ensureNamespace(ctx, v.TargetNamespace); err != nil {
					return nil, err
				}
			}
		}
	}
	return failed, nil
}

// labelClaim adds the labels and annotations of the backed-up claim o to the claim this Restore
// made for it; those the Restore set win.
func (r *Reconciler) labelClaim(ctx context.Context, rs *storkv1.Restore, o *unstructured.Unstructured) error {
	pvc := &corev1.PersistentVolumeClaim{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: o.GetNamespace(), Name: o.GetName()}, pvc); err != nil {
		return client.IgnoreNotFound(err)
	}
	if pvc.Annotations[storkv1.AnnotationRestoredBy] != string(rs.UID) {
		return nil // skipped, or someone else's
	}
	orig := pvc.DeepCopy()
	pvc.Labels, pvc.Annotations = merged(o.GetLabels(), pvc.Labels), merged(o.GetAnnotations(), pvc.Annotations)
	if err := r.Client.Patch(ctx, pvc, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("labelling PersistentVolumeClaim %s/%s: %w", pvc.Namespace, pvc.Name, err)
	}
	return nil
}

// merged is base with over's entries on top.
func merged(base, over map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

func (r *Reconciler) reader() client.Reader {
	if r.Reader != nil {
		return r.Reader
	}
	return r.Client
}

// checkRecord reads the Backup's record from its location and compares what the restore is
// about to use with it: the source namespace, the objects' snapshot and every volume's
// repository snapshot. The Backup object is a copy in this cluster that anyone allowed to patch
// it could change (pointing a restore at another application's data); the record is signed
// with the repository's key (catalog.ReadRecord refuses one whose signature does not verify).
// A mismatch returns a reason and a message naming the field; err is a failure to read.
func checkRecord(ctx context.Context, cat catalog.Catalog, b *storkv1.Backup, srcNS string) (reason, msg string, err error) {
	if b.Status.RecordID == "" {
		return "", "", nil // a Backup from before records were kept: nothing to compare with
	}
	name := b.Namespace + "/" + b.Name
	id, err := repo.ParseID(b.Status.RecordID)
	if err != nil {
		return "RecordMismatch", fmt.Sprintf("Backup %s status.recordID %q is not a repository snapshot ID; nothing was restored", name, b.Status.RecordID), nil
	}
	rec, err := cat.ReadRecord(ctx, id)
	var damaged *repo.DamagedError
	switch {
	case errors.Is(err, catalog.ErrBadSignature), errors.Is(err, catalog.ErrNotRecord):
		return "UnverifiedRecord", fmt.Sprintf("the record of Backup %s: %v; nothing was restored", name, err), nil
	case errors.As(err, &damaged):
		return "RecordDamaged", fmt.Sprintf("reading the record of Backup %s: %v; nothing was restored", name, err), nil
	case err != nil:
		return "", "", fmt.Errorf("reading the record %s of Backup %s: %w", id, name, err)
	}
	uid := string(b.UID)
	if src := b.Annotations[storkv1.AnnotationSourceUID]; b.Status.Imported && src != "" {
		uid = src
	}
	mismatch := func(field, have, signed string) (string, string, error) {
		return "RecordMismatch", fmt.Sprintf("Backup %s %s is %q but its signed record %s says %q: the Backup object was changed after it was written; nothing was restored",
			name, field, have, id, signed), nil
	}
	if rec.UID != uid {
		return mismatch("UID (metadata.uid, or annotation "+storkv1.AnnotationSourceUID+" when imported)", uid, rec.UID)
	}
	if rec.Namespace != srcNS {
		return mismatch("source namespace (status.sourceNamespace)", srcNS, rec.Namespace)
	}
	if rec.ResourcesSnapshotID != b.Status.ResourcesSnapshotID {
		return mismatch("status.resourcesSnapshotID", b.Status.ResourcesSnapshotID, rec.ResourcesSnapshotID)
	}
	signed := map[string]string{}
	for _, v := range rec.Volumes {
		signed[v.ClaimName] = v.RepositorySnapshotID
	}
	for _, v := range b.Status.Volumes {
		if v.RepositorySnapshotID != signed[v.ClaimName] {
			return mismatch("status.volumes["+v.ClaimName+"].repositorySnapshotID", v.RepositorySnapshotID, signed[v.ClaimName])
		}
	}
	// An unsigned record (an older Stork's) is compared all the same; the condition Signed of
	// an imported Backup says its origin is unproven.
	return "", "", nil
}

// retryStep records a failed attempt of step in status (condition Progressing, status.retry) and
// says when to try again; once the retry policy's limit has passed, it fails the Restore with
// the step's name and how often it was tried.
func (r *Reconciler) retryStep(rs *storkv1.Restore, step string, err error) ctrl.Result {
	wait, giveUp, summary := r.Retry.Failed(&rs.Status.Retry, step, err.Error(), time.Now())
	if giveUp {
		r.fail(rs, step+"Failed", summary)
		return ctrl.Result{}
	}
	r.setCondition(rs, storkv1.ConditionProgressing, true, step, err.Error())
	return ctrl.Result{RequeueAfter: wait}
}
