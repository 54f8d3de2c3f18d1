package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/access"
	"stork.dev/stork/backup/engine/archive"
	"stork.dev/stork/backup/engine/repo"
	"stork.dev/stork/backup/engine/transfer"
	"stork.dev/stork/drivers/local/fscopy"
	"stork.dev/stork/drivers/taskstatus"
)

// DriverName is the local driver's name, in VolumeTasks and StorageNodes.
const DriverName = "local"

// Tasks does the VolumeTasks of one node. A task is done inside Reconcile (up to Workers at
// once), with its progress written to status every second; its result is written once it is
// final. A task found Running that this process is not running was interrupted (the agent
// restarted): it is started again, and fails after MaxAttempts starts.
type Tasks struct {
	Client client.Client
	// Reader reads a task before it is started. Give it an uncached reader (the manager's
	// APIReader): a cache that has not seen a task's result yet would make a finished task
	// look interrupted. Defaults to Client.
	Reader client.Reader
	Log    logr.Logger
	// Node whose tasks these are, and its storage root.
	Node string
	Root Root
	// AgentID identifies this agent process in task status.
	AgentID string
	// MaxAttempts bounds how often a task is started (default 3).
	MaxAttempts int32
	// Workers is how many tasks run at once (default 2).
	Workers int
	// BytesPerSecond limits each copy's bandwidth (0: unlimited).
	BytesPerSecond int64
	// IOErrors, if set, is told about I/O errors the work meets (for the IOErrors condition).
	IOErrors *ErrorLog
	// Namespace is Stork's namespace, where the access Secrets of Upload and Download tasks are.
	Namespace string

	running sync.Map // task UID → *runningTask
	// snapLocks serialises the tasks that read or remove one snapshot (by ID → *sync.Mutex):
	// a restore must not copy a snapshot that a deletion is removing under it.
	snapLocks sync.Map
}

func (t *Tasks) reader() client.Reader {
	if t.Reader != nil {
		return t.Reader
	}
	return t.Client
}

func (t *Tasks) lockSnapshot(id string) func() {
	m, _ := t.snapLocks.LoadOrStore(id, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// SetupWithManager registers the task controller. The manager's cache should hold only this
// node's tasks (see TaskCacheSelector); the predicate checks again.
func (t *Tasks) SetupWithManager(mgr ctrl.Manager) error {
	if t.MaxAttempts == 0 {
		t.MaxAttempts = 3
	}
	if t.Workers == 0 {
		t.Workers = 2
	}
	mine := predicate.NewPredicateFuncs(func(o client.Object) bool {
		vt, ok := o.(*storkv1.VolumeTask)
		return ok && vt.Spec.NodeName == t.Node && vt.Spec.Driver == DriverName
	})
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("local-volumetasks").
		For(&storkv1.VolumeTask{}, builder.WithPredicates(mine)).
		WithOptions(controller.Options{MaxConcurrentReconciles: t.Workers}).
		Complete(t); err != nil {
		return err
	}
	// Deletions go to a controller of their own: the reconcile doing a task holds the task's
	// key, so the controller above would see its deletion only once the work is over.
	deleted := predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		UpdateFunc:  func(e event.UpdateEvent) bool { return e.ObjectNew.GetDeletionTimestamp() != nil },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("local-volumetask-cancel").
		For(&storkv1.VolumeTask{}, builder.WithPredicates(mine, deleted)).
		Complete(reconcile.Func(func(_ context.Context, req ctrl.Request) (ctrl.Result, error) {
			t.Cancel(req.NamespacedName)
			return ctrl.Result{}, nil
		}))
}

// errTaskDeleted cancels the work of a task that was deleted.
var errTaskDeleted = errors.New("the task was deleted")

// Cancel stops the work of the task key if this agent is doing it: its temporaries are removed
// and nothing is reported (the task is gone, or going). The owner of a task (a Backup or
// Restore) deletes it to cancel it.
func (t *Tasks) Cancel(key types.NamespacedName) {
	t.running.Range(func(_, v any) bool {
		if r := v.(*runningTask); r.key == key {
			r.cancel(errTaskDeleted)
		}
		return true
	})
}

// runningTask is a task this agent is doing.
type runningTask struct {
	key    types.NamespacedName
	cancel context.CancelCauseFunc
	// volume is the task's spec.volumeName; makes says the task makes that volume.
	volume string
	makes  bool
}

// makesVolume says whether a task makes a new volume (volumes/<spec.volumeName>).
func makesVolume(task *storkv1.VolumeTask) bool {
	return task.Spec.Type == storkv1.TaskRestore || task.Spec.Type == storkv1.TaskDownload
}

// stillMade names, for a DeleteVolume task, a task of this node that still makes its volume:
// one that exists (the controller deletes them first) or one still running here (deleted, and
// stopping). "" for other tasks, and when none does.
func (t *Tasks) stillMade(ctx context.Context, task *storkv1.VolumeTask) string {
	if task.Spec.Type != storkv1.TaskDeleteVolume {
		return ""
	}
	maker := ""
	t.running.Range(func(_, v any) bool {
		if r := v.(*runningTask); r.makes && r.volume == task.Spec.VolumeName {
			maker = r.key.String()
		}
		return maker == ""
	})
	if maker != "" {
		return maker
	}
	var tasks storkv1.VolumeTaskList
	if err := t.Client.List(ctx, &tasks, client.MatchingLabels{storkv1.LabelTaskNode: t.Node, storkv1.LabelTaskDriver: DriverName}); err != nil {
		return "(listing tasks: " + err.Error() + ")"
	}
	for i := range tasks.Items {
		if o := &tasks.Items[i]; makesVolume(o) && o.Spec.VolumeName == task.Spec.VolumeName && o.DeletionTimestamp == nil {
			return o.Namespace + "/" + o.Name
		}
	}
	return ""
}

// restoredPrefix begins the names of the volumes Restore and Download tasks make (the local
// driver's PersistentVolume names): the only volumes a DeleteVolume task removes.
const restoredPrefix = "stork-restore-"

// deleteVolume removes volumes/<spec.volumeName>, a restored volume that was never handed over,
// with the restored marks naming it. Deleting a volume that is not there is done.
func (t *Tasks) deleteVolume(task *storkv1.VolumeTask) (result, error) {
	name := task.Spec.VolumeName
	if err := validName("volume name", name); err != nil {
		return result{}, fail("InvalidTask", "%w", err)
	}
	if !strings.HasPrefix(name, restoredPrefix) {
		return result{}, fail("NotRestored", "volume %s was not made by a restore (%s…): only those are deleted", name, restoredPrefix)
	}
	dst := t.Root.volume(name)
	if err := os.RemoveAll(dst); err != nil {
		return result{}, fail("IOError", "removing volume %s: %w", dst, err)
	}
	marks, _ := os.ReadDir(t.Root.restoredMark(""))
	for _, m := range marks {
		if data, err := os.ReadFile(t.Root.restoredMark(m.Name())); err == nil && strings.TrimSpace(string(data)) == name {
			_ = os.Remove(t.Root.restoredMark(m.Name()))
		}
	}
	return result{path: dst}, nil
}

// fail is a task failure with a reason for status.
func fail(reason string, format string, args ...any) error {
	return transfer.Fail(reason, format, args...)
}

// result is what a finished task reports.
type result struct {
	snapshotID           string
	repositorySnapshotID string
	path                 string
	size                 int64
	verification         *storkv1.Verification
	// progress is the last the work reported.
	progress storkv1.Progress
}

func (t *Tasks) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	task := &storkv1.VolumeTask{}
	if err := t.reader().Get(ctx, req.NamespacedName, task); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if task.Spec.NodeName != t.Node || task.Spec.Driver != DriverName || task.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	switch task.Status.Phase {
	case storkv1.TaskSucceeded, storkv1.TaskFailed:
		return ctrl.Result{}, nil
	}
	uid := string(task.UID)
	work, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if maker := t.stillMade(ctx, task); maker != "" {
		// Deleted by the controller to stop it, but not gone or not stopped yet.
		t.Log.V(1).Info("waiting for the task that makes the volume to stop", "task", req.NamespacedName, "maker", maker)
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	if _, busy := t.running.LoadOrStore(uid, &runningTask{key: req.NamespacedName, cancel: cancel, volume: task.Spec.VolumeName, makes: makesVolume(task)}); busy {
		return ctrl.Result{}, nil
	}
	defer t.running.Delete(uid)
	log := t.Log.WithValues("task", req.NamespacedName, "type", task.Spec.Type, "volume", task.Spec.VolumeName)

	attempts := task.Status.Attempts + 1
	if task.Status.Phase == storkv1.TaskRunning && attempts > t.MaxAttempts {
		if res, ok := t.published(ctx, task); ok {
			return ctrl.Result{}, t.finish(ctx, task, res, nil) // the last attempt got there
		}
		_ = os.RemoveAll(t.Root.work(uid))
		msg := fmt.Sprintf("the task was interrupted %d times (last run by agent %s) and is not started again", task.Status.Attempts, task.Status.AgentID)
		return ctrl.Result{}, t.finish(ctx, task, result{}, &transfer.Error{Reason: "TooManyAttempts", Err: errors.New(msg)})
	}
	msg := "started"
	if attempts > 1 {
		msg = fmt.Sprintf("started again (attempt %d of %d) after the agent that ran it stopped", attempts, t.MaxAttempts)
	}
	if err := taskstatus.Start(ctx, t.Client, task, attempts, t.AgentID, msg); err != nil {
		return ctrl.Result{}, err
	}
	log.Info("task started", "attempt", attempts)

	var progress atomic.Pointer[storkv1.Progress]
	stop := taskstatus.ReportProgress(ctx, t.Client, task, &progress)
	res, err := t.do(work, task, func(p storkv1.Progress) { progress.Store(&p) })
	stop()
	if p := progress.Load(); p != nil {
		res.progress = *p
	}
	if errors.Is(context.Cause(work), errTaskDeleted) {
		_ = os.RemoveAll(t.Root.work(uid))
		log.Info("task cancelled: it was deleted while running")
		return ctrl.Result{}, nil
	}
	if err != nil && ctx.Err() != nil {
		// The agent is stopping: the task stays Running and the next agent starts it again.
		log.Info("task interrupted by shutdown")
		return ctrl.Result{}, nil
	}
	if err != nil {
		log.Error(err, "task failed")
		if t.IOErrors != nil && errors.Is(err, syscall.EIO) {
			t.IOErrors.Add(err)
		}
	} else {
		log.Info("task succeeded", "snapshotID", res.snapshotID, "path", res.path, "bytes", res.size)
	}
	return ctrl.Result{}, t.finish(ctx, task, res, err)
}

// finish writes a task's final status.
func (t *Tasks) finish(ctx context.Context, task *storkv1.VolumeTask, res result, err error) error {
	return taskstatus.Finish(ctx, t.Client, task, taskstatus.Result{SnapshotID: res.snapshotID, RepositorySnapshotID: res.repositorySnapshotID,
		Path: res.path, Size: res.size, Verification: res.verification, Progress: res.progress}, err, "agent "+t.AgentID)
}

// do the work of a task. Progress counts bytes, and files for uploads and downloads.
func (t *Tasks) do(ctx context.Context, task *storkv1.VolumeTask, progress func(storkv1.Progress)) (result, error) {
	uid := string(task.UID)
	copyOpts := fscopy.Options{BytesPerSecond: t.BytesPerSecond,
		Progress: func(done, total int64) { progress(storkv1.Progress{BytesDone: done, BytesTotal: total}) }}
	switch task.Spec.Type {
	case storkv1.TaskSnapshot:
		return t.snapshot(ctx, task, uid, copyOpts)
	case storkv1.TaskDeleteSnapshot:
		return t.deleteSnapshot(task, uid)
	case storkv1.TaskRestore:
		return t.restore(ctx, task, uid, copyOpts)
	case storkv1.TaskUpload:
		return t.upload(ctx, task, progress)
	case storkv1.TaskDownload:
		return t.download(ctx, task, uid, progress)
	case storkv1.TaskDeleteVolume:
		return t.deleteVolume(task)
	default:
		return result{}, fail("Unsupported", "the local driver's agent does not do %s tasks", task.Spec.Type)
	}
}

// SnapshotID names the snapshot a Snapshot task makes: the volume and the task, so that
// retries of one task make one snapshot and two tasks never share one.
func SnapshotID(volume string, taskUID types.UID) string { return volume + "-" + string(taskUID) }

// published returns the result of a task whose work was published by an attempt that stopped
// before reporting it.
func (t *Tasks) published(ctx context.Context, task *storkv1.VolumeTask) (result, bool) {
	switch task.Spec.Type {
	case storkv1.TaskSnapshot:
		id := SnapshotID(task.Spec.VolumeName, task.UID)
		if validName("snapshot ID", id) == nil {
			if size, _, err := fscopy.Usage(ctx, t.Root.snapshot(id)); err == nil {
				return result{snapshotID: id, size: size}, true
			}
		}
	case storkv1.TaskRestore:
		if res, ok := t.publishedVolume(ctx, task); ok {
			res.snapshotID = task.Spec.SnapshotID
			return res, true
		}
	case storkv1.TaskDownload:
		return t.publishedVolume(ctx, task)
	}
	return result{}, false
}

// publishedVolume returns the volume a Restore or Download task published, recognised by the
// task's restored mark (see publishVolume): a volume directory of that name without the mark is
// not this task's.
func (t *Tasks) publishedVolume(ctx context.Context, task *storkv1.VolumeTask) (result, bool) {
	name := task.Spec.VolumeName
	if validName("volume name", name) != nil {
		return result{}, false
	}
	if _, err := os.Stat(t.Root.restoredMark(string(task.UID))); err != nil {
		return result{}, false
	}
	size, _, err := fscopy.Usage(ctx, t.Root.volume(name))
	if err != nil {
		return result{}, false
	}
	return result{path: t.Root.volume(name), size: size}, true
}

func (t *Tasks) snapshot(ctx context.Context, task *storkv1.VolumeTask, uid string, opts fscopy.Options) (result, error) {
	if err := validName("volume name", task.Spec.VolumeName); err != nil {
		return result{}, fail("InvalidTask", "%w", err)
	}
	src, err := t.Root.within(task.Spec.SourcePath)
	if err != nil {
		return result{}, fail("InvalidVolumePath", "%w", err)
	}
	if res, ok := t.published(ctx, task); ok {
		return res, nil
	}
	id := SnapshotID(task.Spec.VolumeName, task.UID)
	final := t.Root.snapshot(id)
	work, err := t.freshWork(uid)
	if err != nil {
		return result{}, err
	}
	stats, err := fscopy.Copy(ctx, src, work, opts)
	if err != nil {
		return result{}, t.copyFailed(work, err)
	}
	if err := publish(work, final); err != nil {
		return result{}, fail("IOError", "%w", err)
	}
	return result{snapshotID: id, size: stats.Bytes}, nil
}

func (t *Tasks) deleteSnapshot(task *storkv1.VolumeTask, uid string) (result, error) {
	id := task.Spec.SnapshotID
	if err := validName("snapshot ID", id); err != nil {
		return result{}, fail("InvalidTask", "%w", err)
	}
	defer t.lockSnapshot(id)()
	final := t.Root.snapshot(id)
	// Renamed out of the snapshots first, so that a half-deleted snapshot is never found; an
	// attempt interrupted after the rename left it in the work directory.
	trash, err := t.freshWork(uid)
	if err != nil {
		return result{}, err
	}
	if _, err := os.Lstat(final); errors.Is(err, os.ErrNotExist) {
		return result{snapshotID: id}, nil
	}
	if err := os.Rename(final, trash); err != nil {
		return result{}, fail("IOError", "deleting snapshot %s: %w", id, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return result{}, fail("IOError", "deleting snapshot %s: %w", id, err)
	}
	return result{snapshotID: id}, nil
}

func (t *Tasks) restore(ctx context.Context, task *storkv1.VolumeTask, uid string, opts fscopy.Options) (result, error) {
	id, name := task.Spec.SnapshotID, task.Spec.VolumeName
	if err := errors.Join(validName("snapshot ID", id), validName("volume name", name)); err != nil {
		return result{}, fail("InvalidTask", "%w", err)
	}
	if res, ok := t.published(ctx, task); ok {
		return res, nil
	}
	defer t.lockSnapshot(id)()
	src := t.Root.snapshot(id)
	if _, err := os.Stat(src); err != nil {
		return result{}, fail("SnapshotNotFound", "snapshot %s is not on node %s: %w", id, t.Node, err)
	}
	if err := t.volumeFree(name); err != nil {
		return result{}, err
	}
	work, err := t.freshWork(uid)
	if err != nil {
		return result{}, err
	}
	stats, err := fscopy.Copy(ctx, src, work, opts)
	if err != nil {
		return result{}, t.copyFailed(work, err)
	}
	dst, err := t.publishVolume(work, uid, name)
	if err != nil {
		return result{}, err
	}
	return result{snapshotID: id, path: dst, size: stats.Bytes}, nil
}

// volumeFree refuses a new volume whose directory exists: a task never takes over (and never
// overwrites) a volume it did not make.
func (t *Tasks) volumeFree(name string) error {
	dst := t.Root.volume(name)
	if _, err := os.Lstat(dst); err == nil {
		return fail("VolumeExists", "volume directory %s already exists on node %s; it is not overwritten", dst, t.Node)
	}
	return nil
}

// publishVolume makes the complete new volume in work visible as volumes/<name>, for the task
// uid, and returns its path. The task's mark is written before the rename: a mark without a
// volume means "make it again", a volume without a mark is someone else's (see publishedVolume).
func (t *Tasks) publishVolume(work, uid, name string) (string, error) {
	dst := t.Root.volume(name)
	if err := os.MkdirAll(t.Root.restoredMark(""), 0o700); err != nil {
		return "", fail("IOError", "%w", err)
	}
	if err := os.WriteFile(t.Root.restoredMark(uid), []byte(name+"\n"), 0o600); err != nil {
		return "", fail("IOError", "%w", err)
	}
	if err := publish(work, dst); err != nil {
		return "", fail("IOError", "%w", err)
	}
	return dst, nil
}

// freshWork returns an empty work path for the task (what an interrupted attempt left there
// is removed).
func (t *Tasks) freshWork(uid string) (string, error) {
	work := t.Root.work(uid)
	if err := os.RemoveAll(work); err != nil {
		return "", fail("IOError", "removing the leftovers of an earlier attempt in %s: %w", work, err)
	}
	if err := os.MkdirAll(t.Root.work(""), 0o700); err != nil {
		return "", fail("IOError", "%w", err)
	}
	return work, nil
}

func (t *Tasks) copyFailed(work string, err error) error {
	return t.workFailed(work, "CopyFailed", err)
}

// workFailed removes what a failed attempt left in work, unless it was stopped (the next
// attempt starts afresh anyway), and names the failure: reason, or IOError for EIO.
func (t *Tasks) workFailed(work, reason string, err error) error {
	if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		_ = os.RemoveAll(work)
	}
	if errors.Is(err, syscall.EIO) {
		reason = "IOError"
	}
	return &transfer.Error{Reason: reason, Err: err}
}

// upload backs a snapshot up into the location named by the task's access Secret, with the
// task's tags (see transfer.Upload).
func (t *Tasks) upload(ctx context.Context, task *storkv1.VolumeTask, progress func(storkv1.Progress)) (result, error) {
	id := task.Spec.SnapshotID
	if err := errors.Join(validName("snapshot ID", id), needsAccess(task)); err != nil {
		return result{}, fail("InvalidTask", "%w", err)
	}
	defer t.lockSnapshot(id)()
	src := t.Root.snapshot(id)
	if _, err := os.Stat(src); err != nil {
		return result{}, fail("SnapshotNotFound", "snapshot %s is not on node %s: %w", id, t.Node, err)
	}
	// Listed while the repository opens (its key derivation takes a core for a while).
	pre := archive.StartPrescan(ctx, src)
	defer pre.Stop()
	r, err := t.openRepository(ctx, task)
	if err != nil {
		return result{}, err
	}
	defer r.Close()
	snapID, size, err := transfer.Upload(ctx, r, src, transfer.UploadOptions{Tags: task.Spec.Tags,
		StrictChangeDetection: task.Spec.StrictChangeDetection, Progress: progress, Prescan: pre})
	if err != nil {
		return result{}, err
	}
	return result{snapshotID: id, repositorySnapshotID: snapID, size: size}, nil
}

// download makes the new volume volumes/<spec.volumeName> from the backup
// spec.repositorySnapshotID in the location named by the task's access Secret. The backup is
// restored into the task's work directory, then published like a Restore task's copy, so that a
// download killed at any moment leaves no partial volume and one that published but did not
// report is recognised (published). An interrupted download starts again from scratch: the
// engine restores a whole tree, and what it wrote is not trusted to be complete.
func (t *Tasks) download(ctx context.Context, task *storkv1.VolumeTask, uid string, progress func(storkv1.Progress)) (result, error) {
	name := task.Spec.VolumeName
	_, idErr := repo.ParseID(task.Spec.RepositorySnapshotID)
	if idErr != nil {
		idErr = fmt.Errorf("spec.repositorySnapshotID: %w", idErr)
	}
	if err := errors.Join(validName("volume name", name), idErr, needsAccess(task)); err != nil {
		return result{}, fail("InvalidTask", "%w", err)
	}
	published, done := t.published(ctx, task)
	if done && !task.Spec.Verify {
		return published, nil
	}
	r, err := t.openRepository(ctx, task)
	if err != nil {
		return result{}, err
	}
	defer r.Close()
	if done {
		// Published by an attempt that stopped before reporting: verify what it published.
		id, _ := repo.ParseID(task.Spec.RepositorySnapshotID)
		published.verification, err = transfer.Verify(ctx, r, id, published.path, nil)
		return published, err
	}
	if err := t.volumeFree(name); err != nil {
		return result{}, err
	}
	work, err := t.freshWork(uid)
	if err != nil {
		return result{}, err
	}
	size, verified, err := transfer.Download(ctx, r, task.Spec.RepositorySnapshotID, work,
		transfer.DownloadOptions{Verify: task.Spec.Verify, Paths: task.Spec.Paths, Progress: progress})
	if err != nil {
		return result{}, t.workFailed(work, transfer.ReasonOf(err, "DownloadFailed"), err)
	}
	dst, err := t.publishVolume(work, uid, name)
	if err != nil {
		return result{}, err
	}
	return result{path: dst, size: size, verification: verified}, nil
}

// needsAccess says what is missing from a task that reaches a backup location.
func needsAccess(task *storkv1.VolumeTask) error {
	if task.Spec.AccessSecretName == "" {
		return fmt.Errorf("a %s task needs spec.accessSecretName", task.Spec.Type)
	}
	return nil
}

// openRepository opens the repository of the location the task's access Secret (in Stork's
// namespace, made by the controller for this task) describes. Failures carry the reason for the
// task's status: what is wrong with the Secret, with the store, or with the repository in it.
// The caller has checked the task names a Secret (needsAccess).
func (t *Tasks) openRepository(ctx context.Context, task *storkv1.VolumeTask) (*transfer.Repo, error) {
	name := task.Spec.AccessSecretName
	secret := &corev1.Secret{}
	if err := t.reader().Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: name}, secret); err != nil {
		return nil, fail("AccessSecretMissing", "reading access Secret %s/%s: %w", t.Namespace, name, err)
	}
	// The controllers make an access Secret for the tasks of one namespace; a task of another
	// namespace naming it is refused, however it came to exist.
	if got := secret.Labels[access.LabelFor]; got != task.Namespace {
		return nil, fail("InvalidTask", "access Secret %s/%s is for the tasks of namespace %q, not %q", t.Namespace, name, got, task.Namespace)
	}
	access, err := access.ParseSecret(secret.Data)
	if err != nil {
		return nil, fail("InvalidTask", "access Secret %s/%s: %w", t.Namespace, name, err)
	}
	return transfer.Open(ctx, access, t.Root.repoCache())
}
