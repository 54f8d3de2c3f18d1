package placement

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
	"stork.dev/stork/internal/crashpoint"
	"stork.dev/stork/internal/names"
)

// Failover, opted into per claim or StorageClass, gives a local volume a new home when the
// storage of its node is down: a local volume has one copy, so moving its pod alone does not
// help. It restores the claim's latest backup onto a healthy node of the same zone through a
// Stork Restore (status, progress and events come with it), repoints the claim at the new
// volume, and has the monitor evict the pod, whose controller recreates it near the new copy.
//
// The failover's state lives in annotations of the claim's old PersistentVolume, which only
// cluster administrators (and Stork) may write: the Restore is in the application's namespace,
// where its users could forge a Restore's labels and annotations to have Stork repoint a claim
// at a volume of their choosing. A Restore is acted on only when the old volume names it.
const (
	// AnnotationFailover set to "true" on a PersistentVolumeClaim or its StorageClass opts the
	// claim into failover.
	AnnotationFailover = "stork.dev/failover"
	// LabelFailoverOf on a failover Restore holds the UID of the claim it fails over.
	LabelFailoverOf = "stork.dev/failover-of"
	// annotationOldVolume on a failover Restore names the claim's old PersistentVolume, whose
	// annotations hold the failover's state (and must name the Restore back).
	annotationOldVolume = "stork.dev/failover-old-volume"
	// AnnotationFailoverPhase on the old volume (and, for people, on the Restore): Restoring,
	// Repointing, Done, Failed or Cancelled.
	AnnotationFailoverPhase = "stork.dev/failover-phase"
	// AnnotationFailedOver on the Restore, the new claim and both volumes says what happened.
	AnnotationFailedOver = "stork.dev/failed-over"

	// State on the old volume.
	annotationClaimUID = "stork.dev/failover-claim-uid"
	annotationClaim    = "stork.dev/failover-claim" // the claim to recreate, as JSON
	annotationRestore  = "stork.dev/failover-restore"
	annotationTemp     = "stork.dev/failover-temp-claim"
	annotationAttempt  = "stork.dev/failover-attempt"
	annotationBackup   = "stork.dev/failover-backup"
	annotationNode     = "stork.dev/failover-node"
	annotationDriver   = "stork.dev/failover-driver"
	annotationVolume   = "stork.dev/failover-volume" // the new volume, once known
	annotationEvicted  = "stork.dev/failover-evicted"
	// annotationCopyRemoved: the restored copy of a cancelled failover is gone.
	annotationCopyRemoved = "stork.dev/failover-copy-removed"
)

// Failover phases, in AnnotationFailoverPhase.
const (
	FailoverRestoring  = "Restoring"
	FailoverRepointing = "Repointing"
	FailoverDone       = "Done"
	FailoverFailed     = "Failed"
	FailoverCancelled  = "Cancelled"
)

// Failover starts failovers for the monitor and finishes them as a reconciler of failover
// Restores.
type Failover struct {
	Client client.Client
	// Reader lists pods from the API server (Stork caches no pods).
	Reader client.Reader
	// View tells whether the old node's storage came back (the failover is then cancelled).
	View *View
	// Drivers remove the restored copy of a cancelled failover (drivers.Discarder); with none
	// that can, the copy stays, released, for an administrator.
	Drivers  *drivers.Set
	Recorder events.EventRecorder
	Log      logr.Logger
}

// failoverState is what Step tells the monitor.
type failoverState int

const (
	// failoverNone: not opted in, no backup to restore, or the failover failed: the pod stays.
	failoverNone failoverState = iota
	// failoverWaiting: restoring; the pod stays where it is for now.
	failoverWaiting
	// failoverReady: the new copy is in place and reserved for the claim: evict the pod.
	failoverReady
)

// enabled reports whether a claim opted into failover, itself or through its StorageClass.
func (f *Failover) enabled(ctx context.Context, claim *corev1.PersistentVolumeClaim) (bool, error) {
	if claim.Annotations[AnnotationFailover] == "true" {
		return true, nil
	}
	if claim.Spec.StorageClassName == nil || *claim.Spec.StorageClassName == "" {
		return false, nil
	}
	sc := &storagev1.StorageClass{}
	if err := f.Client.Get(ctx, client.ObjectKey{Name: *claim.Spec.StorageClassName}, sc); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	return sc.Annotations[AnnotationFailover] == "true", nil
}

// Step is the monitor's part, for a claim of driver whose only copy is on node, down past
// probation: it starts a failover if the claim opted in and none is under way, and says where
// the failover stands. started is true when this call started one (it counts in the batch).
func (f *Failover) Step(ctx context.Context, pod *corev1.Pod, claimName, driver, node string) (state failoverState, started bool, err error) {
	claim := &corev1.PersistentVolumeClaim{}
	if err := f.Client.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: claimName}, claim); err != nil {
		return failoverNone, false, client.IgnoreNotFound(err)
	}
	if on, err := f.enabled(ctx, claim); err != nil || !on || claim.Spec.VolumeName == "" {
		return failoverNone, false, err
	}
	old := &corev1.PersistentVolume{}
	if err := f.Client.Get(ctx, client.ObjectKey{Name: claim.Spec.VolumeName}, old); err != nil {
		return failoverNone, false, client.IgnoreNotFound(err)
	}
	// A new attempt: none yet for this claim, an administrator cleared a failed one, or an
	// earlier one was cancelled because the storage came back, and it is down again now.
	if phase := old.Annotations[AnnotationFailoverPhase]; old.Annotations[annotationClaimUID] != string(claim.UID) || phase == "" || phase == FailoverCancelled {
		started, err := f.start(ctx, claim, old, driver, node)
		if !started {
			return failoverNone, false, err
		}
		return failoverWaiting, true, err
	}
	switch old.Annotations[AnnotationFailoverPhase] {
	case FailoverRestoring:
		return failoverWaiting, false, f.ensureRestore(ctx, claim, old)
	case FailoverRepointing:
		return failoverReady, false, nil
	}
	return failoverNone, false, nil // Failed (reported then) or Done
}

// MarkEvicted records on the old volume that the monitor evicts the pod for the failover: from
// then on the claim is repointed even if the old node comes back, since the pod is moving.
func (f *Failover) MarkEvicted(ctx context.Context, pod *corev1.Pod, claimName string) error {
	claim := &corev1.PersistentVolumeClaim{}
	if err := f.Client.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: claimName}, claim); err != nil {
		return err
	}
	old := &corev1.PersistentVolume{}
	if err := f.Client.Get(ctx, client.ObjectKey{Name: claim.Spec.VolumeName}, old); err != nil {
		return err
	}
	if old.Annotations[annotationClaimUID] != string(claim.UID) || old.Annotations[AnnotationFailoverPhase] != FailoverRepointing {
		return fmt.Errorf("PersistentVolume %s is not being failed over for claim %s/%s", old.Name, claim.Namespace, claim.Name)
	}
	return f.patchState(ctx, old, map[string]string{annotationEvicted: "true"})
}

// latestBackup is the newest finished Backup this cluster made of the claim since it was created:
// never an imported one (another cluster's claim of that name) nor one of an earlier claim of the
// same name.
func (f *Failover) latestBackup(ctx context.Context, claim *corev1.PersistentVolumeClaim) (*storkv1.Backup, error) {
	var list storkv1.BackupList
	if err := f.Client.List(ctx, &list, client.InNamespace(claim.Namespace)); err != nil {
		return nil, fmt.Errorf("listing the Backups of namespace %s: %w", claim.Namespace, err)
	}
	var best *storkv1.Backup
	for i := range list.Items {
		b := &list.Items[i]
		if b.DeletionTimestamp != nil || b.Status.Imported || backupTime(b).Before(claim.CreationTimestamp.Time) ||
			(b.Status.Phase != storkv1.BackupCompleted && b.Status.Phase != storkv1.BackupPartiallyFailed) {
			continue
		}
		held := false
		for _, v := range b.Status.Volumes {
			held = held || (v.ClaimName == claim.Name && v.Phase == storkv1.VolumeSucceeded && v.RepositorySnapshotID != "")
		}
		if held && (best == nil || backupTime(b).After(backupTime(best))) {
			best = b
		}
	}
	return best, nil
}

// backupTime is when a Backup's copy started, the closest its status comes to the moment of the
// data (the Snapshot it copies was taken just before).
func backupTime(b *storkv1.Backup) time.Time {
	if b.Status.StartTime != nil {
		return b.Status.StartTime.Time
	}
	return b.CreationTimestamp.Time
}

// start records a failover on the old volume (which also keeps its data: reclaim policy Retain)
// and creates its Restore; it reports false when no backup holds the claim.
func (f *Failover) start(ctx context.Context, claim *corev1.PersistentVolumeClaim, old *corev1.PersistentVolume, driver, node string) (bool, error) {
	b, err := f.latestBackup(ctx, claim)
	if err != nil {
		return false, err
	}
	if b == nil {
		f.event(claim, corev1.EventTypeWarning, "FailoverImpossible",
			fmt.Sprintf("storage on node %s is down and the claim opted into failover, but no finished Backup this cluster made of it is in namespace %s", node, claim.Namespace))
		return false, nil
	}
	saved, err := json.Marshal(claimToRecreate(claim))
	if err != nil {
		return false, err
	}
	// Each attempt has names of its own: the claim's UID, then the attempt's number, counted on
	// the old volume (a failed attempt retried, a cancelled one followed by a new outage).
	n := 1
	if old.Annotations[annotationClaimUID] == string(claim.UID) {
		prev, _ := strconv.Atoi(old.Annotations[annotationAttempt])
		n = prev + 1
	}
	attempt := uid8(string(claim.UID)) + "-" + strconv.Itoa(n)
	what := fmt.Sprintf("claim %s/%s: storage of node %s down; restoring Backup %s (started %s)",
		claim.Namespace, claim.Name, node, b.Name, backupTime(b).UTC().Format(time.RFC3339))
	orig := old.DeepCopy()
	old.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain // the node may come back with newer data
	if old.Annotations == nil {
		old.Annotations = map[string]string{}
	}
	for k, v := range map[string]string{annotationClaimUID: string(claim.UID), annotationClaim: string(saved), annotationBackup: b.Name,
		annotationRestore: failoverName("failover-", claim.Name, "-"+attempt), annotationTemp: failoverName("", claim.Name, "-failover-"+attempt),
		annotationNode: node, annotationAttempt: strconv.Itoa(n), annotationDriver: driver, AnnotationFailoverPhase: FailoverRestoring,
		AnnotationFailedOver: what} {
		old.Annotations[k] = v
	}
	delete(old.Annotations, annotationVolume)
	delete(old.Annotations, annotationEvicted)
	if err := f.Client.Patch(ctx, old, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return false, fmt.Errorf("recording the failover of claim %s/%s on PersistentVolume %s: %w", claim.Namespace, claim.Name, old.Name, err)
	}
	if err := f.ensureRestore(ctx, claim, old); err != nil {
		return true, err
	}
	f.event(claim, corev1.EventTypeWarning, "FailoverStarted",
		fmt.Sprintf("storage on node %s is down: restoring the claim from Backup %s (started %s) onto a healthy node of its zone (Restore %s)",
			node, b.Name, backupTime(b).UTC().Format(time.RFC3339), old.Annotations[annotationRestore]))
	return true, nil
}

// ensureRestore creates the failover's Restore as the old volume describes it, unless it exists.
func (f *Failover) ensureRestore(ctx context.Context, claim *corev1.PersistentVolumeClaim, old *corev1.PersistentVolume) error {
	rs := &storkv1.Restore{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: claim.Namespace,
			Name:      old.Annotations[annotationRestore],
			Labels:    map[string]string{LabelFailoverOf: string(claim.UID)},
			Annotations: map[string]string{annotationOldVolume: old.Name, AnnotationFailoverPhase: FailoverRestoring,
				AnnotationFailedOver: old.Annotations[AnnotationFailedOver]},
		},
		Spec: storkv1.RestoreSpec{
			Source:           storkv1.RestoreSource{BackupName: old.Annotations[annotationBackup]},
			Claims:           []string{claim.Name},
			ClaimNameMapping: map[string]string{claim.Name: old.Annotations[annotationTemp]},
			VolumesOnly:      true,
			// Keep: the backup's zone, which is the claim's; the driver picks a healthy node there.
			ZoneMapping: &storkv1.ZoneMapping{Mode: storkv1.ZoneKeep},
		},
	}
	if err := f.Client.Create(ctx, rs); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating failover Restore %s/%s: %w", rs.Namespace, rs.Name, err)
	}
	return nil
}

func uid8(uid string) string { return uid[:min(8, len(uid))] }

// failoverName is prefix+claim+suffix as a label value (at most 63 characters), shortening the
// claim's name rather than cutting off the suffix.
func failoverName(prefix, claim, suffix string) string {
	if over := len(prefix) + len(claim) + len(suffix) - 63; over > 0 {
		claim = claim[:len(claim)-over]
	}
	return names.LabelValue(prefix + claim + suffix)
}

// claimToRecreate is the claim as its replacement is created: same name, labels, annotations
// and request, without what the API server and the volume binder added.
func claimToRecreate(c *corev1.PersistentVolumeClaim) *corev1.PersistentVolumeClaim {
	out := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespace, Name: c.Name, Labels: c.Labels, Annotations: map[string]string{}},
		Spec:       *c.Spec.DeepCopy(),
	}
	for k, v := range c.Annotations {
		if !strings.HasPrefix(k, "pv.kubernetes.io/") && !strings.HasPrefix(k, "volume.") &&
			k != "kubectl.kubernetes.io/last-applied-configuration" {
			out.Annotations[k] = v
		}
	}
	out.Spec.VolumeName = ""
	return out
}

// SetupWithManager finishes failovers: it reconciles the Restores that carry LabelFailoverOf.
func (f *Failover) SetupWithManager(mgr ctrl.Manager) error {
	ours := predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetLabels()[LabelFailoverOf] != "" })
	return ctrl.NewControllerManagedBy(mgr).
		Named("failover").
		For(&storkv1.Restore{}, builder.WithPredicates(ours)).
		Complete(f)
}

// failover is one failover as the old volume describes it, with its Restore.
type failover struct {
	old   *corev1.PersistentVolume
	rs    *storkv1.Restore
	claim *corev1.PersistentVolumeClaim // the saved claim, to recreate
}

// load reads the failover a Restore belongs to and checks that the old volume names this very
// Restore and claim; ok is false for anything else (a forged or stale Restore), which is ignored.
func (f *Failover) load(ctx context.Context, key client.ObjectKey) (fo failover, ok bool, err error) {
	fo.rs = &storkv1.Restore{}
	if err := f.Client.Get(ctx, key, fo.rs); err != nil {
		return fo, false, client.IgnoreNotFound(err)
	}
	fo.old = &corev1.PersistentVolume{}
	if fo.rs.Annotations[annotationOldVolume] == "" {
		// Without this, a labelled Restore that names no volume would make the Get below fail
		// ("resource name may not be empty") and be retried forever instead of being ignored.
		f.Log.Info("ignoring a Restore labelled as a failover that names no volume", "restore", key)
		return fo, false, nil
	}
	if err := f.Client.Get(ctx, client.ObjectKey{Name: fo.rs.Annotations[annotationOldVolume]}, fo.old); err != nil {
		return fo, false, client.IgnoreNotFound(err)
	}
	a := fo.old.Annotations
	fo.claim = &corev1.PersistentVolumeClaim{}
	if a[annotationRestore] != fo.rs.Name || a[annotationClaimUID] != fo.rs.Labels[LabelFailoverOf] || json.Unmarshal([]byte(a[annotationClaim]), fo.claim) != nil ||
		fo.claim.Namespace != fo.rs.Namespace || len(fo.rs.Spec.Claims) != 1 || fo.rs.Spec.Claims[0] != fo.claim.Name ||
		fo.rs.Spec.ClaimNameMapping[fo.claim.Name] != a[annotationTemp] {
		f.Log.Info("ignoring a Restore labelled as a failover that its volume does not describe", "restore", key, "volume", fo.old.Name)
		return fo, false, nil
	}
	return fo, true, nil
}

// Reconcile moves a failover on once its Restore completed: the new volume is reserved for the
// claim's name; once the monitor has evicted the pod and no scheduled pod uses the old claim, the
// claim is deleted and recreated bound to the new volume. If the old node's storage comes back
// before the pod was evicted, the failover is cancelled and the claim keeps its newer data.
func (f *Failover) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	fo, ok, err := f.load(ctx, req.NamespacedName)
	if err != nil || !ok {
		return ctrl.Result{}, err
	}
	switch fo.old.Annotations[AnnotationFailoverPhase] {
	case FailoverRestoring:
		return f.restored(ctx, fo)
	case FailoverRepointing:
		return f.repoint(ctx, fo)
	case FailoverCancelled:
		return f.removeCopy(ctx, fo)
	}
	return ctrl.Result{}, nil
}

// removeCopy has the driver remove the restored copy of a cancelled failover (the PersistentVolume
// and its data): the claim kept its own volume, and nothing will ever use the copy.
func (f *Failover) removeCopy(ctx context.Context, fo failover) (ctrl.Result, error) {
	a := fo.old.Annotations
	if a[annotationCopyRemoved] == "true" || f.Drivers == nil {
		return ctrl.Result{}, nil
	}
	d, ok := f.Drivers.Get(a[annotationDriver])
	dis, can := drivers.As[drivers.Discarder](d)
	if !ok || !can {
		return ctrl.Result{}, nil
	}
	st, err := dis.Discard(ctx, drivers.DiscardRequest{ID: string(fo.rs.UID) + "/" + fo.claim.Name, Namespace: fo.rs.Namespace,
		Owner: &metav1.OwnerReference{APIVersion: storkv1.GroupVersion.String(), Kind: "Restore", Name: fo.rs.Name, UID: fo.rs.UID}})
	switch {
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("removing the restored copy of the cancelled failover of claim %s/%s: %w", fo.claim.Namespace, fo.claim.Name, err)
	case !st.Final():
		return ctrl.Result{RequeueAfter: 2 * time.Second}, nil
	case st.Phase == storkv1.VolumeFailed:
		f.event(fo.rs, corev1.EventTypeWarning, "CopyNotRemoved", fmt.Sprintf("the restored copy %s of the cancelled failover stays: %s: %s", st.VolumeName, st.Reason, st.Message))
	default:
		f.event(fo.rs, corev1.EventTypeNormal, "CopyRemoved", fmt.Sprintf("the restored copy %s of the cancelled failover of claim %s was removed (%s)", st.VolumeName, fo.claim.Name, st.Message))
	}
	return ctrl.Result{}, f.patchState(ctx, fo.old, map[string]string{annotationCopyRemoved: "true"})
}

// restored checks the Restore and, once it completed, reserves the new volume.
func (f *Failover) restored(ctx context.Context, fo failover) (ctrl.Result, error) {
	rs := fo.rs
	switch rs.Status.Phase {
	case storkv1.RestoreCompleted:
	case storkv1.RestoreFailed, storkv1.RestorePartiallyFailed:
		msg := "the restore failed"
		if len(rs.Status.Volumes) > 0 {
			msg += ": " + rs.Status.Volumes[0].Reason + ": " + rs.Status.Volumes[0].Message
		}
		return ctrl.Result{}, f.setPhase(ctx, fo, FailoverFailed, corev1.EventTypeWarning, "FailoverFailed",
			msg+"; the pod stays on its node (remove the "+AnnotationFailoverPhase+" annotation of PersistentVolume "+fo.old.Name+" to try again)")
	default:
		return ctrl.Result{}, nil // the Restore's own updates wake us
	}
	newPV, err := f.restoredVolume(ctx, fo)
	if err != nil || newPV == nil {
		return ctrl.Result{RequeueAfter: 5 * time.Second}, err
	}
	if err := f.reserve(ctx, fo, newPV); err != nil {
		return ctrl.Result{}, err
	}
	node := ""
	if len(rs.Status.Volumes) > 0 {
		node = rs.Status.Volumes[0].Node
	}
	err = f.setPhase(ctx, fo, FailoverRepointing, corev1.EventTypeNormal, "FailoverRestored",
		fmt.Sprintf("claim %s restored onto PersistentVolume %s on node %s and reserved for it; the pod is evicted next", fo.claim.Name, newPV.Name, node))
	if err == nil {
		crashpoint.Here(CrashFailoverRestored)
	}
	return ctrl.Result{RequeueAfter: 2 * time.Second}, err
}

// CrashFailoverRestored is the crash point (internal/crashpoint) of a failover whose copy is
// restored and reserved for the claim, before the pod is evicted.
const CrashFailoverRestored = "failover/restored"

// restoredVolume is the volume the Restore made, recorded on the old volume once found: the one
// its temporary claim is bound to, checked against the binding and the Restore that made it.
func (f *Failover) restoredVolume(ctx context.Context, fo failover) (*corev1.PersistentVolume, error) {
	pv := &corev1.PersistentVolume{}
	if name := fo.old.Annotations[annotationVolume]; name != "" {
		return pv, f.Client.Get(ctx, client.ObjectKey{Name: name}, pv)
	}
	temp := &corev1.PersistentVolumeClaim{}
	key := client.ObjectKey{Namespace: fo.rs.Namespace, Name: fo.old.Annotations[annotationTemp]}
	if err := f.Client.Get(ctx, key, temp); err != nil {
		return nil, fmt.Errorf("reading the restored claim %s: %w", key, err)
	}
	if temp.Annotations[storkv1.AnnotationRestoredBy] != string(fo.rs.UID) || temp.Status.Phase != corev1.ClaimBound {
		return nil, nil
	}
	if err := f.Client.Get(ctx, client.ObjectKey{Name: temp.Spec.VolumeName}, pv); err != nil {
		return nil, fmt.Errorf("reading the restored PersistentVolume %s: %w", temp.Spec.VolumeName, err)
	}
	if ref := pv.Spec.ClaimRef; ref == nil || ref.UID != temp.UID {
		return nil, nil // not bound to it (yet)
	}
	return pv, f.patchState(ctx, fo.old, map[string]string{annotationVolume: pv.Name})
}

// reserve points the new volume at the claim's name without a UID, so that the claim, once
// recreated, binds to it and nothing else does, and deletes the temporary claim.
func (f *Failover) reserve(ctx context.Context, fo failover, pv *corev1.PersistentVolume) error {
	if ref := pv.Spec.ClaimRef; ref == nil || ref.Name != fo.claim.Name || ref.Namespace != fo.claim.Namespace {
		orig := pv.DeepCopy()
		pv.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: fo.claim.Namespace, Name: fo.claim.Name}
		pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
		if pv.Annotations == nil {
			pv.Annotations = map[string]string{}
		}
		pv.Annotations[AnnotationFailedOver] = fo.old.Annotations[AnnotationFailedOver]
		if err := f.Client.Patch(ctx, pv, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			return fmt.Errorf("reserving PersistentVolume %s for claim %s/%s: %w", pv.Name, fo.claim.Namespace, fo.claim.Name, err)
		}
		f.Log.Info("reserved the restored volume for the claim", "volume", pv.Name, "claim", client.ObjectKeyFromObject(fo.claim))
	}
	temp := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: fo.rs.Namespace, Name: fo.old.Annotations[annotationTemp]}}
	if err := f.Client.Delete(ctx, temp); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting the temporary claim %s/%s: %w", temp.Namespace, temp.Name, err)
	}
	return nil
}

// repoint replaces the old claim with one bound to the new volume. Until the old claim is
// deleted the failover can still be called off: when the old node's storage is back and the
// pod was not evicted, or was but runs on the old claim again, the claim keeps its own data,
// which is newer than the backup.
func (f *Failover) repoint(ctx context.Context, fo failover) (ctrl.Result, error) {
	wait := ctrl.Result{RequeueAfter: 5 * time.Second}
	a := fo.old.Annotations
	newPV := &corev1.PersistentVolume{}
	if err := f.Client.Get(ctx, client.ObjectKey{Name: a[annotationVolume]}, newPV); err != nil {
		return ctrl.Result{}, fmt.Errorf("reading the restored PersistentVolume %s: %w", a[annotationVolume], err)
	}
	cur := &corev1.PersistentVolumeClaim{}
	err := f.Client.Get(ctx, client.ObjectKeyFromObject(fo.claim), cur)
	switch {
	case apierrors.IsNotFound(err):
		fo.claim.Spec.VolumeName = newPV.Name
		if err := f.Client.Create(ctx, fo.claim); err != nil && !apierrors.IsAlreadyExists(err) {
			return ctrl.Result{}, fmt.Errorf("recreating claim %s/%s on PersistentVolume %s: %w", fo.claim.Namespace, fo.claim.Name, newPV.Name, err)
		}
		return wait, nil
	case err != nil:
		return ctrl.Result{}, err
	case string(cur.UID) == a[annotationClaimUID]:
		if cur.DeletionTimestamp != nil {
			return wait, nil // kube-controller-manager removes it once no scheduled pod uses it
		}
		user, err := scheduledUser(ctx, f.Reader, cur)
		if err != nil {
			return ctrl.Result{}, err
		}
		back := false
		if f.View != nil {
			sn, ok := f.View.Storage(a[annotationDriver], a[annotationNode])
			back = ok && usable(sn.Health)
		}
		switch {
		case back && (a[annotationEvicted] != "true" || user != ""):
			return ctrl.Result{}, f.cancel(ctx, fo, newPV)
		case user != "":
			return wait, nil // the monitor evicts it
		}
		if err := f.Client.Delete(ctx, cur, client.Preconditions{UID: &cur.UID}); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, fmt.Errorf("deleting claim %s/%s to repoint it: %w", cur.Namespace, cur.Name, err)
		}
		f.Log.Info("deleted the old claim to recreate it on the restored volume", "claim", client.ObjectKeyFromObject(cur), "volume", newPV.Name)
		return wait, nil
	case cur.Spec.VolumeName == newPV.Name:
		if cur.Status.Phase != corev1.ClaimBound {
			return wait, nil
		}
		f.event(cur, corev1.EventTypeNormal, "FailedOver", a[AnnotationFailedOver]+"; now bound to PersistentVolume "+newPV.Name)
		return ctrl.Result{}, f.setPhase(ctx, fo, FailoverDone, corev1.EventTypeNormal, "FailedOver",
			fmt.Sprintf("claim %s is bound to PersistentVolume %s", cur.Name, newPV.Name))
	case cur.Spec.VolumeName == "":
		return wait, nil // recreated by its StatefulSet: it binds to the reserved volume
	}
	// Someone else's claim of that name, bound to another volume: it is never deleted.
	return ctrl.Result{}, f.setPhase(ctx, fo, FailoverFailed, corev1.EventTypeWarning, "FailoverFailed",
		fmt.Sprintf("claim %s was recreated by someone else and bound to PersistentVolume %s; the restored data stays in PersistentVolume %s (reserved for the claim's name)",
			cur.Name, cur.Spec.VolumeName, newPV.Name))
}

// cancel ends a failover whose old node came back before the pod was evicted: the claim keeps
// its volume (newer than any backup); the restored copy is released, kept for an administrator.
func (f *Failover) cancel(ctx context.Context, fo failover, newPV *corev1.PersistentVolume) error {
	orig := newPV.DeepCopy()
	// Bound to the temporary claim again, which is gone: the volume is Released, and no claim
	// binds it.
	newPV.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: fo.rs.Namespace,
		Name: fo.old.Annotations[annotationTemp], UID: fo.rs.UID}
	if newPV.Annotations == nil {
		newPV.Annotations = map[string]string{}
	}
	newPV.Annotations[AnnotationFailedOver] = "failover of claim " + fo.claim.Namespace + "/" + fo.claim.Name + " cancelled: its node's storage came back; this copy is unused"
	if err := f.Client.Patch(ctx, newPV, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("releasing PersistentVolume %s: %w", newPV.Name, err)
	}
	return f.setPhase(ctx, fo, FailoverCancelled, corev1.EventTypeNormal, "FailoverCancelled",
		fmt.Sprintf("the storage of node %s came back before the pod moved: claim %s keeps its volume %s; the restored copy in PersistentVolume %s is unused, and removed",
			fo.old.Annotations[annotationNode], fo.claim.Name, fo.old.Name, newPV.Name))
}

// scheduledUser names a pod bound to a node that still uses the claim (what keeps the claim's
// protection finalizer on), or "".
func scheduledUser(ctx context.Context, c client.Reader, claim *corev1.PersistentVolumeClaim) (string, error) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(claim.Namespace)); err != nil {
		return "", fmt.Errorf("listing the pods of namespace %s: %w", claim.Namespace, err)
	}
	for _, p := range pods.Items {
		if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		for _, v := range p.Spec.Volumes {
			if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim.Name {
				return p.Name, nil
			}
		}
	}
	return "", nil
}

// patchState writes failover state on the old volume, refusing to overwrite a concurrent change.
func (f *Failover) patchState(ctx context.Context, old *corev1.PersistentVolume, set map[string]string) error {
	orig := old.DeepCopy()
	if old.Annotations == nil {
		old.Annotations = map[string]string{}
	}
	for k, v := range set {
		old.Annotations[k] = v
	}
	if err := f.Client.Patch(ctx, old, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("recording failover state on PersistentVolume %s: %w", old.Name, err)
	}
	return nil
}

// setPhase records the phase on the old volume (the state) and on the Restore (for people).
func (f *Failover) setPhase(ctx context.Context, fo failover, phase, kind, reason, msg string) error {
	if err := f.patchState(ctx, fo.old, map[string]string{AnnotationFailoverPhase: phase}); err != nil {
		return err
	}
	orig := fo.rs.DeepCopy()
	if fo.rs.Annotations == nil {
		fo.rs.Annotations = map[string]string{}
	}
	fo.rs.Annotations[AnnotationFailoverPhase] = phase
	if err := f.Client.Patch(ctx, fo.rs, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("recording failover phase %s on Restore %s/%s: %w", phase, fo.rs.Namespace, fo.rs.Name, err)
	}
	f.event(fo.rs, kind, reason, msg)
	return nil
}

func (f *Failover) event(obj client.Object, kind, reason, msg string) {
	if f.Recorder != nil {
		f.Recorder.Eventf(obj, nil, kind, reason, "Failover", "%s", msg)
	}
}
