package controllers

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/hooks"
	"stork.dev/stork/drivers"
	fakedriver "stork.dev/stork/drivers/fake"
)

type failingExec struct{ calls int }

func (f *failingExec) Exec(context.Context, string, string, string, []string) ([]byte, []byte, error) {
	f.calls++
	return nil, nil, errors.New("error dialing backend")
}

// run reconciles until the Snapshot is final (or 20 rounds pass) and returns it.
func run(t *testing.T, r *SnapshotReconciler, key client.ObjectKey) *storkv1.Snapshot {
	t.Helper()
	snap := &storkv1.Snapshot{}
	for range 20 {
		if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key}); err != nil {
			t.Fatal(err)
		}
		if err := r.Client.Get(context.Background(), key, snap); err != nil {
			t.Fatal(err)
		}
		if snap.Status.Phase == storkv1.SnapshotReady || snap.Status.Phase == storkv1.SnapshotFailed {
			return snap
		}
	}
	t.Fatalf("Snapshot not final after 20 rounds: %+v", snap.Status)
	return nil
}

func TestSnapshotReconciler(t *testing.T) {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(storkv1.AddToScheme(s))
	claim := func(name, pv string, phase corev1.PersistentVolumeClaimPhase) *corev1.PersistentVolumeClaim {
		labels := map[string]string{"app": "db"}
		if strings.HasPrefix(name, "data-") {
			labels["tier"] = "data"
		}
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name, Labels: labels},
			Spec:   corev1.PersistentVolumeClaimSpec{VolumeName: pv, StorageClassName: ptr.To("fast")},
			Status: corev1.PersistentVolumeClaimStatus{Phase: phase}}
	}
	foreign := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-nfs"}}
	foreign.Spec.NFS = &corev1.NFSVolumeSource{Server: "nfs", Path: "/x"}
	running := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "db-0", Labels: map[string]string{"app": "db"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "db"}}}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	freeze := storkv1.Hook{Name: "freeze", PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, Command: []string{"true"}}
	thaw := freeze
	thaw.Name = "thaw"

	cases := []struct {
		name      string
		spec      storkv1.SnapshotSpec
		failPV    string
		phase     storkv1.SnapshotPhase
		reason    string // of the Ready condition
		message   string
		hookCalls int
	}{
		{name: "two claims by selector", spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "data"}}}},
			phase: storkv1.SnapshotReady, reason: "Captured", message: "2 volumes captured"},
		{name: "unknown claim", spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "nope"}},
			phase: storkv1.SnapshotFailed, reason: "ClaimNotFound", message: "app/nope does not exist"},
		{name: "unbound claim", spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "pending"}},
			phase: storkv1.SnapshotFailed, reason: "ClaimNotBound", message: "not Bound"},
		{name: "claim of no enabled driver", spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "nfs"}},
			phase: storkv1.SnapshotFailed, reason: "NoDriver", message: "app/nfs is not owned by any enabled driver"},
		{name: "whole namespace with a claim of no driver", spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{WholeNamespace: true}},
			phase: storkv1.SnapshotFailed, reason: "NoDriver", message: "app/nfs is not owned by any enabled driver"},
		{name: "a volume fails", spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "data-1"}}, failPV: "pv-1",
			phase: storkv1.SnapshotFailed, reason: "CaptureFailed", message: "data-1: disk on fire"},
		{name: "failing pre-hook skips the capture, post-hook still runs",
			spec:  storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "data-0"}, PreHooks: []storkv1.Hook{freeze, freeze}, PostHooks: []storkv1.Hook{thaw}},
			phase: storkv1.SnapshotFailed, reason: "CaptureFailed", message: "pre hook freeze failed in pod db-0", hookCalls: 1},
		{name: "failing hooks that may fail",
			spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "data-0"},
				PreHooks: []storkv1.Hook{{Name: "freeze", PodSelector: freeze.PodSelector, Command: []string{"x"}, OnError: storkv1.HookContinue}}},
			phase: storkv1.SnapshotReady, reason: "Captured", hookCalls: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			drv := fakedriver.New(2) // work takes two calls: the controller must come back
			if tc.failPV != "" {
				drv.FailVolume(tc.failPV, "disk on fire")
			}
			snap := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "s", UID: "uid-1"}, Spec: tc.spec}
			c := fake.NewClientBuilder().WithScheme(s).
				WithObjects(snap, claim("data-0", "pv-0", corev1.ClaimBound), claim("data-1", "pv-1", corev1.ClaimBound),
					claim("pending", "", corev1.ClaimPending), claim("nfs", "pv-nfs", corev1.ClaimBound),
					fakedriver.PV("pv-0", 100), fakedriver.PV("pv-1", 200), foreign, running).
				WithStatusSubresource(snap).Build()
			ex := &failingExec{}
			r := &SnapshotReconciler{Client: c, Drivers: drivers.NewSet(drv), Hooks: &hooks.Runner{Client: c, Exec: ex}}
			got := run(t, r, client.ObjectKeyFromObject(snap))
			cond := meta.FindStatusCondition(got.Status.Conditions, storkv1.ConditionReady)
			if got.Status.Phase != tc.phase || cond == nil || cond.Reason != tc.reason || !strings.Contains(cond.Message, tc.message) {
				t.Fatalf("phase %s, Ready %+v; want %s, %s containing %q", got.Status.Phase, cond, tc.phase, tc.reason, tc.message)
			}
			if ex.calls != tc.hookCalls+len(tc.spec.PostHooks) {
				t.Errorf("%d hook runs, want %d", ex.calls, tc.hookCalls+len(tc.spec.PostHooks))
			}
			if tc.phase == storkv1.SnapshotReady {
				for _, v := range got.Status.Volumes {
					if v.Phase != storkv1.VolumeSucceeded || v.SnapshotID == "" || v.Capacity != nil && v.Capacity.IsZero() {
						t.Errorf("volume %+v", v)
					}
				}
				if n := len(drv.Snapshots()); n != len(got.Status.Volumes) {
					t.Errorf("driver holds %d snapshots, want %d", n, len(got.Status.Volumes))
				}
				// Deleting the Snapshot deletes the driver's data, then lets the object go.
				if err := c.Delete(context.Background(), got); err != nil {
					t.Fatal(err)
				}
				if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(snap)}); err != nil {
					t.Fatal(err)
				}
				if n := len(drv.Snapshots()); n != 0 {
					t.Errorf("driver still holds %d snapshots after the Snapshot was deleted", n)
				}
				if err := c.Get(context.Background(), client.ObjectKeyFromObject(snap), got); err == nil {
					t.Errorf("the Snapshot is still there with finalizers %v", got.Finalizers)
				}
			}
		})
	}
}

// A Snapshot deleted after its pre-hooks ran and before its capture began resumes the
// application (post-hooks) and starts no capture.
func TestDeletedBetweenHooks(t *testing.T) {
	ctx := context.Background()
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(storkv1.AddToScheme(s))
	sel := metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}
	now := metav1.Now()
	snap := &storkv1.Snapshot{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "s", UID: "uid-1", Finalizers: []string{SnapshotFinalizer}, DeletionTimestamp: &now},
		Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "data-0"},
			PreHooks:  []storkv1.Hook{{Name: "freeze", PodSelector: sel, Command: []string{"x"}}},
			PostHooks: []storkv1.Hook{{Name: "thaw", PodSelector: sel, Command: []string{"y"}}}},
		Status: storkv1.SnapshotStatus{Phase: storkv1.SnapshotInProgress, TimeRange: storkv1.TimeRange{StartTime: &now},
			Hooks:   []storkv1.HookResult{{Name: "freeze", Stage: storkv1.HookPre, Pod: "db-0", Succeeded: true}},
			Volumes: []storkv1.SnapshotVolumeStatus{{ClaimName: "data-0", VolumeName: "pv-0", Driver: fakedriver.Name, Phase: storkv1.VolumePending}},
			Conditions: []metav1.Condition{{Type: storkv1.ConditionValid, Status: metav1.ConditionTrue, Reason: "ClaimsResolved", LastTransitionTime: now},
				{Type: storkv1.ConditionProgressing, Status: metav1.ConditionTrue, Reason: "RunningPreHooks", LastTransitionTime: now}}},
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "db-0", Labels: map[string]string{"app": "db"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "db"}}}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(snap, pod, fakedriver.PV("pv-0", 100)).WithStatusSubresource(snap).Build()
	drv := fakedriver.New(1)
	ex := &failingExec{}
	r := &SnapshotReconciler{Client: c, Drivers: drivers.NewSet(drv), Hooks: &hooks.Runner{Client: c, Exec: ex}}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(snap)}); err != nil {
		t.Fatal(err)
	}
	if ex.calls != 1 {
		t.Errorf("%d hook runs, want the post-hook once", ex.calls)
	}
	if n := len(drv.Snapshots()); n != 0 {
		t.Errorf("a capture was started for a deleted Snapshot (%d snapshots)", n)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(snap), snap); err == nil {
		t.Errorf("the Snapshot is still there: finalizers %v", snap.Finalizers)
	}
}
