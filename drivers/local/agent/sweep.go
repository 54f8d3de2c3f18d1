package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// EventOrphansRemoved is the reason of the Event a sweep that removed something records on the
// node's StorageNode.
const EventOrphansRemoved = "OrphansRemoved"

// Sweeper removes from the node's storage what this agent's tasks made and nothing refers to
// any more, once it is older than Grace:
//
//   - a snapshot (.stork/snapshots/<volume>-<task UID>) whose Snapshot task is gone: its
//     Snapshot was deleted without the snapshot being deleted (a finalizer removed by hand, a
//     controller that was down), or the capture finished after its Snapshot went;
//   - a work directory or a restored mark (.stork/work/<task UID>, .stork/restored/<task UID>)
//     whose task is gone: an agent killed mid-task, a task deleted while it was being done.
//
// Restored volumes (volumes/) are left alone: one whose PersistentVolume was deleted with the
// Retain policy is data its owner chose to keep.
type Sweeper struct {
	// Client lists this node's VolumeTasks (the agent's cache holds only them) and reads the
	// node's StorageNode for Events.
	Client   client.Client
	Recorder events.EventRecorder
	Log      logr.Logger
	Node     string
	Root     Root
	// Every is the time between sweeps (default 10m); Grace the age below which nothing is
	// judged (default 1h), so that what a task is making now is never taken for a leftover.
	Every, Grace time.Duration
	// Now is the clock: time.Now when nil.
	Now func() time.Time
}

// NeedLeaderElection is false: every agent sweeps its own node.
func (s *Sweeper) NeedLeaderElection() bool { return false }

// Start sweeps every Every until ctx ends.
func (s *Sweeper) Start(ctx context.Context) error {
	every := s.Every
	if every <= 0 {
		every = 10 * time.Minute
	}
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if _, err := s.Sweep(ctx); err != nil {
			s.Log.Error(err, "sweeping the node's storage for leftovers")
		}
	}, every)
	return nil
}

// Sweep removes the leftovers and returns what it removed (paths relative to the root).
func (s *Sweeper) Sweep(ctx context.Context) ([]string, error) {
	var tasks storkv1.VolumeTaskList
	if err := s.Client.List(ctx, &tasks, client.MatchingLabels{storkv1.LabelTaskNode: s.Node, storkv1.LabelTaskDriver: DriverName}); err != nil {
		return nil, fmt.Errorf("listing the node's VolumeTasks: %w", err)
	}
	live := map[string]bool{}
	for _, t := range tasks.Items {
		live[string(t.UID)] = true
	}
	now, grace := time.Now(), s.Grace
	if s.Now != nil {
		now = s.Now()
	}
	if grace <= 0 {
		grace = time.Hour
	}
	var removed []string
	for _, dir := range []struct {
		path string
		// owner is the UID of the task an entry belongs to ("" when the name says none).
		owner func(name string) string
	}{
		{s.Root.snapshots(), snapshotTaskUID},
		{filepath.Dir(s.Root.work("x")), func(name string) string { return name }},
		{filepath.Dir(s.Root.restoredMark("x")), func(name string) string { return name }},
	} {
		entries, err := os.ReadDir(dir.path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return removed, fmt.Errorf("reading %s: %w", dir.path, err)
		}
		for _, e := range entries {
			uid := dir.owner(e.Name())
			info, err := e.Info()
			if uid == "" || live[uid] || err != nil || now.Sub(info.ModTime()) < grace || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			p := filepath.Join(dir.path, e.Name())
			if err := os.RemoveAll(p); err != nil {
				return removed, fmt.Errorf("removing leftover %s: %w", p, err)
			}
			rel, _ := filepath.Rel(string(s.Root), p)
			removed = append(removed, rel)
		}
	}
	if len(removed) > 0 {
		slices.Sort(removed)
		msg := fmt.Sprintf("removed %d leftovers of tasks that are gone: %s", len(removed), strings.Join(removed, ", "))
		s.Log.Info(msg)
		sn := &storkv1.StorageNode{}
		if s.Recorder != nil && s.Client.Get(ctx, client.ObjectKey{Name: StorageNodeName(DriverName, s.Node)}, sn) == nil {
			s.Recorder.Eventf(sn, nil, corev1.EventTypeNormal, EventOrphansRemoved, "Sweep", "%s", msg)
		}
	}
	return removed, nil
}

// snapshotTaskUID is the UID of the Snapshot task a snapshot directory was made by
// (SnapshotID: <volume>-<task UID>), or "" when the name is not of that form.
func snapshotTaskUID(name string) string {
	const uidLen = 36 // 8-4-4-4-12
	if len(name) <= uidLen+1 || name[len(name)-uidLen-1] != '-' {
		return ""
	}
	uid := name[len(name)-uidLen:]
	for i, c := range uid {
		dash := i == 8 || i == 13 || i == 18 || i == 23
		if dash != (c == '-') || (!dash && !strings.ContainsRune("0123456789abcdef", c)) {
			return ""
		}
	}
	return uid
}
