package restore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/hooks"
	"stork.dev/stork/backup/locator"
	"stork.dev/stork/drivers"
	"stork.dev/stork/internal/conditions"
	"stork.dev/stork/internal/retry"
)

var restoresFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "stork_restores_total", Help: "Restores that reached a final phase, by phase.",
}, []string{"phase"})

// Reconciler restores Snapshots into new claims: for each captured volume it decides the target
// claim (namespace and name mappings, existing-claim policy) once, asks the volume's driver for
// a new volume pre-bound to that claim, creates the claim, and waits for it to bind.
type Reconciler struct {
	Client client.Client
	// Reader reads the Restore at the start of each reconcile; an uncached reader (the
	// manager's APIReader) keeps a plan from being made twice. Defaults to Client.
	Reader   client.Reader
	Drivers  *drivers.Set
	Recorder events.EventRecorder
	Poll     time.Duration
	// AdminNamespace is Stork's namespace: only Restores there may read Snapshots of, or
	// restore into, other namespaces. Restores from Backups make their access Secrets there.
	AdminNamespace string
	// Repos gives the catalogs of the locations' repositories, for restores from Backups (a
	// *locator.Cache).
	Repos locator.Catalogs
	// Hooks runs spec.hooks in the restored pods; without it, a Restore's hooks fail.
	Hooks *hooks.Runner
	// StorageWait bounds how long a volume waits for healthy storage in its target zone
	// (default 10 minutes): storage there that is down for a moment (an agent restarting)
	// does not fail the restore, storage that stays down does.
	StorageWait time.Duration
	// Retry bounds the retries of a failing step (reading the Backup's record, restoring its
	// objects): then the Restore fails.
	Retry retry.Policy
}

// SetupWithManager registers the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Poll == 0 {
		r.Poll = 2 * time.Second
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("restore").
		For(&storkv1.Restore{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(r)
}

func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rs := &storkv1.Restore{}
	if err := r.reader().Get(ctx, req.NamespacedName, rs); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if rs.DeletionTimestamp != nil {
		return r.cancel(ctx, rs)
	}
	if final(rs.Status.Phase) {
		return ctrl.Result{}, errors.Join(r.dropAccess(ctx, rs), r.setFinalizer(ctx, rs, false))
	}
	if err := r.setFinalizer(ctx, rs, true); err != nil {
		return ctrl.Result{}, err
	}
	if wait := retry.Wait(rs.Status.Retry, time.Now()); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	orig := rs.DeepCopy()
	result, err := r.step(ctx, rs)
	if err != nil {
		return ctrl.Result{}, err
	}
	rs.Status.ObservedGeneration = rs.Generation
	done := final(rs.Status.Phase)
	if done {
		// Revoke first, publish second, as for Backups: a finished Restore has no live
		// credentials beside it.
		if err := r.dropAccess(ctx, rs); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := r.Client.Status().Patch(ctx, rs, client.MergeFrom(orig)); err != nil {
		return ctrl.Result{}, fmt.Errorf("updating the status of Restore %s: %w", req.NamespacedName, err)
	}
	if done {
		restoresFinished.WithLabelValues(string(rs.Status.Phase)).Inc()
		return result, r.setFinalizer(ctx, rs, false)
	}
	return result, nil
}

// finalizer keeps a running Restore until it is recorded as Cancelled.
const finalizer = "stork.dev/restore"

// setFinalizer adds or removes the finalizer, with a patch (a Restore's spec is immutable, and
// the controller may only patch Restores).
func (r *Reconciler) setFinalizer(ctx context.Context, rs *storkv1.Restore, on bool) error {
	orig := rs.DeepCopy()
	var changed bool
	if on {
		changed = controllerutil.AddFinalizer(rs, finalizer)
	} else {
		changed = controllerutil.RemoveFinalizer(rs, finalizer)
	}
	if !changed {
		return nil
	}
	if err := r.Client.Patch(ctx, rs, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("updating the finalizers of Restore %s/%s: %w", rs.Namespace, rs.Name, err)
	}
	return nil
}

// cancel ends a Restore deleted before it finished: it records Cancelled (phase, condition,
// Event, metric), revokes its access, has the drivers remove the volumes not handed over yet
// (discardUnfinished), and lets it go. Its remaining tasks, owned by it, are then deleted by the
// garbage collector, which makes the agents and movers stop them and remove their temporaries;
// claims already bound to restored volumes stay.
func (r *Reconciler) cancel(ctx context.Context, rs *storkv1.Restore) (ctrl.Result, error) {
	if err := r.dropAccess(ctx, rs); err != nil {
		return ctrl.Result{}, err
	}
	if !controllerutil.ContainsFinalizer(rs, finalizer) {
		return ctrl.Result{}, nil
	}
	if !final(rs.Status.Phase) {
		orig := rs.DeepCopy()
		now := metav1.Now()
		rs.Status.Phase, rs.Status.CompletionTime = storkv1.RestoreCancelled, &now
		done := 0
		for _, v := range rs.Status.Volumes {
			if v.Phase == storkv1.VolumeSucceeded {
				done++
			}
		}
		r.finish(rs, false, "Cancelled", fmt.Sprintf("the Restore was deleted before it finished: its work is stopped; %d of %d claims had been restored and stay", done, len(rs.Status.Volumes)))
		if err := r.Client.Status().Patch(ctx, rs, client.MergeFrom(orig)); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("recording the cancellation of Restore %s/%s: %w", rs.Namespace, rs.Name, err)
		}
		restoresFinished.WithLabelValues(string(storkv1.RestoreCancelled)).Inc()
	}
	if done, err := r.discardUnfinished(ctx, rs); err != nil || !done {
		return ctrl.Result{RequeueAfter: r.Poll}, err
	}
	return ctrl.Result{}, r.setFinalizer(ctx, rs, false)
}

// discardUnfinished has the drivers remove the volumes made for the claims of a cancelled
// Restore that were not handed over (their volumes restored, or being restored, but no claim
// bound yet): nothing the user never got is left. It reports whether every one is gone; the
// finalizer stays until then, so the tasks and the Restore's ownership of them stay too.
func (r *Reconciler) discardUnfinished(ctx context.Context, rs *storkv1.Restore) (bool, error) {
	done := true
	for _, v := range rs.Status.Volumes {
		if v.Phase == storkv1.VolumeSucceeded {
			continue // handed over: the claim is the user's
		}
		for _, d := range r.Drivers.All() {
			dis, ok := drivers.As[drivers.Discarder](d)
			if !ok {
				continue
			}
			st, err := dis.Discard(ctx, drivers.DiscardRequest{ID: string(rs.UID) + "/" + v.SourceClaim, Namespace: rs.Namespace, Owner: owner(rs)})
			if err != nil {
				return false, fmt.Errorf("driver %s: discarding the volume restored for claim %s: %w", d.Name(), v.SourceClaim, err)
			}
			switch {
			case !st.Final():
				done = false
			case st.Reason == drivers.ReasonDiscarded:
				r.event(rs, corev1.EventTypeNormal, "VolumeDiscarded", fmt.Sprintf("claim %s: the volume %s restored for it was never handed over; removed", v.TargetClaim, st.VolumeName))
			case st.Phase == storkv1.VolumeFailed:
				r.event(rs, corev1.EventTypeWarning, "VolumeNotDiscarded", fmt.Sprintf("claim %s: %s: %s", v.TargetClaim, st.Reason, st.Message))
			}
		}
	}
	return done, nil
}

func final(p storkv1.RestorePhase) bool {
	return p == storkv1.RestoreCompleted || p == storkv1.RestorePartiallyFailed || p == storkv1.RestoreFailed || p == storkv1.RestoreCancelled
}

// dropAccess deletes the access Secret a restore from a Backup made for its downloads, however
// the Restore ended (or if it is being deleted).
func (r *Reconciler) dropAccess(ctx context.Context, rs *storkv1.Restore) error {
	if rs.Spec.Source.BackupName == "" || r.AdminNamespace == "" {
		return nil
	}
	return locator.DeleteAccessSecret(ctx, r.Client, r.AdminNamespace, accessName(rs))
}

func (r *Reconciler) step(ctx context.Context, rs *storkv1.Restore) (ctrl.Result, error) {
	st := &rs.Status
	if st.StartTime == nil {
		now := metav1.Now()
		st.StartTime, st.Phase = &now, storkv1.RestoreInProgress
	}
	if msg := r.crossNamespace(rs); msg != "" {
		r.fail(rs, "CrossNamespaceNotAllowed", msg)
		return ctrl.Result{}, nil
	}
	if rs.Spec.Source.BackupName != "" {
		return r.stepBackup(ctx, rs)
	}
	if zm := rs.Spec.ZoneMapping; zm != nil && zm.Mode != storkv1.ZoneKeep {
		r.fail(rs, "ZoneMappingNotSupported", "spec.zoneMapping: a Snapshot is restored where its data is, on its node; zone mapping applies to restores from Backups")
		return ctrl.Result{}, nil
	}
	snapNS := sourceNamespace(rs)
	snap := &storkv1.Snapshot{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: snapNS, Name: rs.Spec.Source.SnapshotName}, snap)
	if apierrors.IsNotFound(err) {
		r.fail(rs, "SnapshotNotFound", fmt.Sprintf("spec.source.snapshotName: Snapshot %s/%s does not exist", snapNS, rs.Spec.Source.SnapshotName))
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	switch snap.Status.Phase {
	case storkv1.SnapshotReady:
	case storkv1.SnapshotFailed, storkv1.SnapshotDeleting:
		r.fail(rs, "SnapshotNotReady", fmt.Sprintf("Snapshot %s is %s and cannot be restored", snap.Name, snap.Status.Phase))
		return ctrl.Result{}, nil
	default:
		r.setCondition(rs, storkv1.ConditionProgressing, true, "WaitingForSnapshot", "waiting for Snapshot "+snap.Name+" to be Ready")
		return ctrl.Result{RequeueAfter: r.Poll}, nil
	}

	if len(st.Volumes) == 0 {
		if err := r.plan(ctx, rs, snap); err != nil {
			return ctrl.Result{}, err
		}
		r.setCondition(rs, storkv1.ConditionValid, true, "Planned", fmt.Sprintf("%d claims to restore", len(st.Volumes)))
		r.setCondition(rs, storkv1.ConditionProgressing, true, "Restoring", "restoring the volumes")
		return ctrl.Result{Requeue: true}, nil
	}

	for i := range st.Volumes {
		v := &st.Volumes[i]
		if v.Phase == storkv1.VolumeSucceeded || v.Phase == storkv1.VolumeFailed {
			continue
		}
		if err := r.restoreVolume(ctx, rs, snap, v); err != nil {
			return ctrl.Result{}, err
		}
	}
	if !r.volumesDone(rs) {
		return ctrl.Result{RequeueAfter: r.Poll}, nil
	}
	r.complete(rs)
	return ctrl.Result{}, nil
}

// volumesDone sums the volumes' progress and reports whether every volume is final.
func (r *Reconciler) volumesDone(rs *storkv1.Restore) bool {
	st := &rs.Status
	p := storkv1.Progress{ItemsTotal: int64(len(st.Volumes))}
	for _, v := range st.Volumes {
		p.BytesDone += v.Progress.BytesDone
		p.BytesTotal += v.Progress.BytesTotal
		if v.Phase == storkv1.VolumeSucceeded || v.Phase == storkv1.VolumeFailed {
			p.ItemsDone++
		}
	}
	st.Progress = p
	return p.ItemsDone == p.ItemsTotal
}

// complete ends the Restore: Completed when every volume and object made it, Failed when none
// did, PartiallyFailed otherwise, with every failure named in the message.
func (r *Reconciler) complete(rs *storkv1.Restore) {
	st := &rs.Status
	var failed []string
	for _, v := range st.Volumes {
		if v.Phase == storkv1.VolumeFailed {
			failed = append(failed, fmt.Sprintf("claim %s: %s", v.SourceClaim, v.Message))
		}
	}
	failedVolumes := len(failed)
	for _, o := range st.Objects {
		if o.Result == "Failed" {
			failed = append(failed, fmt.Sprintf("%s %s: %s", o.Kind, strings.TrimPrefix(o.Namespace+"/"+o.Name, "/"), o.Message))
		}
	}
	now := metav1.Now()
	st.CompletionTime = &now
	done := fmt.Sprintf("%d claims", len(st.Volumes)-failedVolumes)
	if len(st.Objects) > 0 {
		done += fmt.Sprintf(" and %d objects", len(st.Objects)-(len(failed)-failedVolumes))
	}
	// A failed hook leaves what was restored restored: at worst PartiallyFailed.
	everything := len(failed) > 0 && len(failed) == len(st.Volumes)+len(st.Objects)
	failed = append(failed, hookFailures(rs)...)
	switch {
	case len(failed) == 0:
		st.Phase = storkv1.RestoreCompleted
		r.finish(rs, true, "Restored", done+" restored")
	case everything:
		st.Phase = storkv1.RestoreFailed
		r.finish(rs, false, "RestoreFailed", strings.Join(failed, "; "))
	default:
		st.Phase = storkv1.RestorePartiallyFailed
		r.finish(rs, false, "PartiallyFailed", fmt.Sprintf("%s restored; %d failed: %s", done, len(failed), strings.Join(failed, "; ")))
	}
}

// sourceNamespace is the namespace of the Restore's source object.
func sourceNamespace(rs *storkv1.Restore) string {
	if rs.Spec.Source.Namespace != "" {
		return rs.Spec.Source.Namespace
	}
	return rs.Namespace
}

// crossNamespace says why the Restore may not read or write the namespaces it names ("" if it
// may). Anyone who can create a Restore in a namespace can restore that namespace's Snapshots
// into it; moving data between namespaces takes a Restore in the admin namespace, which only
// cluster administrators can create.
func (r *Reconciler) crossNamespace(rs *storkv1.Restore) string {
	if r.AdminNamespace != "" && rs.Namespace == r.AdminNamespace {
		return ""
	}
	if ns := rs.Spec.Source.Namespace; ns != "" && ns != rs.Namespace {
		return fmt.Sprintf("spec.source.namespace: a Restore in %s cannot read Snapshots of namespace %s; create the Restore in %s (Stork's namespace) to restore across namespaces", rs.Namespace, ns, r.AdminNamespace)
	}
	for from, to := range rs.Spec.NamespaceMapping {
		if to != rs.Namespace {
			return fmt.Sprintf("spec.namespaceMapping: a Restore in %s cannot restore into namespace %s (mapped from %s); create the Restore in %s (Stork's namespace) to restore across namespaces", rs.Namespace, to, from, r.AdminNamespace)
		}
	}
	return ""
}

// plan decides each volume's target claim and checks it against what exists, once.
func (r *Reconciler) plan(ctx context.Context, rs *storkv1.Restore, snap *storkv1.Snapshot) error {
	targets := map[string]string{}
	for _, sv := range snap.Status.Volumes {
		if !wanted(rs, sv.ClaimName) {
			continue
		}
		v, err := r.planVolume(ctx, rs, targets, snap.Namespace, sv.ClaimName, sv.Phase == storkv1.VolumeSucceeded)
		if err != nil {
			return err
		}
		v.Node, v.Zone = sv.Node, sv.Topology.Zone
		rs.Status.Volumes = append(rs.Status.Volumes, v)
	}
	r.missingClaims(rs)
	return nil
}

// missingClaims fails, each with a volume entry of its own, the claims spec.claims names that
// the source does not hold: a typo must not pass as a restore of nothing.
func (r *Reconciler) missingClaims(rs *storkv1.Restore) {
	for _, c := range rs.Spec.Claims {
		if !slices.ContainsFunc(rs.Status.Volumes, func(v storkv1.RestoreVolumeStatus) bool { return v.SourceClaim == c }) {
			v := storkv1.RestoreVolumeStatus{SourceClaim: c}
			r.failVolume(rs, &v, "NotInSource", "spec.claims names claim "+c+", which the source does not hold")
			rs.Status.Volumes = append(rs.Status.Volumes, v)
		}
	}
}

// wanted reports whether the Restore asks for a claim (spec.claims, empty meaning all).
func wanted(rs *storkv1.Restore, claim string) bool {
	return len(rs.Spec.Claims) == 0 || slices.Contains(rs.Spec.Claims, claim)
}

// planVolume maps one source claim to its target and checks the target against the claims that
// exist and the other targets (target namespace/claim → source claim).
func (r *Reconciler) planVolume(ctx context.Context, rs *storkv1.Restore, targets map[string]string, srcNS, claim string, captured bool) (storkv1.RestoreVolumeStatus, error) {
	ns := srcNS
	if m, ok := rs.Spec.NamespaceMapping[ns]; ok {
		ns = m
	}
	name := claim
	if m, ok := rs.Spec.ClaimNameMapping[name]; ok {
		name = m
	}
	v := storkv1.RestoreVolumeStatus{SourceClaim: claim, TargetNamespace: ns, TargetClaim: name, Phase: storkv1.VolumePending}
	if other, dup := targets[ns+"/"+name]; dup {
		r.failVolume(rs, &v, "TargetConflict", fmt.Sprintf("claims %s and %s would both be restored as %s/%s; map one to another name", other, claim, ns, name))
		return v, nil
	}
	targets[ns+"/"+name] = claim
	if !captured {
		r.failVolume(rs, &v, "NotCaptured", "the source did not capture this claim")
		return v, nil
	}
	existing := &corev1.PersistentVolumeClaim{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, existing)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return v, err
	case rs.Spec.ExistingObjectPolicy == storkv1.ExistingSkip:
		v.Phase, v.Reason, v.Message = storkv1.VolumeSucceeded, "Skipped", fmt.Sprintf("PersistentVolumeClaim %s/%s exists and is left as it is (existingObjectPolicy Skip)", ns, name)
	case rs.Spec.ExistingObjectPolicy == storkv1.ExistingUpdate:
		v.Reason, v.Message = "Replacing", fmt.Sprintf("PersistentVolumeClaim %s/%s exists and is replaced (existingObjectPolicy Update)", ns, name)
	default:
		r.failVolume(rs, &v, "ClaimExists",
			fmt.Sprintf("PersistentVolumeClaim %s/%s already exists; it is not overwritten (set existingObjectPolicy Update to replace it, or map the claim to another name)", ns, name))
	}
	return v, nil
}

// restoreVolume moves one volume on: replace an existing claim if asked, have the driver make
// the volume, create the claim, wait for it to bind.
func (r *Reconciler) restoreVolume(ctx context.Context, rs *storkv1.Restore, snap *storkv1.Snapshot, v *storkv1.RestoreVolumeStatus) error {
	var sv *storkv1.SnapshotVolumeStatus
	for i := range snap.Status.Volumes {
		if snap.Status.Volumes[i].ClaimName == v.SourceClaim {
			sv = &snap.Status.Volumes[i]
		}
	}
	if sv == nil {
		r.failVolume(rs, v, "SourceGone", "the Snapshot no longer lists claim "+v.SourceClaim)
		return nil
	}
	existing, ours, ready, err := r.clearTarget(ctx, rs, v, "Snapshot "+snap.Name)
	if err != nil || !ready {
		return err
	}
	d, ok := r.Drivers.Get(sv.Driver)
	rst, isRestorer := drivers.As[drivers.Restorer](d)
	if !ok || !isRestorer {
		r.failVolume(rs, v, "DriverUnavailable", "driver "+sv.Driver+" is not enabled in this Stork or cannot restore snapshots")
		return nil
	}
	claim := r.claimFor(rs, v, sv.StorageClassName, sv.SizeBytes, sv.Capacity, sv.AccessModes)
	vs, err := rst.Restore(ctx, drivers.RestoreRequest{
		ID:              string(rs.UID) + "/" + v.SourceClaim,
		Namespace:       rs.Namespace,
		Owner:           owner(rs),
		Source:          drivers.SnapshotRef{Namespace: snap.Namespace, VolumeName: sv.VolumeName, SnapshotID: sv.SnapshotID, Node: sv.Node},
		TargetNamespace: v.TargetNamespace, TargetClaim: v.TargetClaim,
		SizeBytes: claim.Spec.Resources.Requests.Storage().Value(), StorageClassName: *claim.Spec.StorageClassName, AccessModes: claim.Spec.AccessModes,
	})
	if err != nil {
		return fmt.Errorf("driver %s: restoring claim %s: %w", sv.Driver, v.SourceClaim, err)
	}
	return r.bindClaim(ctx, rs, v, vs, claim, existing, ours, "Snapshot "+snap.Name)
}

func owner(rs *storkv1.Restore) *metav1.OwnerReference {
	return &metav1.OwnerReference{APIVersion: storkv1.GroupVersion.String(), Kind: "Restore", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}
}

// clearTarget looks at the target claim: one this Restore made is returned with ours; one
// someone else made fails the volume unless the policy is Update, in which case it is deleted
// (once no pod uses it) and ready is false until it is gone.
func (r *Reconciler) clearTarget(ctx context.Context, rs *storkv1.Restore, v *storkv1.RestoreVolumeStatus, from string) (existing *corev1.PersistentVolumeClaim, ours, ready bool, err error) {
	key := client.ObjectKey{Namespace: v.TargetNamespace, Name: v.TargetClaim}
	existing = &corev1.PersistentVolumeClaim{}
	err = r.Client.Get(ctx, key, existing)
	if apierrors.IsNotFound(err) {
		return nil, false, true, r.ensureNamespace(ctx, v.TargetNamespace)
	}
	if err != nil {
		return nil, false, false, err
	}
	if existing.Annotations[storkv1.AnnotationRestoredBy] == string(rs.UID) {
		return existing, true, true, nil
	}
	if v.Reason != "Replacing" {
		r.failVolume(rs, v, "ClaimExists", fmt.Sprintf("PersistentVolumeClaim %s was created by someone else while restoring; delete it and create a new Restore, or map the claim to another name", key))
		return nil, false, false, nil
	}
	if user, err := r.podUsing(ctx, existing); err != nil {
		return nil, false, false, err
	} else if user != "" {
		r.failVolume(rs, v, "ClaimInUse", fmt.Sprintf("PersistentVolumeClaim %s is used by pod %s; stop it to replace the claim", key, user))
		return nil, false, false, nil
	}
	if existing.DeletionTimestamp == nil {
		if err := r.Client.Delete(ctx, existing); client.IgnoreNotFound(err) != nil {
			return nil, false, false, fmt.Errorf("deleting PersistentVolumeClaim %s to replace it: %w", key, err)
		}
		r.event(rs, corev1.EventTypeNormal, "ClaimReplaced", fmt.Sprintf("deleted PersistentVolumeClaim %s to restore it from %s", key, from))
	}
	v.Phase = storkv1.VolumeInProgress
	return nil, false, false, nil // next round, once it is gone
}

// claimFor is the claim a restored volume is bound to.
func (r *Reconciler) claimFor(rs *storkv1.Restore, v *storkv1.RestoreVolumeStatus, class string, size int64, capacity *resource.Quantity,
	modes []corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	if m, ok := rs.Spec.StorageClassMapping[class]; ok {
		class = m
	}
	if capacity == nil {
		capacity = resource.NewQuantity(size, resource.BinarySI)
	}
	if len(modes) == 0 {
		modes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: v.TargetNamespace, Name: v.TargetClaim,
			Annotations: map[string]string{storkv1.AnnotationRestoredBy: string(rs.UID)},
			Labels:      map[string]string{"stork.dev/restore": rs.Name}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      modes,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: *capacity}},
			StorageClassName: ptr.To(class),
		},
	}
}

// bindClaim records the driver's progress and, once the volume is made, creates the claim
// bound to it and waits for the binding.
func (r *Reconciler) bindClaim(ctx context.Context, rs *storkv1.Restore, v *storkv1.RestoreVolumeStatus, vs drivers.VolumeStatus,
	claim, existing *corev1.PersistentVolumeClaim, ours bool, from string) error {
	v.Progress = vs.Progress
	if vs.Node != "" {
		v.Node = vs.Node
	}
	switch vs.Phase {
	case storkv1.VolumeFailed:
		r.failVolume(rs, v, vs.Reason, vs.Message)
		return nil
	case storkv1.VolumeSucceeded:
	default:
		v.Phase, v.Reason, v.Message = vs.Phase, vs.Reason, vs.Message
		return nil
	}
	key := client.ObjectKeyFromObject(claim)
	if !ours {
		if vs.DataSource != nil {
			claim.Spec.DataSource = vs.DataSource
			// The provisioner refuses a claim smaller than the snapshot.
			if size := resource.NewQuantity(vs.SizeBytes, resource.BinarySI); size.Cmp(claim.Spec.Resources.Requests[corev1.ResourceStorage]) > 0 {
				claim.Spec.Resources.Requests[corev1.ResourceStorage] = *size
			}
		} else {
			claim.Spec.VolumeName = vs.VolumeName
		}
		if err := r.Client.Create(ctx, claim); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return nil // created meanwhile: looked at next round
			}
			return fmt.Errorf("creating PersistentVolumeClaim %s: %w", key, err)
		}
		existing = claim
	}
	if vs.DataSource != nil {
		return r.provisionedClaim(ctx, rs, v, vs, existing, from)
	}
	if existing.Spec.VolumeName != vs.VolumeName {
		r.failVolume(rs, v, "ClaimConflict", fmt.Sprintf("PersistentVolumeClaim %s asks for volume %s, not the restored %s", key, existing.Spec.VolumeName, vs.VolumeName))
		return nil
	}
	if existing.Status.Phase != corev1.ClaimBound {
		v.Phase, v.Reason, v.Message = storkv1.VolumeInProgress, "WaitingForBinding", "PersistentVolumeClaim "+key.String()+" is waiting to bind to "+vs.VolumeName
		return nil
	}
	v.Phase, v.Reason, v.Message = storkv1.VolumeSucceeded, "Restored", fmt.Sprintf("bound to PersistentVolume %s on node %s", vs.VolumeName, v.Node)
	r.event(rs, corev1.EventTypeNormal, "ClaimRestored", fmt.Sprintf("PersistentVolumeClaim %s restored from claim %s of %s", key, v.SourceClaim, from))
	return nil
}

// provisionedClaim follows a claim the storage provisions from a data source (a CSI
// VolumeSnapshot): done once it is bound, or once it is made when its class provisions volumes
// only for a pod that uses them (WaitForFirstConsumer), which no restore can wait for.
func (r *Reconciler) provisionedClaim(ctx context.Context, rs *storkv1.Restore, v *storkv1.RestoreVolumeStatus, vs drivers.VolumeStatus,
	claim *corev1.PersistentVolumeClaim, from string) error {
	key := client.ObjectKeyFromObject(claim)
	src := vs.DataSource.Kind + " " + vs.DataSource.Name
	if ds := claim.Spec.DataSource; ds == nil || ds.Kind != vs.DataSource.Kind || ds.Name != vs.DataSource.Name {
		r.failVolume(rs, v, "ClaimConflict", fmt.Sprintf("PersistentVolumeClaim %s is not provisioned from the restored %s", key, src))
		return nil
	}
	if claim.Status.Phase != corev1.ClaimBound {
		class := &storagev1.StorageClass{}
		err := r.Client.Get(ctx, client.ObjectKey{Name: ptr.Deref(claim.Spec.StorageClassName, "")}, class)
		if err != nil || class.VolumeBindingMode == nil || *class.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
			v.Phase, v.Reason, v.Message = storkv1.VolumeInProgress, "WaitingForBinding", "PersistentVolumeClaim "+key.String()+" is being provisioned from "+src
			return client.IgnoreNotFound(err)
		}
		v.Phase, v.Reason, v.Message = storkv1.VolumeSucceeded, "Restored", fmt.Sprintf("PersistentVolumeClaim %s is provisioned from %s when a pod first uses it (class %s binds on first consumer)", key, src, class.Name)
	} else {
		v.Phase, v.Reason, v.Message = storkv1.VolumeSucceeded, "Restored", fmt.Sprintf("bound to PersistentVolume %s provisioned from %s", claim.Spec.VolumeName, src)
	}
	r.event(rs, corev1.EventTypeNormal, "ClaimRestored", fmt.Sprintf("PersistentVolumeClaim %s restored from claim %s of %s", key, v.SourceClaim, from))
	return nil
}

// podUsing names a pod that mounts the claim, if any.
func (r *Reconciler) podUsing(ctx context.Context, pvc *corev1.PersistentVolumeClaim) (string, error) {
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(pvc.Namespace)); err != nil {
		return "", err
	}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		for _, vol := range p.Spec.Volumes {
			if vol.PersistentVolumeClaim != nil && vol.PersistentVolumeClaim.ClaimName == pvc.Name {
				return p.Name, nil
			}
		}
	}
	return "", nil
}

func (r *Reconciler) ensureNamespace(ctx context.Context, name string) error {
	err := r.Client.Get(ctx, client.ObjectKey{Name: name}, &corev1.Namespace{})
	if !apierrors.IsNotFound(err) {
		return err
	}
	err = r.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}

func (r *Reconciler) failVolume(rs *storkv1.Restore, v *storkv1.RestoreVolumeStatus, reason, msg string) {
	v.Phase, v.Reason, v.Message = storkv1.VolumeFailed, reason, msg
	r.event(rs, corev1.EventTypeWarning, "VolumeFailed", fmt.Sprintf("claim %s: %s", v.SourceClaim, msg))
}

func (r *Reconciler) fail(rs *storkv1.Restore, reason, msg string) {
	now := metav1.Now()
	rs.Status.Phase, rs.Status.CompletionTime = storkv1.RestoreFailed, &now
	r.setCondition(rs, storkv1.ConditionValid, false, reason, msg)
	r.finish(rs, false, reason, msg)
}

func (r *Reconciler) finish(rs *storkv1.Restore, ok bool, reason, msg string) {
	conditions.Finish(&rs.Status.Conditions, rs.Generation, r.Recorder, rs, "Restore", ok, reason, reason, msg)
}

func (r *Reconciler) setCondition(rs *storkv1.Restore, t string, ok bool, reason, msg string) {
	conditions.Set(&rs.Status.Conditions, rs.Generation, t, ok, reason, msg)
}

func (r *Reconciler) event(obj client.Object, kind, reason, msg string) {
	conditions.Event(r.Recorder, obj, "Restore", kind, reason, msg)
}
