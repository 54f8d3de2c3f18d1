package placement

import (
	"context"
	"encoding/json"
	"fmt"
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
	"stork.dev/stork/internal/names"
)

// Failover, opted into per claim or StorageClass, gives a local volume a new home when the
// storage of its node is down: a local volume has one copy, so moving its pod alone does not
// help. It restores the claim's latest backup onto a healthy node of the same zone through a
// Stork Restore (status, progress and events come with it), repoints the claim at the new
// volume, and has the monitor evict the pod, whose controller recreates it near the new copy.
const (
	// AnnotationFailover set to "true" on a PersistentVolumeClaim or its StorageClass opts the
	// claim into failover.
	AnnotationFailover = "stork.dev/failover"
	// LabelFailoverOf on a failover Restore holds the UID of the claim it restores.
	LabelFailoverOf = "stork.dev/failover-of"
	// AnnotationFailoverPhase on a failover Restore: Restoring, Repointing, Done or Failed.
	AnnotationFailoverPhase = "stork.dev/failover-phase"
	// annotationFailoverClaim on a failover Restore keeps the claim to recreate, as JSON, so
	// that a controller restart between deleting and recreating it loses nothing.
	annotationFailoverClaim = "stork.dev/failover-claim"
	// AnnotationFailedOver on the new claim and the old volume says what happened.
	AnnotationFailedOver = "stork.dev/failed-over"
)

// Failover phases, in the Restore's AnnotationFailoverPhase.
const (
	FailoverRestoring  = "Restoring"
	FailoverRepointing = "Repointing"
	FailoverDone       = "Done"
	FailoverFailed     = "Failed"
)

// Failover starts failovers for the monitor and finishes them as a reconciler of failover
// Restores.
type Failover struct {
	Client client.Client
	// Reader lists pods from the API server (Stork caches no pods).
	Reader   client.Reader
	Recorder events.EventRecorder
	Log      logr.Logger
}

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

// Step is the monitor's part: for a claim whose only copy is on node, down past probation, it
// starts a failover if the claim opted in, and reports handled (a failover exists or was
// started) and ready (the new copy is in place and the claim repointed: evict the pod now).
func (f *Failover) Step(ctx context.Context, pod *corev1.Pod, claimName, node string) (ready, handled bool, err error) {
	claim := &corev1.PersistentVolumeClaim{}
	if err := f.Client.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: claimName}, claim); err != nil {
		return false, false, client.IgnoreNotFound(err)
	}
	if on, err := f.enabled(ctx, claim); err != nil || !on {
		return false, false, err
	}
	rs, err := f.restoreOf(ctx, claim)
	if err != nil {
		return false, false, err
	}
	if rs == nil {
		// handled only if a Restore was made: with no backup to restore, the monitor must say
		// that the pod stays (NotEvicted), not wait for a failover that never comes.
		started, err := f.start(ctx, claim, node)
		return false, started, err
	}
	switch rs.Annotations[AnnotationFailoverPhase] {
	case FailoverFailed:
		return false, false, nil // reported when it failed; the monitor says the pod stays
	case FailoverRepointing, FailoverDone:
		return true, true, nil
	}
	return false, true, nil
}

// restoreOf finds the failover Restore of a claim.
func (f *Failover) restoreOf(ctx context.Context, claim *corev1.PersistentVolumeClaim) (*storkv1.Restore, error) {
	var list storkv1.RestoreList
	if err := f.Client.List(ctx, &list, client.InNamespace(claim.Namespace), client.MatchingLabels{LabelFailoverOf: string(claim.UID)}); err != nil {
		return nil, fmt.Errorf("listing the failover Restores of claim %s/%s: %w", claim.Namespace, claim.Name, err)
	}
	if len(list.Items) == 0 {
		return nil, nil
	}
	return &list.Items[0], nil
}

// latestBackup is the newest finished Backup in the claim's namespace that holds a copy of it.
func (f *Failover) latestBackup(ctx context.Context, claim *corev1.PersistentVolumeClaim) (*storkv1.Backup, error) {
	var list storkv1.BackupList
	if err := f.Client.List(ctx, &list, client.InNamespace(claim.Namespace)); err != nil {
		return nil, fmt.Errorf("listing the Backups of namespace %s: %w", claim.Namespace, err)
	}
	var best *storkv1.Backup
	for i := range list.Items {
		b := &list.Items[i]
		if b.DeletionTimestamp != nil || (b.Status.Phase != storkv1.BackupCompleted && b.Status.Phase != storkv1.BackupPartiallyFailed) {
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

// start creates the failover Restore of a claim from its latest backup, and reports whether it
// did (false when no backup holds the claim).
func (f *Failover) start(ctx context.Context, claim *corev1.PersistentVolumeClaim, node string) (bool, error) {
	b, err := f.latestBackup(ctx, claim)
	if err != nil {
		return false, err
	}
	if b == nil {
		f.event(claim, corev1.EventTypeWarning, "FailoverImpossible",
			fmt.Sprintf("storage on node %s is down and the claim opted into failover, but no finished Backup in namespace %s holds it", node, claim.Namespace))
		return false, nil
	}
	saved, err := json.Marshal(claimToRecreate(claim))
	if err != nil {
		return false, err
	}
	uid8 := string(claim.UID)[:8]
	temp := failoverName("", claim.Name, "-failover-"+uid8)
	rs := &storkv1.Restore{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: claim.Namespace,
			Name:      failoverName("failover-", claim.Name, "-"+uid8),
			Labels:    map[string]string{LabelFailoverOf: string(claim.UID)},
			Annotations: map[string]string{
				AnnotationFailoverPhase: FailoverRestoring,
				annotationFailoverClaim: string(saved),
				AnnotationFailedOver: fmt.Sprintf("claim %s: storage of node %s down; restoring Backup %s (started %s)",
					claim.Name, node, b.Name, backupTime(b).UTC().Format(time.RFC3339)),
			},
		},
		Spec: storkv1.RestoreSpec{
			Source:           storkv1.RestoreSource{BackupName: b.Name},
			Claims:           []string{claim.Name},
			ClaimNameMapping: map[string]string{claim.Name: temp},
			VolumesOnly:      true,
			// Keep: the backup's zone, which is the claim's; the driver picks a healthy node there.
			ZoneMapping: &storkv1.ZoneMapping{Mode: storkv1.ZoneKeep},
		},
	}
	if err := f.Client.Create(ctx, rs); err != nil && !apierrors.IsAlreadyExists(err) {
		return false, fmt.Errorf("creating failover Restore %s/%s: %w", rs.Namespace, rs.Name, err)
	}
	f.event(claim, corev1.EventTypeWarning, "FailoverStarted",
		fmt.Sprintf("storage on node %s is down: restoring the claim from Backup %s (started %s) onto a healthy node of its zone (Restore %s)",
			node, b.Name, backupTime(b).UTC().Format(time.RFC3339), rs.Name))
	return true, nil
}

// failoverName is prefix+claim+suffix as a label value (at most 63 characters), shortening the
// claim's name rather than cutting off the suffix: the suffix, from the claim's UID, is what keeps
// apart the names made for long claims that differ only at their end (a StatefulSet's "-0" and
// "-1"). Cut from the end, they would share one Restore, whose AlreadyExists was taken for
// success.
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

// Reconcile moves a failover on once its Restore completed: the new volume is reserved for the
// claim's name, the old volume kept (Retain), the claim deleted once no scheduled pod uses it
// (the monitor evicts the pod) and recreated bound to the new volume.
func (f *Failover) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rs := &storkv1.Restore{}
	if err := f.Client.Get(ctx, req.NamespacedName, rs); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	phase := rs.Annotations[AnnotationFailoverPhase]
	if phase == FailoverDone || phase == FailoverFailed || rs.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	switch rs.Status.Phase {
	case storkv1.RestoreCompleted:
	case storkv1.RestoreFailed, storkv1.RestorePartiallyFailed:
		msg := "the restore failed"
		if len(rs.Status.Volumes) > 0 {
			msg += ": " + rs.Status.Volumes[0].Reason + ": " + rs.Status.Volumes[0].Message
		}
		return ctrl.Result{}, f.setPhase(ctx, rs, FailoverFailed, corev1.EventTypeWarning, "FailoverFailed", msg+"; the pod stays on its node (delete this Restore to try again)")
	default:
		return ctrl.Result{}, nil // the Restore's own updates wake us
	}
	saved := &corev1.PersistentVolumeClaim{}
	if err := json.Unmarshal([]byte(rs.Annotations[annotationFailoverClaim]), saved); err != nil || len(rs.Status.Volumes) != 1 {
		return ctrl.Result{}, f.setPhase(ctx, rs, FailoverFailed, corev1.EventTypeWarning, "FailoverFailed", "the failover Restore lost the claim it was made for")
	}
	newPV, err := f.restoredVolume(ctx, rs)
	if err != nil || newPV == nil {
		return ctrl.Result{RequeueAfter: 5 * time.Second}, err
	}
	if err := f.reserve(ctx, newPV, saved, rs); err != nil {
		return ctrl.Result{}, err
	}
	if phase != FailoverRepointing {
		if err := f.setPhase(ctx, rs, FailoverRepointing, corev1.EventTypeNormal, "FailoverRestored",
			fmt.Sprintf("claim %s restored onto PersistentVolume %s on node %s; the pod is evicted next", saved.Name, newPV.Name, rs.Status.Volumes[0].Node)); err != nil {
			return ctrl.Result{}, err
		}
	}
	return f.repoint(ctx, rs, saved, newPV)
}

// restoredVolume is the volume the Restore made: its temporary claim's, or, once that claim is
// deleted, the one already reserved for the claim.
func (f *Failover) restoredVolume(ctx context.Context, rs *storkv1.Restore) (*corev1.PersistentVolume, error) {
	name := rs.Annotations["stork.dev/failover-volume"]
	if name == "" {
		temp := &corev1.PersistentVolumeClaim{}
		key := client.ObjectKey{Namespace: rs.Namespace, Name: rs.Status.Volumes[0].TargetClaim}
		if err := f.Client.Get(ctx, key, temp); err != nil {
			return nil, fmt.Errorf("reading the restored claim %s: %w", key, err)
		}
		if temp.Spec.VolumeName == "" {
			return nil, nil
		}
		name = temp.Spec.VolumeName
		orig := rs.DeepCopy()
		rs.Annotations["stork.dev/failover-volume"] = name
		if err := f.Client.Patch(ctx, rs, client.MergeFrom(orig)); err != nil {
			return nil, fmt.Errorf("recording the restored volume on Restore %s: %w", rs.Name, err)
		}
	}
	pv := &corev1.PersistentVolume{}
	if err := f.Client.Get(ctx, client.ObjectKey{Name: name}, pv); err != nil {
		return nil, fmt.Errorf("reading the restored PersistentVolume %s: %w", name, err)
	}
	return pv, nil
}

// reserve points the new volume at the claim's name (without a UID, so that the claim, once
// recreated, binds to it and nothing else does) and deletes the temporary claim.
func (f *Failover) reserve(ctx context.Context, pv *corev1.PersistentVolume, claim *corev1.PersistentVolumeClaim, rs *storkv1.Restore) error {
	if ref := pv.Spec.ClaimRef; ref == nil || ref.Name != claim.Name || ref.Namespace != claim.Namespace {
		pv.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: claim.Namespace, Name: claim.Name}
		pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
		if pv.Annotations == nil {
			pv.Annotations = map[string]string{}
		}
		pv.Annotations[AnnotationFailedOver] = rs.Annotations[AnnotationFailedOver]
		if err := f.Client.Update(ctx, pv); err != nil {
			return fmt.Errorf("reserving PersistentVolume %s for claim %s/%s: %w", pv.Name, claim.Namespace, claim.Name, err)
		}
	}
	temp := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: rs.Namespace, Name: rs.Status.Volumes[0].TargetClaim}}
	if err := f.Client.Delete(ctx, temp); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting the temporary claim %s/%s: %w", temp.Namespace, temp.Name, err)
	}
	return nil
}

// repoint replaces the old claim with one bound to the new volume.
func (f *Failover) repoint(ctx context.Context, rs *storkv1.Restore, saved *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume) (ctrl.Result, error) {
	wait := ctrl.Result{RequeueAfter: 2 * time.Second}
	cur := &corev1.PersistentVolumeClaim{}
	err := f.Client.Get(ctx, client.ObjectKeyFromObject(saved), cur)
	switch {
	case apierrors.IsNotFound(err):
		saved.Spec.VolumeName = pv.Name
		if err := f.Client.Create(ctx, saved); err != nil && !apierrors.IsAlreadyExists(err) {
			return ctrl.Result{}, fmt.Errorf("recreating claim %s/%s on PersistentVolume %s: %w", saved.Namespace, saved.Name, pv.Name, err)
		}
		return wait, nil
	case err != nil:
		return ctrl.Result{}, err
	case cur.Spec.VolumeName == pv.Name || (cur.Spec.VolumeName == "" && string(cur.UID) != rs.Labels[LabelFailoverOf]):
		// The new claim (ours, or its StatefulSet's from the template) binds to the reserved volume.
		if cur.Status.Phase != corev1.ClaimBound {
			return wait, nil
		}
		f.event(cur, corev1.EventTypeNormal, "FailedOver", rs.Annotations[AnnotationFailedOver]+"; now bound to PersistentVolume "+pv.Name+" on node "+rs.Status.Volumes[0].Node)
		return ctrl.Result{}, f.setPhase(ctx, rs, FailoverDone, corev1.EventTypeNormal, "FailedOver",
			fmt.Sprintf("claim %s is bound to PersistentVolume %s on node %s", cur.Name, pv.Name, rs.Status.Volumes[0].Node))
	case cur.DeletionTimestamp != nil:
		return wait, nil // kube-controller-manager removes it once no scheduled pod uses it
	}
	// The old claim: keep its volume's data (the node may come back), then delete it once no
	// scheduled pod uses it.
	if err := f.retainOld(ctx, cur.Spec.VolumeName, pv.Name); err != nil {
		return ctrl.Result{}, err
	}
	if used, err := scheduledUser(ctx, f.Reader, cur); err != nil || used {
		return wait, err
	}
	if err := f.Client.Delete(ctx, cur); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, fmt.Errorf("deleting claim %s/%s to repoint it: %w", cur.Namespace, cur.Name, err)
	}
	return wait, nil
}

// retainOld keeps the old volume (and its data) when its claim is deleted.
func (f *Failover) retainOld(ctx context.Context, name, newName string) error {
	if name == "" {
		return nil
	}
	pv := &corev1.PersistentVolume{}
	if err := f.Client.Get(ctx, client.ObjectKey{Name: name}, pv); err != nil {
		return client.IgnoreNotFound(err)
	}
	if pv.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimRetain && pv.Annotations[AnnotationFailedOver] != "" {
		return nil
	}
	orig := pv.DeepCopy()
	pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
	if pv.Annotations == nil {
		pv.Annotations = map[string]string{}
	}
	pv.Annotations[AnnotationFailedOver] = "replaced by PersistentVolume " + newName + "; kept for its data"
	if err := f.Client.Patch(ctx, pv, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("retaining the old PersistentVolume %s: %w", name, err)
	}
	return nil
}

// scheduledUser reports whether a pod bound to a node still uses the claim (what keeps the
// claim's protection finalizer on).
func scheduledUser(ctx context.Context, c client.Reader, claim *corev1.PersistentVolumeClaim) (bool, error) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(claim.Namespace)); err != nil {
		return false, fmt.Errorf("listing the pods of namespace %s: %w", claim.Namespace, err)
	}
	for _, p := range pods.Items {
		if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		for _, v := range p.Spec.Volumes {
			if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim.Name {
				return true, nil
			}
		}
	}
	return false, nil
}

func (f *Failover) setPhase(ctx context.Context, rs *storkv1.Restore, phase, kind, reason, msg string) error {
	orig := rs.DeepCopy()
	if rs.Annotations == nil {
		// A Restore labelled by hand (or stripped of its annotations) has none: failing it
		// must not panic.
		rs.Annotations = map[string]string{}
	}
	rs.Annotations[AnnotationFailoverPhase] = phase
	if err := f.Client.Patch(ctx, rs, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("recording failover phase %s on Restore %s/%s: %w", phase, rs.Namespace, rs.Name, err)
	}
	f.event(rs, kind, reason, msg)
	return nil
}

func (f *Failover) event(obj client.Object, kind, reason, msg string) {
	if f.Recorder != nil {
		f.Recorder.Eventf(obj, nil, kind, reason, "Failover", "%s", msg)
	}
}
