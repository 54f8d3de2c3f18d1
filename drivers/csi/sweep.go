package csi

import (
	"context"
	"strings"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// Marks of the temporaries the driver makes for a Backup or Restore (its "work").
const (
	// LabelTemporary marks an object the driver deletes when its work ends.
	LabelTemporary = "stork.dev/temporary"
	// AnnWorkKind, AnnWorkNamespace, AnnWorkName and AnnWorkUID name the Backup or Restore a
	// temporary is for.
	AnnWorkKind      = "stork.dev/work-kind"
	AnnWorkNamespace = "stork.dev/work-namespace"
	AnnWorkName      = "stork.dev/work-name"
	AnnWorkUID       = "stork.dev/work-uid"
	// AnnForClaim names the claim (namespace/name) a restore's temporary serves: it is kept
	// until that claim is bound.
	AnnForClaim = "stork.dev/for-claim"
)

// SetupWithManager implements drivers.ControllerOwner: the sweeper runs on the leader.
func (d *Driver) SetupWithManager(mgr ctrl.Manager) error {
	return mgr.Add(&sweeper{d: d})
}

// sweeper deletes the temporaries (mover pods, temporary claims, VolumeSnapshots and
// VolumeSnapshotContents) whose Backup or Restore is gone or has ended: the driver deletes them
// itself when the work ends, and the sweeper covers a controller that died in between, a Backup
// deleted half-way, and a delete that failed.
type sweeper struct{ d *Driver }

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (s *sweeper) NeedLeaderElection() bool { return true }

// Start runs until ctx ends.
func (s *sweeper) Start(ctx context.Context) error {
	wait.UntilWithContext(ctx, func(ctx context.Context) { s.d.Sweep(ctx) }, s.d.cfg.sweepInterval)
	return nil
}

// Sweep deletes the temporaries whose work is over, and restores the reclaim policy of
// handed-over volumes that are bound, once.
func (d *Driver) Sweep(ctx context.Context) {
	var pvs corev1.PersistentVolumeList
	if err := d.api.List(ctx, &pvs, client.MatchingLabels{LabelHandOver: "true"}); err != nil {
		d.log.Info("sweeper: listing handed-over volumes failed", "error", err.Error())
	}
	for i := range pvs.Items {
		if err := d.finishHandOver(ctx, &pvs.Items[i]); err != nil {
			d.log.Info("sweeper: "+err.Error(), "volume", pvs.Items[i].Name)
		}
	}
	temp := client.MatchingLabels{LabelTemporary: "true"}
	lists := []struct {
		list client.ObjectList
		opts []client.ListOption
	}{
		{&corev1.PodList{}, []client.ListOption{client.InNamespace(d.cfg.namespace), temp}},
		{&corev1.PersistentVolumeClaimList{}, []client.ListOption{client.InNamespace(d.cfg.namespace), temp}},
		{&snapv1.VolumeSnapshotList{}, []client.ListOption{temp}},
		{&snapv1.VolumeSnapshotContentList{}, []client.ListOption{temp}},
	}
	for _, l := range lists {
		if err := d.api.List(ctx, l.list, l.opts...); err != nil {
			if !meta.IsNoMatchError(err) {
				d.log.Info("sweeper: listing temporaries failed", "error", err.Error())
			}
			continue
		}
		_ = meta.EachListItem(l.list, func(o runtime.Object) error {
			obj := o.(client.Object)
			if obj.GetDeletionTimestamp() == nil && d.over(ctx, obj) {
				if err := d.c.Delete(ctx, obj, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
					d.log.Info("sweeper: deleting a temporary failed", "object", keyOf(obj), "error", err.Error())
				} else {
					d.log.Info("sweeper: deleted a temporary whose work is over", "object", keyOf(obj), "kind", o.GetObjectKind().GroupVersionKind().Kind)
				}
			}
			return nil
		})
	}
}

// over reports whether a temporary's work is gone or has ended (and, for a restore's
// temporary serving a claim, the claim is bound or gone). Unreadable state keeps it.
func (d *Driver) over(ctx context.Context, o client.Object) bool {
	a := o.GetAnnotations()
	key := client.ObjectKey{Namespace: a[AnnWorkNamespace], Name: a[AnnWorkName]}
	var w client.Object
	var ended func() bool
	switch a[AnnWorkKind] {
	case "Backup":
		b := &storkv1.Backup{}
		w, ended = b, func() bool { return b.Status.CompletionTime != nil }
	case "Restore":
		r := &storkv1.Restore{}
		w, ended = r, func() bool { return r.Status.CompletionTime != nil }
	default:
		return false // not made by this driver's current code: left alone
	}
	if err := d.api.Get(ctx, key, w); err != nil {
		return apierrors.IsNotFound(err)
	}
	if string(w.GetUID()) != a[AnnWorkUID] {
		return true // a new object of the same name
	}
	if !ended() {
		return false
	}
	ns, name, ok := cutKey(a[AnnForClaim])
	if !ok {
		return true
	}
	pvc := &corev1.PersistentVolumeClaim{}
	err := d.api.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pvc)
	return apierrors.IsNotFound(err) || (err == nil && pvc.Status.Phase == corev1.ClaimBound)
}

func cutKey(s string) (string, string, bool) {
	ns, name, ok := strings.Cut(s, "/")
	return ns, name, ok && ns != "" && name != ""
}

// snapshotObjects are the VolumeSnapshot ns/name and its pre-provisioned content of the same
// name, for deletion.
func snapshotObjects(ns, name string) []client.Object {
	return []client.Object{
		&snapv1.VolumeSnapshot{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}},
		&snapv1.VolumeSnapshotContent{ObjectMeta: metav1.ObjectMeta{Name: name}},
	}
}
