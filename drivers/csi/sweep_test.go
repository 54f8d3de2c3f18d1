package csi

import (
	"context"
	"testing"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// temporaries are a mover pod, a claim, a VolumeSnapshot and a VolumeSnapshotContent named name,
// marked as temporaries of w.
func temporaries(name string, w work, temporary bool) []client.Object {
	objs := []client.Object{
		&corev1.Pod{ObjectMeta: w.meta(storkNS, name), Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}},
		&corev1.PersistentVolumeClaim{ObjectMeta: w.meta(storkNS, name)},
		&snapv1.VolumeSnapshot{ObjectMeta: w.meta(targetNS, name)},
		&snapv1.VolumeSnapshotContent{ObjectMeta: w.meta("", name)},
	}
	if !temporary {
		for _, o := range objs {
			o.SetLabels(nil)
		}
	}
	return objs
}

func TestSweep(t *testing.T) {
	now := metav1.Now()
	owner := func(kind, name, uid string) *metav1.OwnerReference {
		return &metav1.OwnerReference{Kind: kind, Name: name, UID: types.UID(uid)}
	}
	works := []client.Object{
		&storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "running", UID: "b-running"}},
		&storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "done", UID: "b-done"},
			Status: storkv1.BackupStatus{TimeRange: storkv1.TimeRange{StartTime: &now, CompletionTime: &now}}},
		&storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "recreated", UID: "b-new"}},
		&storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "running", UID: "r-running"}},
		&storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "done", UID: "r-done"},
			Status: storkv1.RestoreStatus{TimeRange: storkv1.TimeRange{CompletionTime: &now}}},
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: targetNS, Name: "pending"}, Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}},
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: targetNS, Name: "bound"}, Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound}},
	}
	cases := []struct {
		name      string
		w         work
		temporary bool
		deleted   bool
	}{
		{"backup-gone", work{kind: "Backup", namespace: appNS, owner: owner("Backup", "gone", "b-gone")}, true, true},
		{"backup-other-uid", work{kind: "Backup", namespace: appNS, owner: owner("Backup", "recreated", "b-old")}, true, true},
		{"backup-completed", work{kind: "Backup", namespace: appNS, owner: owner("Backup", "done", "b-done")}, true, true},
		{"backup-running", work{kind: "Backup", namespace: appNS, owner: owner("Backup", "running", "b-running")}, true, false},
		{"backup-in-other-namespace", work{kind: "Backup", namespace: "elsewhere", owner: owner("Backup", "running", "b-running")}, true, true},
		{"restore-running-claim-pending", work{kind: "Restore", namespace: appNS, owner: owner("Restore", "running", "r-running"), claim: targetNS + "/pending"}, true, false},
		{"restore-running-claim-bound", work{kind: "Restore", namespace: appNS, owner: owner("Restore", "running", "r-running"), claim: targetNS + "/bound"}, true, false},
		{"restore-done-claim-pending", work{kind: "Restore", namespace: appNS, owner: owner("Restore", "done", "r-done"), claim: targetNS + "/pending"}, true, false},
		{"restore-done-claim-bound", work{kind: "Restore", namespace: appNS, owner: owner("Restore", "done", "r-done"), claim: targetNS + "/bound"}, true, true},
		{"restore-done-claim-gone", work{kind: "Restore", namespace: appNS, owner: owner("Restore", "done", "r-done"), claim: targetNS + "/gone"}, true, true},
		{"restore-done-no-claim", work{kind: "Restore", namespace: appNS, owner: owner("Restore", "done", "r-done")}, true, true},
		{"restore-gone-claim-pending", work{kind: "Restore", namespace: appNS, owner: owner("Restore", "gone", "r-gone"), claim: targetNS + "/pending"}, true, true},
		{"restore-other-uid", work{kind: "Restore", namespace: appNS, owner: owner("Restore", "running", "r-old"), claim: targetNS + "/pending"}, true, true},
		{"unknown-kind", work{kind: "Snapshot", namespace: appNS, owner: owner("Snapshot", "gone", "s-gone")}, true, false},
		{"not-temporary", work{kind: "Backup", namespace: appNS, owner: owner("Backup", "gone", "b-gone")}, false, false},
	}
	objs := append([]client.Object{}, works...)
	for _, tc := range cases {
		objs = append(objs, temporaries(tc.name, tc.w, tc.temporary)...)
	}
	// A pod outside Stork's namespace is never the sweeper's, whatever its marks.
	stray := &corev1.Pod{ObjectMeta: work{kind: "Backup", namespace: appNS, owner: owner("Backup", "gone", "b-gone")}.meta(appNS, "stray"),
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	objs = append(objs, stray)
	e := newEnv(t, nil, nil, objs...)

	e.d.Sweep(e.ctx)

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, o := range temporaries(tc.name, tc.w, tc.temporary) {
				if exists := e.exists(o, o.GetNamespace(), o.GetName()); exists == tc.deleted {
					t.Errorf("%T %s: exists=%v, want deleted=%v", o, tc.name, exists, tc.deleted)
				}
			}
		})
	}
	if !e.exists(&corev1.Pod{}, appNS, "stray") {
		t.Error("a pod outside Stork's namespace was swept")
	}
	for _, w := range works {
		if !e.exists(w.DeepCopyObject().(client.Object), w.GetNamespace(), w.GetName()) {
			t.Errorf("%T %s was deleted", w, w.GetName())
		}
	}
}

// Unreadable work keeps its temporaries; a missing snapshot API skips those lists.
func TestSweepKeepsWhatItCannotJudge(t *testing.T) {
	w := work{kind: "Backup", namespace: appNS, owner: &metav1.OwnerReference{Name: "gone", UID: "b-gone"}}
	funcs := &interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*storkv1.Backup); ok {
				return apierrors.NewServiceUnavailable("down")
			}
			return c.Get(ctx, key, obj, opts...)
		},
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			switch list.(type) {
			case *snapv1.VolumeSnapshotList, *snapv1.VolumeSnapshotContentList:
				return noMatch("VolumeSnapshot")
			}
			return c.List(ctx, list, opts...)
		},
	}
	e := newEnv(t, nil, funcs, temporaries("t", w, true)...)
	e.d.Sweep(e.ctx)
	for _, o := range temporaries("t", w, true) {
		if !e.exists(o, o.GetNamespace(), o.GetName()) {
			t.Errorf("%T deleted though its Backup could not be read", o)
		}
	}
}

// The sweeper leaves objects already being deleted alone.
func TestSweepSkipsObjectsBeingDeleted(t *testing.T) {
	w := work{kind: "Backup", namespace: appNS, owner: &metav1.OwnerReference{Name: "gone", UID: "b-gone"}}
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: w.meta(storkNS, "t")}
	pvc.Finalizers = []string{"kubernetes.io/pvc-protection"}
	pvc.DeletionTimestamp = ptr.To(metav1.Now())
	deletes := 0
	funcs := &interceptor.Funcs{Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
		deletes++
		return c.Delete(ctx, obj, opts...)
	}}
	e := newEnv(t, nil, funcs, pvc)
	e.d.Sweep(e.ctx)
	if deletes != 0 {
		t.Errorf("%d deletes of an object being deleted", deletes)
	}
}

// TestTaskWatchStopsMoversOfDeletedTasks: the mover pods of a task that is gone, being deleted,
// or replaced by a new task of its name are stopped; those of a live task, and pods that name
// another task, are not.
func TestTaskWatchStopsMoversOfDeletedTasks(t *testing.T) {
	now := metav1.Now()
	mover := func(name, task, uid string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: storkNS, Name: name,
			Labels:      map[string]string{LabelMover: "true", LabelMoverTask: uid},
			Annotations: map[string]string{AnnMoverTask: appNS + "/" + task}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	}
	task := func(name, uid string, deleting bool) *storkv1.VolumeTask {
		tk := &storkv1.VolumeTask{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: name, UID: types.UID(uid),
			Labels: map[string]string{storkv1.LabelTaskDriver: Name}}}
		if deleting {
			tk.DeletionTimestamp, tk.Finalizers = &now, []string{"test"}
		}
		return tk
	}
	e := newEnv(t, nil, nil,
		task("live", "u-live", false), task("deleting", "u-deleting", true), task("replaced", "u-new", false),
		mover("live-0", "live", "u-live"), mover("deleting-0", "deleting", "u-deleting"), mover("replaced-0", "replaced", "u-old"),
		mover("gone-0", "gone", "u-gone"), mover("gone-1", "gone", "u-gone"), mover("other-0", "other", "u-other"))
	w := &taskWatch{d: e.d}
	for _, name := range []string{"live", "deleting", "replaced", "gone"} {
		if _, err := w.Reconcile(e.ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: appNS, Name: name}}); err != nil {
			t.Fatalf("reconciling task %s: %v", name, err)
		}
	}
	for pod, stopped := range map[string]bool{"live-0": false, "deleting-0": true, "replaced-0": true, "gone-0": true, "gone-1": true, "other-0": false} {
		if exists := e.exists(&corev1.Pod{}, storkNS, pod); exists == stopped {
			t.Errorf("mover pod %s: exists=%v, want stopped=%v", pod, exists, stopped)
		}
	}
}
