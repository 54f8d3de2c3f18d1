package mover

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/access"
	"stork.dev/stork/backup/engine/archive"
	"stork.dev/stork/backup/engine/transfer"
	"stork.dev/stork/drivers/taskstatus"
)

// Verbs of the mover.
const (
	Backup  = "backup"
	Restore = "restore"
)

// Options are one run's.
type Options struct {
	// Client reads the task and writes its status; it should not cache.
	Client client.Client
	Log    logr.Logger
	// Verb is Backup or Restore.
	Verb string
	// Task is the VolumeTask to do.
	Task types.NamespacedName
	// VolumeDir is where the volume is mounted; AccessDir where the access Secret is.
	VolumeDir, AccessDir string
	// Who names this process in the task's status (the pod's name).
	Who string
}

// lostAndFound is what file systems such as ext4 keep at their root, readable by root only.
const lostAndFound = "lost+found"

// Run does the task and records the result in its status. It returns the task's failure, so
// that the pod fails too; a task already final is left as it is.
func Run(ctx context.Context, o Options) error {
	task := &storkv1.VolumeTask{}
	if err := o.Client.Get(ctx, o.Task, task); err != nil {
		return fmt.Errorf("reading VolumeTask %s: %w", o.Task, err)
	}
	if task.Status.Phase == storkv1.TaskSucceeded || task.Status.Phase == storkv1.TaskFailed {
		o.Log.Info("the task is already finished", "task", o.Task, "phase", task.Status.Phase)
		return nil
	}
	want := map[string]storkv1.VolumeTaskType{Backup: storkv1.TaskUpload, Restore: storkv1.TaskDownload}[o.Verb]
	if want == "" || task.Spec.Type != want {
		return fmt.Errorf("VolumeTask %s is a %s task, which `mover %s` does not do", o.Task, task.Spec.Type, o.Verb)
	}
	who := "mover pod " + o.Who
	if err := taskstatus.Start(ctx, o.Client, task, task.Status.Attempts, who, "started by "+who); err != nil {
		return err
	}
	o.Log.Info("started", "task", o.Task, "verb", o.Verb, "attempt", task.Status.Attempts)
	var progress atomic.Pointer[storkv1.Progress]
	stop := taskstatus.ReportProgress(ctx, o.Client, task, &progress)
	res, err := do(ctx, o, task, func(p storkv1.Progress) { progress.Store(&p) })
	stop()
	if p := progress.Load(); p != nil {
		res.Progress = *p
	}
	if err != nil && ctx.Err() != nil {
		// Stopped (the pod is being deleted): the task stays Running, and the controller
		// starts another pod or gives up.
		return fmt.Errorf("stopped: %w", err)
	}
	if ferr := taskstatus.Finish(ctx, o.Client, task, res, err, who); ferr != nil {
		return errors.Join(err, ferr)
	}
	if err != nil {
		return err
	}
	o.Log.Info("finished", "task", o.Task, "bytes", res.Size, "backup", res.RepositorySnapshotID)
	return nil
}

func do(ctx context.Context, o Options, task *storkv1.VolumeTask, progress func(storkv1.Progress)) (taskstatus.Result, error) {
	access, err := readAccess(o.AccessDir)
	if err != nil {
		return taskstatus.Result{}, transfer.Fail("InvalidAccess", "the access Secret %s mounted at %s: %w", task.Spec.AccessSecretName, o.AccessDir, err)
	}
	if fi, err := os.Stat(o.VolumeDir); err != nil || !fi.IsDir() {
		return taskstatus.Result{}, transfer.Fail("VolumeNotMounted", "the volume is not mounted at %s: %v", o.VolumeDir, err)
	}
	var pre *archive.Prescan
	if o.Verb == Backup {
		// Listed while the repository opens (its key derivation takes a core for a while).
		pre = archive.StartPrescan(ctx, o.VolumeDir)
		defer pre.Stop()
	}
	r, err := transfer.Open(ctx, access, "") // a fresh pod each time: nothing to keep
	if err != nil {
		return taskstatus.Result{}, err
	}
	defer r.Close()
	if o.Verb == Backup {
		id, size, err := transfer.Upload(ctx, r, o.VolumeDir, transfer.UploadOptions{Tags: task.Spec.Tags,
			Exclude: func(rel string) bool { return rel == lostAndFound }, StrictChangeDetection: task.Spec.StrictChangeDetection, Progress: progress, Prescan: pre})
		return taskstatus.Result{SnapshotID: task.Spec.SnapshotID, RepositorySnapshotID: id, Size: size}, err
	}
	// A fresh volume, but perhaps with what an earlier attempt wrote: the restore starts from
	// an empty volume (the file system's own lost+found stays).
	if err := emptyDir(o.VolumeDir); err != nil {
		return taskstatus.Result{}, transfer.Fail("IOError", "emptying the volume at %s before restoring: %w", o.VolumeDir, err)
	}
	size, verified, err := transfer.Download(ctx, r, task.Spec.RepositorySnapshotID, o.VolumeDir,
		transfer.DownloadOptions{Verify: task.Spec.Verify, Paths: task.Spec.Paths, Ignore: []string{lostAndFound}, Progress: progress})
	return taskstatus.Result{Size: size, Verification: verified}, err
}

// readAccess reads an access Secret mounted as files (one per key).
func readAccess(dir string) (access.Access, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return access.Access{}, err
	}
	data := map[string][]byte{}
	for _, e := range entries {
		// A Secret volume's keys are symlinks into a ..data directory that kubelet swaps
		// atomically; the ..-prefixed entries are that machinery, not keys.
		if e.Name()[0] == '.' {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return access.Access{}, err
		}
		data[e.Name()] = b
	}
	return access.ParseSecret(data)
}

// emptyDir removes everything in dir except lost+found.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == lostAndFound {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
