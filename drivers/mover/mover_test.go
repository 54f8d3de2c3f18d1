package mover

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/access"
	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
)

const (
	ns         = "app"
	secretName = "stork-access-1"
)

// newRepo initialises a repository in a new file:// store and returns the access Secret's
// data for it.
func newRepo(t *testing.T) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	url := "file://" + t.TempDir()
	store, err := objstore.Open(ctx, objstore.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	key := repo.UserKey{Raw: bytes.Repeat([]byte{7}, 32)}
	r, err := repo.Init(ctx, store, key, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	return access.SecretData(access.Access{Store: objstore.Config{URL: url}, Key: key})
}

// mountSecret lays data out as kubelet mounts a Secret volume: each key a symlink into a
// ..data symlink to a timestamped directory.
func mountSecret(t *testing.T, data map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	ts := filepath.Join(dir, "..2025_01_01_00_00_00.000000001")
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	for k, v := range data {
		if err := os.WriteFile(filepath.Join(ts, k), v, 0o440); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for k := range data {
		if err := os.Symlink(filepath.Join("..data", k), filepath.Join(dir, k)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// volume is a file system's root: files, a subdirectory, a symlink, an empty directory and a
// lost+found that only root may read.
func volume(t *testing.T) (dir string, size int64, files int64) {
	t.Helper()
	dir = t.TempDir()
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{"data.bin", bytes.Repeat([]byte{0, 1, 2, 3, 'x'}, 20000), 0o640},
		{"run.sh", []byte("#!/bin/sh\necho hi\n"), 0o755},
		{"sub/deeper/f", []byte("hello"), 0o600},
		{"sub/lost+found", []byte("not the file system's"), 0o644},
	} {
		p := filepath.Join(dir, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
		size += int64(len(f.data))
		files++
	}
	if err := os.Mkdir(filepath.Join(dir, "empty"), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/deeper/f", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	lf := filepath.Join(dir, lostAndFound)
	if err := os.Mkdir(lf, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lf, "#12345"), []byte("orphan"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(lf, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(lf, 0o700) })
	return dir, size, files
}

// tree lists the entries under root (but not root/lost+found), with their modes, contents and
// link targets.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == lostAndFound {
			return filepath.SkipDir
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := info.Mode().String()
		switch {
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += " " + string(b)
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		}
		if rel != "." {
			out[rel] = desc
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(storkv1.AddToScheme(s))
	return s
}

func newTask(name string, typ storkv1.VolumeTaskType, spec storkv1.VolumeTaskSpec) *storkv1.VolumeTask {
	spec.Type, spec.Driver, spec.BackupLocation, spec.AccessSecretName = typ, "csi", "loc", secretName
	if spec.VolumeName == "" {
		spec.VolumeName = "pv-1"
	}
	return &storkv1.VolumeTask{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name)}, Spec: spec,
		Status: storkv1.VolumeTaskStatus{Attempts: 2}}
}

func newClient(objs ...client.Object) client.WithWatch {
	return fake.NewClientBuilder().WithScheme(scheme()).WithObjects(objs...).WithStatusSubresource(&storkv1.VolumeTask{}).Build()
}

func run(c client.Client, verb, task, volumeDir, accessDir string) error {
	return Run(context.Background(), Options{Client: c, Log: logr.Discard(), Verb: verb, Task: types.NamespacedName{Namespace: ns, Name: task},
		VolumeDir: volumeDir, AccessDir: accessDir, Who: "pod-" + task})
}

func getTask(t *testing.T, c client.Client, name string) *storkv1.VolumeTask {
	t.Helper()
	tk := &storkv1.VolumeTask{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, tk); err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestBackupThenRestore(t *testing.T) {
	access := mountSecret(t, newRepo(t))
	src, size, files := volume(t)
	up := newTask("up", storkv1.TaskUpload, storkv1.VolumeTaskSpec{SnapshotID: "snap-1", Tags: map[string]string{"cluster": "c", "namespace": ns, "pvc": "db"}})
	c := newClient(up)

	if err := run(c, Backup, "up", src, access); err != nil {
		t.Fatal(err)
	}
	st := getTask(t, c, "up").Status
	if st.Phase != storkv1.TaskSucceeded || st.RepositorySnapshotID == "" || st.SnapshotID != "snap-1" || st.SizeBytes != size ||
		st.Progress.BytesDone != size || st.Progress.BytesTotal != size || st.Progress.ItemsTotal != files || st.Progress.ItemsDone != files ||
		st.Attempts != 2 || st.AgentID != "mover pod pod-up" || st.StartTime == nil || st.CompletionTime == nil {
		t.Fatalf("upload status %+v", st)
	}
	if c := meta.FindStatusCondition(st.Conditions, storkv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("conditions %+v", st.Conditions)
	}
	if _, err := repo.ParseID(st.RepositorySnapshotID); err != nil {
		t.Errorf("repository snapshot ID: %v", err)
	}

	// Restore into a fresh volume with its own lost+found and what an earlier attempt left.
	dst := t.TempDir()
	if err := os.Mkdir(filepath.Join(dst, lostAndFound), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, lostAndFound, "keep"), []byte("fs"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dst, "partial", "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "data.bin"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Verified: the file system's lost+found at the root is not a difference.
	down := newTask("down", storkv1.TaskDownload, storkv1.VolumeTaskSpec{RepositorySnapshotID: st.RepositorySnapshotID, Verify: true})
	if err := c.Create(context.Background(), down); err != nil {
		t.Fatal(err)
	}
	if err := run(c, Restore, "down", dst, access); err != nil {
		t.Fatal(err)
	}
	ds := getTask(t, c, "down").Status
	if ds.Phase != storkv1.TaskSucceeded || ds.SizeBytes != size || ds.Progress.BytesDone != size || ds.Progress.ItemsDone != files ||
		ds.Verification == nil || ds.Verification.Files != files || ds.Verification.Bytes != size {
		t.Fatalf("download status %+v, verification %+v", ds, ds.Verification)
	}
	want, got := tree(t, src), tree(t, dst)
	for rel, w := range want {
		if got[rel] != w {
			t.Errorf("%s: restored %q, want %q", rel, got[rel], w)
		}
	}
	for rel := range got {
		if _, ok := want[rel]; !ok {
			t.Errorf("%s is in the restored volume, not in the source", rel)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dst, lostAndFound, "keep")); err != nil || string(b) != "fs" {
		t.Errorf("the volume's own lost+found was not kept: %q, %v", b, err)
	}

	// The backup has no lost+found: a restore into an empty directory makes none.
	empty := t.TempDir()
	down2 := newTask("down2", storkv1.TaskDownload, storkv1.VolumeTaskSpec{RepositorySnapshotID: st.RepositorySnapshotID})
	if err := c.Create(context.Background(), down2); err != nil {
		t.Fatal(err)
	}
	if err := run(c, Restore, "down2", empty, access); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(empty, lostAndFound)); !os.IsNotExist(err) {
		t.Errorf("lost+found was backed up: %v", err)
	}
	if _, err := os.Stat(filepath.Join(empty, "sub", "lost+found")); err != nil {
		t.Errorf("a lost+found below the root was left out: %v", err)
	}
}

func TestRunFailures(t *testing.T) {
	data := newRepo(t)
	access := mountSecret(t, data)
	noURL := map[string][]byte{}
	for k, v := range data {
		if k != "url" {
			noURL[k] = v
		}
	}
	badKey := map[string][]byte{}
	for k, v := range data {
		badKey[k] = v
	}
	badKey["rawKey"] = bytes.Repeat([]byte{8}, 32)
	src, _, _ := volume(t)
	missingID := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name      string
		verb      string
		task      *storkv1.VolumeTask
		volumeDir string
		accessDir string
		reason    string // "" when the task is left as it was
		msg       string
	}{
		{"restore verb for an upload", Restore, newTask("t", storkv1.TaskUpload, storkv1.VolumeTaskSpec{SnapshotID: "s"}), src, access, "", "Upload"},
		{"backup verb for a download", Backup, newTask("t", storkv1.TaskDownload, storkv1.VolumeTaskSpec{RepositorySnapshotID: missingID}), src, access, "", "Download"},
		{"unknown verb", "copy", newTask("t", storkv1.TaskUpload, storkv1.VolumeTaskSpec{SnapshotID: "s"}), src, access, "", "copy"},
		{"snapshot task", Backup, newTask("t", storkv1.TaskSnapshot, storkv1.VolumeTaskSpec{}), src, access, "", "Snapshot"},
		{"missing access dir", Backup, newTask("t", storkv1.TaskUpload, storkv1.VolumeTaskSpec{SnapshotID: "s"}), src, filepath.Join(t.TempDir(), "nope"),
			"InvalidAccess", secretName},
		{"access without a URL", Backup, newTask("t", storkv1.TaskUpload, storkv1.VolumeTaskSpec{SnapshotID: "s"}), src, mountSecret(t, noURL),
			"InvalidAccess", "url"},
		{"wrong key", Backup, newTask("t", storkv1.TaskUpload, storkv1.VolumeTaskSpec{SnapshotID: "s"}), src, mountSecret(t, badKey),
			"RepositoryUnavailable", ""},
		{"volume not mounted", Backup, newTask("t", storkv1.TaskUpload, storkv1.VolumeTaskSpec{SnapshotID: "s"}), filepath.Join(t.TempDir(), "nope"), access,
			"VolumeNotMounted", "not mounted"},
		{"backup not in the repository", Restore, newTask("t", storkv1.TaskDownload, storkv1.VolumeTaskSpec{RepositorySnapshotID: missingID}), t.TempDir(), access,
			"BackupNotFound", missingID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(tc.task)
			before := getTask(t, c, "t")
			err := run(c, tc.verb, "t", tc.volumeDir, tc.accessDir)
			if err == nil {
				t.Fatal("Run succeeded")
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
			after := getTask(t, c, "t")
			if tc.reason == "" {
				if after.ResourceVersion != before.ResourceVersion || after.Status.Phase != "" {
					t.Errorf("the task was changed: %+v", after.Status)
				}
				return
			}
			if st := after.Status; st.Phase != storkv1.TaskFailed || st.Reason != tc.reason || !strings.Contains(st.Message, tc.msg) || st.CompletionTime == nil {
				t.Errorf("status %+v, want Failed %s", st, tc.reason)
			}
		})
	}
}

func TestRunLeavesAFinishedTaskAlone(t *testing.T) {
	access := mountSecret(t, newRepo(t))
	for _, phase := range []storkv1.VolumeTaskPhase{storkv1.TaskSucceeded, storkv1.TaskFailed} {
		t.Run(string(phase), func(t *testing.T) {
			tk := newTask("t", storkv1.TaskDownload, storkv1.VolumeTaskSpec{RepositorySnapshotID: strings.Repeat("ab", 32)})
			tk.Status.Phase = phase
			c := newClient(tk)
			before := getTask(t, c, "t")
			dst := t.TempDir()
			if err := os.WriteFile(filepath.Join(dst, "restored"), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := run(c, Restore, "t", dst, access); err != nil {
				t.Fatal(err)
			}
			if after := getTask(t, c, "t"); after.ResourceVersion != before.ResourceVersion {
				t.Errorf("a %s task was changed: %+v", phase, after.Status)
			}
			if _, err := os.Stat(filepath.Join(dst, "restored")); err != nil {
				t.Errorf("the volume was touched: %v", err)
			}
		})
	}
	if err := run(newClient(), Backup, "missing", t.TempDir(), access); err == nil {
		t.Error("Run of a missing task succeeded")
	}
}
