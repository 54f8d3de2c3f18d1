package locations

import (
	"context"
	"stork.dev/stork/backup/engine/access"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// TestSweep deletes the access Secrets whose Backup or Restore is gone or final, and only those.
func TestSweep(t *testing.T) {
	ctx := context.Background()
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(storkv1.AddToScheme(s))
	old := metav1.NewTime(time.Now().Add(-time.Hour))
	secret := func(name string, created metav1.Time, labels map[string]string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "stork-system", Name: name, CreationTimestamp: created, Labels: labels}}
	}
	forBackup := func(name string) map[string]string {
		return map[string]string{access.LabelFor: "app", "stork.dev/backup": name, "stork.dev/backup-namespace": "app"}
	}
	forRestore := func(name string) map[string]string {
		return map[string]string{access.LabelFor: "app", "stork.dev/restore": name, "stork.dev/restore-namespace": "app"}
	}
	objs := []client.Object{
		&storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "done"}, Status: storkv1.BackupStatus{Phase: storkv1.BackupCompleted}},
		&storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "copying"}, Status: storkv1.BackupStatus{Phase: storkv1.BackupInProgress}},
		&storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "running"}, Status: storkv1.RestoreStatus{Phase: storkv1.RestoreInProgress}},
		secret("of-done-backup", old, forBackup("done")),
		secret("of-copying-backup", old, forBackup("copying")),
		secret("of-gone-backup", old, forBackup("gone")),
		secret("of-running-restore", old, forRestore("running")),
		secret("of-deleted-restore", old, forRestore("deleted")),
		secret("young", metav1.Now(), forRestore("not-visible-yet")),
		secret("someone-elses", old, map[string]string{"app": "x"}),
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
	sw := &AccessSweeper{Client: c, Reader: c, Namespace: "stork-system"}
	n, err := sw.Sweep(ctx, time.Minute)
	if err != nil || n != 3 {
		t.Fatalf("swept %d, %v; want 3", n, err)
	}
	var left corev1.SecretList
	if err := c.List(ctx, &left); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, sec := range left.Items {
		got[sec.Name] = true
	}
	for name, want := range map[string]bool{"of-done-backup": false, "of-gone-backup": false, "of-deleted-restore": false,
		"of-copying-backup": true, "of-running-restore": true, "young": true, "someone-elses": true} {
		if got[name] != want {
			t.Errorf("Secret %s left: %v, want %v", name, got[name], want)
		}
	}
}
