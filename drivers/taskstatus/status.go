package taskstatus

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/transfer"
	"stork.dev/stork/internal/crashpoint"
)

// Crash points (see internal/crashpoint), followed by the task's type: a task marked Running
// before any work, and a task whose work is done but whose result is not written yet.
const (
	CrashStarted   = "started/"
	CrashFinishing = "finishing/"
)

// Start marks the task Running as attempt `attempt`, done by `who`, with msg in its Progressing
// condition. The patch is optimistically locked: of two processes that both think the task is
// theirs (an old one not quite dead), one starts it.
func Start(ctx context.Context, c client.Client, task *storkv1.VolumeTask, attempt int32, who, msg string) error {
	orig := task.DeepCopy()
	st := &task.Status
	st.Phase, st.Attempts, st.AgentID, st.ObservedGeneration = storkv1.TaskRunning, attempt, who, task.Generation
	if st.StartTime == nil {
		now := metav1.Now()
		st.StartTime = &now
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: storkv1.ConditionProgressing, Status: metav1.ConditionTrue,
		Reason: "Running", Message: msg, ObservedGeneration: task.Generation})
	if err := c.Status().Patch(ctx, task, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("marking task %s/%s running: %w", task.Namespace, task.Name, err)
	}
	crashpoint.Here(CrashStarted + string(task.Spec.Type))
	return nil
}

// ReportProgress writes the latest progress to the task's status every second until the
// returned function is called.
func ReportProgress(ctx context.Context, c client.Client, task *storkv1.VolumeTask, latest *atomic.Pointer[storkv1.Progress]) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var last storkv1.Progress
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			cur := latest.Load()
			if cur == nil || *cur == last {
				continue
			}
			p := *cur
			body, _ := json.Marshal(map[string]any{"status": map[string]any{"progress": p}})
			obj := &storkv1.VolumeTask{ObjectMeta: metav1.ObjectMeta{Namespace: task.Namespace, Name: task.Name}}
			if err := c.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, body)); err == nil {
				last = p
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// Result is what a finished task reports.
type Result struct {
	SnapshotID           string
	RepositorySnapshotID string
	Path                 string
	Size                 int64
	// Verification of a Download that asked for it.
	Verification *storkv1.Verification
	// Progress is the last the work reported.
	Progress storkv1.Progress
}

// Finish writes a task's final status: Succeeded with res, or Failed with err's reason
// (transfer.ReasonOf) and message.
func Finish(ctx context.Context, c client.Client, task *storkv1.VolumeTask, res Result, err error, who string) error {
	orig := task.DeepCopy()
	now := metav1.Now()
	st := &task.Status
	st.CompletionTime = &now
	cond := metav1.Condition{Type: storkv1.ConditionReady, ObservedGeneration: task.Generation}
	if err != nil {
		reason := transfer.ReasonOf(err, "Failed")
		st.Phase, st.Reason, st.Message = storkv1.TaskFailed, reason, err.Error()
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, reason, err.Error()
	} else {
		st.Phase, st.SnapshotID, st.Path, st.SizeBytes = storkv1.TaskSucceeded, res.SnapshotID, res.Path, res.Size
		st.RepositorySnapshotID, st.Verification = res.RepositorySnapshotID, res.Verification
		st.Progress = res.Progress
		st.Progress.BytesDone, st.Progress.BytesTotal = res.Size, res.Size
		st.Progress.ItemsDone = st.Progress.ItemsTotal
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, "Succeeded", "done by "+who
		crashpoint.Here(CrashFinishing + string(task.Spec.Type))
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: storkv1.ConditionProgressing, Status: metav1.ConditionFalse,
		Reason: cond.Reason, Message: "finished", ObservedGeneration: task.Generation})
	if perr := c.Status().Patch(ctx, task, client.MergeFrom(orig)); perr != nil {
		return fmt.Errorf("writing the result of task %s/%s: %w", task.Namespace, task.Name, perr)
	}
	return nil
}

// VolumePhase is the phase of a volume's work whose task is in phase p (a task not taken yet
// is Pending).
func VolumePhase(p storkv1.VolumeTaskPhase) storkv1.VolumePhase {
	switch p {
	case storkv1.TaskSucceeded:
		return storkv1.VolumeSucceeded
	case storkv1.TaskFailed:
		return storkv1.VolumeFailed
	case storkv1.TaskRunning:
		return storkv1.VolumeInProgress
	}
	return storkv1.VolumePending
}
