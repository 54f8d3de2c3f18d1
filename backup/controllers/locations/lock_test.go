package locations

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// TestLockRetention: a location retains new objects for its spec's retention, or longer when a
// schedule backing up there keeps backups longer; schedules of other locations or namespaces,
// and read-only locations, do not count.
func TestLockRetention(t *testing.T) {
	const day = 24 * time.Hour
	sched := func(ns, name, loc string, span time.Duration) client.Object {
		return &storkv1.SnapshotSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:   storkv1.SnapshotScheduleSpec{Template: storkv1.SnapshotTemplate{Spec: storkv1.SnapshotSpec{BackupLocation: loc}}},
			Status: storkv1.SnapshotScheduleStatus{BackupRetentionSpan: &metav1.Duration{Duration: span}}}
	}
	s := runtime.NewScheme()
	utilruntime.Must(storkv1.AddToScheme(s))
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(
		sched("app", "daily", "worm", 10*day), sched("app", "other", "elsewhere", 400*day), sched("other", "far", "worm", 300*day)).Build()
	r := &Reconciler{Client: c}
	loc := func(spec time.Duration, mode storkv1.BackupLocationAccessMode) *storkv1.BackupLocation {
		l := &storkv1.BackupLocation{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "worm"},
			Spec: storkv1.BackupLocationSpec{URL: "s3://b", S3: &storkv1.S3Options{}, AccessMode: mode}}
		if spec > 0 {
			l.Spec.S3.ObjectLockRetention = &metav1.Duration{Duration: spec}
		}
		return l
	}
	for _, tc := range []struct {
		name string
		loc  *storkv1.BackupLocation
		want time.Duration
	}{
		{"the schedule keeps backups longer than the spec", loc(day, storkv1.AccessReadWrite), 10 * day},
		{"the spec is longer", loc(30*day, storkv1.AccessReadWrite), 30 * day},
		{"only the schedule", loc(0, storkv1.AccessReadWrite), 10 * day},
		{"read-only: never writes", loc(30*day, storkv1.AccessReadOnly), 0},
	} {
		got, err := r.lockRetention(context.Background(), tc.loc)
		if err != nil {
			t.Fatal(err)
		}
		if (got == nil && tc.want != 0) || (got != nil && got.Duration != tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
