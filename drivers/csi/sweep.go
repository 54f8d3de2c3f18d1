package csi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

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
	// AnnMoverTask names the VolumeTask (namespace/name) a mover pod works for, so that the
	// pod is stopped as soon as its task is deleted (taskWatch).
	AnnMoverTask = "stork.dev/mover-task"
)

// SetupWithManager implements drivers.ControllerOwner: the sweeper runs on the leader, and so
// does the watch that stops the mover pods of deleted tasks.
func (d *Driver) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.Add(&sweeper{d: d}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).Named("csi-mover-cancel").
		// Only deletions: a task's progress updates must not cost a read each. Pods of tasks
		// deleted while no leader ran are the sweeper's.
		For(&storkv1.VolumeTask{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetLabels()[storkv1.LabelTaskDriver] == Name
		}), predicate.Funcs{
			CreateFunc:  func(event.CreateEvent) bool { return false },
			UpdateFunc:  func(e event.UpdateEvent) bool { return e.ObjectNew.GetDeletionTimestamp() != nil },
			DeleteFunc:  func(event.DeleteEvent) bool { return true },
			GenericFunc: func(event.GenericEvent) bool { return false },
		})).
		Complete(&taskWatch{d: d})
}

// taskWatch stops the mover pods of a VolumeTask that is deleted (its Backup or Restore was
// cancelled), within seconds rather than at the next sweep: the pods are in Stork's namespace,
// the task in the application's, so no owner reference can do it.
type taskWatch struct{ d *Driver }

// Reconcile deletes the mover pods that name the task when it is gone, being deleted, or
// replaced by a new task of its name. The task is read from the API server, not the cache: a
// pod is only ever stopped for a task known to be gone.
func (w *taskWatch) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	d := w.d
	task := &storkv1.VolumeTask{}
	err := d.api.Get(ctx, req.NamespacedName, task)
	switch {
	case apierrors.IsNotFound(err):
		task = nil
	case err != nil:
		return ctrl.Result{}, err
	}
	var pods corev1.PodList
	if err := d.c.List(ctx, &pods, client.InNamespace(d.cfg.namespace), client.MatchingLabels{LabelMover: "true"}); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing mover pods: %w", err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Annotations[AnnMoverTask] != req.String() || p.DeletionTimestamp != nil ||
			(task != nil && task.DeletionTimestamp == nil && p.Labels[LabelMoverTask] == string(task.UID)) {
			continue
		}
		d.deletePod(ctx, p)
		d.log.Info("stopped a mover pod: its task was deleted", "pod", keyOf(p), "task", req.String())
	}
	return ctrl.Result{}, nil
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
	if err := d.api.List(ctx, &pvs, client.MatchingLabels{LabelHandingOver: "true"}); err != nil {
		d.log.Info("sweeper: listing handed-over volumes failed", "error", err.Error())
	}
	for i := range pvs.Items {
		if err := d.sweepHandOver(ctx, &pvs.Items[i]); err != nil {
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

// sweepHandOver finishes the hand-over of a volume bound to its target claim, and deletes one
// whose Restore went away before that (its reclaim policy restored first, so that the
// provisioner deletes its storage too): nobody would ever claim it.
func (d *Driver) sweepHandOver(ctx context.Context, pv *corev1.PersistentVolume) error {
	if pv.Labels[LabelHandOver] == "true" && pv.Status.Phase == corev1.VolumeBound {
		return d.finishHandOver(ctx, pv)
	}
	if gone, _ := d.workState(ctx, pv.GetAnnotations()); !gone || pv.DeletionTimestamp != nil {
		return nil
	}
	if policy := pv.Annotations[AnnReclaimPolicy]; policy != "" && policy != string(pv.Spec.PersistentVolumeReclaimPolicy) {
		body, _ := json.Marshal(map[string]any{"spec": map[string]any{"persistentVolumeReclaimPolicy": policy}})
		if err := d.c.Patch(ctx, pv, client.RawPatch(types.MergePatchType, body)); err != nil {
			return fmt.Errorf("restoring the reclaim policy of orphaned restored volume %s: %w", pv.Name, err)
		}
	}
	if err := d.c.Delete(ctx, pv); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting restored volume %s, whose Restore is gone: %w", pv.Name, err)
	}
	d.log.Info("sweeper: deleted a restored volume whose Restore went away during its hand-over", "volume", pv.Name,
		"restore", pv.Annotations[AnnWorkNamespace]+"/"+pv.Annotations[AnnWorkName])
	return nil
}

// workState says whether the work (Backup or Restore) the annotations name is gone (deleted,
// or replaced by a new object of its name) or has ended. Work it cannot judge (unknown kind,
// unreadable) is neither.
func (d *Driver) workState(ctx context.Context, a map[string]string) (gone, ended bool) {
	key := client.ObjectKey{Namespace: a[AnnWorkNamespace], Name: a[AnnWorkName]}
	var w client.Object
	var done func() bool
	switch a[AnnWorkKind] {
	case "Backup":
		b := &storkv1.Backup{}
		w, done = b, func() bool { return b.Status.CompletionTime != nil }
	case "Restore":
		r := &storkv1.Restore{}
		w, done = r, func() bool { return r.Status.CompletionTime != nil }
	default:
		return false, false // not made by this driver's current code: left alone
	}
	if err := d.api.Get(ctx, key, w); err != nil {
		return apierrors.IsNotFound(err), false
	}
	if string(w.GetUID()) != a[AnnWorkUID] {
		return true, false
	}
	return false, done()
}

// over reports whether a temporary's work is gone or has ended (and, for a restore's
// temporary serving a claim, the claim is bound or gone). Unreadable state keeps it.
func (d *Driver) over(ctx context.Context, o client.Object) bool {
	a := o.GetAnnotations()
	gone, ended := d.workState(ctx, a)
	if gone {
		return true
	}
	if !ended {
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
