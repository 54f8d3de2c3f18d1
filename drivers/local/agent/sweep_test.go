package agent

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// TestSweepRemovesLeftoversOfGoneTasks: snapshots, work directories and restored marks of tasks
// that are gone are removed once older than the grace; those of live tasks, recent ones,
// restored volumes and names of another form stay.
func TestSweepRemovesLeftoversOfGoneTasks(t *testing.T) {
	const (
		liveUID = "11111111-2222-3333-4444-555555555555"
		goneUID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
		newUID  = "99999999-8888-7777-6666-555555555555"
	)
	root := Root(t.TempDir())
	old := time.Now().Add(-2 * time.Hour)
	mk := func(p string, age time.Time) {
		t.Helper()
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "f"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, age, age); err != nil {
			t.Fatal(err)
		}
	}
	mk(root.snapshot("pv-a-"+liveUID), old)
	mk(root.snapshot("pv-a-"+goneUID), old)
	mk(root.snapshot("pv-b-"+newUID), time.Now()) // too recent to judge
	mk(root.snapshot("hand-made"), old)           // not a task's
	mk(root.work(goneUID), old)
	mk(root.work(liveUID), old)
	mk(root.restoredMark(goneUID), old)
	mk(root.volume("stork-restore-1"), old)

	s := runtime.NewScheme()
	if err := storkv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	sn := &storkv1.StorageNode{ObjectMeta: metav1.ObjectMeta{Name: StorageNodeName(DriverName, "n1")}}
	task := &storkv1.VolumeTask{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "t", UID: types.UID(liveUID),
		Labels: map[string]string{storkv1.LabelTaskNode: "n1", storkv1.LabelTaskDriver: DriverName}}}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(sn, task).Build()
	rec := events.NewFakeRecorder(10)
	sw := &Sweeper{Client: c, Recorder: rec, Log: logr.Discard(), Node: "n1", Root: root}
	removed, err := sw.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".stork/restored/" + goneUID, ".stork/snapshots/pv-a-" + goneUID, ".stork/work/" + goneUID}
	if !reflect.DeepEqual(removed, want) {
		t.Fatalf("removed %v, want %v", removed, want)
	}
	for _, p := range []string{root.snapshot("pv-a-" + liveUID), root.snapshot("pv-b-" + newUID), root.snapshot("hand-made"), root.work(liveUID), root.volume("stork-restore-1")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	select {
	case e := <-rec.Events:
		if !strings.Contains(e, EventOrphansRemoved) || !strings.Contains(e, "pv-a-"+goneUID) {
			t.Errorf("Event %q", e)
		}
	default:
		t.Error("no Event")
	}
}
