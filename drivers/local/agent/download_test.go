package agent

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/access"
	"stork.dev/stork/backup/engine/archive"
	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
)

const storkNamespace = "stork-system"

// backedUp is a directory backed up into a file:// repository, and the access Secret to reach it.
type backedUp struct {
	src    string
	url    string
	snapID repo.ID
	secret *corev1.Secret
}

// backUpTree makes a small tree (files of several modes, a subdirectory, a symlink, an empty
// directory), backs it up into a new file:// repository and returns it with an access Secret
// named secretName.
func backUpTree(t *testing.T, secretName string) backedUp {
	t.Helper()
	ctx := context.Background()
	src := t.TempDir()
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{"data.bin", bytes.Repeat([]byte{0, 1, 2, 3, 'x'}, 20000), 0o640},
		{"run.sh", []byte("#!/bin/sh\necho hi\n"), 0o755},
		{"sub/f", []byte("hello"), 0o600},
	} {
		p := filepath.Join(src, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil { // not subject to the umask
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(src, "empty"), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "empty"), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/f", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(src, 0o751); err != nil {
		t.Fatal(err)
	}

	r, url, secret := newRepository(t, secretName)
	snapID, _, err := archive.Backup(ctx, r, src, archive.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return backedUp{src: src, url: url, snapID: snapID, secret: secret}
}

// newRepository makes a repository in a new file:// location, open for the test, and the
// access Secret secretName (for the tasks of namespace app) that names it.
func newRepository(t *testing.T, secretName string) (*repo.Repository, string, *corev1.Secret) {
	t.Helper()
	ctx := context.Background()
	url := "file://" + t.TempDir()
	store, err := objstore.Open(ctx, objstore.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	key := repo.UserKey{Passphrase: "test passphrase"}
	r, err := repo.Init(ctx, store, key, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: storkNamespace, Name: secretName, Labels: map[string]string{access.LabelFor: "app"}},
		Data: access.SecretData(access.Access{Store: objstore.Config{URL: url}, Key: key})}
	return r, url, secret
}

// sameTree fails the test unless got has the same entries as want, with the same types, modes,
// file contents and link targets.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	entries := func(root string) map[string]fs.FileInfo {
		m := map[string]fs.FileInfo{}
		err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := os.Lstat(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			m[rel] = info
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	w, g := entries(want), entries(got)
	if len(w) != len(g) {
		t.Errorf("restored %d entries, the source has %d", len(g), len(w))
	}
	for rel, wi := range w {
		gi, ok := g[rel]
		switch {
		case !ok:
			t.Errorf("%s was not restored", rel)
			continue
		case gi.Mode() != wi.Mode():
			t.Errorf("%s: mode %v, want %v", rel, gi.Mode(), wi.Mode())
		}
		switch {
		case wi.Mode().IsRegular():
			wd, _ := os.ReadFile(filepath.Join(want, rel))
			gd, err := os.ReadFile(filepath.Join(got, rel))
			if err != nil || !bytes.Equal(wd, gd) {
				t.Errorf("%s: content differs (%d bytes, want %d), %v", rel, len(gd), len(wd), err)
			}
		case wi.Mode()&fs.ModeSymlink != 0:
			wl, _ := os.Readlink(filepath.Join(want, rel))
			if gl, err := os.Readlink(filepath.Join(got, rel)); err != nil || gl != wl {
				t.Errorf("%s: link to %q, want %q (%v)", rel, gl, wl, err)
			}
		}
	}
}

func taskScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(storkv1.AddToScheme(s))
	return s
}

func downloadTask(uid, volume, secret string, snapID string) *storkv1.VolumeTask {
	tk := task(storkv1.TaskDownload, uid, storkv1.VolumeTaskSpec{Driver: DriverName, NodeName: "n1", VolumeName: volume,
		BackupLocation: "loc", AccessSecretName: secret, RepositorySnapshotID: snapID})
	return tk
}

// A Download task run by the agent makes the volume from the backup, reports it, and is
// recognised as done when an attempt published the volume but died before reporting.
func TestDownloadTask(t *testing.T) {
	ctx := context.Background()
	b := backUpTree(t, "stork-access-1")
	root := Root(t.TempDir())
	dl := downloadTask("dl-uid", "pv-restored", b.secret.Name, b.snapID.String())
	c := fake.NewClientBuilder().WithScheme(taskScheme()).WithObjects(b.secret, dl).WithStatusSubresource(dl).Build()
	tk := &Tasks{Client: c, Node: "n1", Root: root, AgentID: "a1", Namespace: storkNamespace, MaxAttempts: 3}

	// A leftover of an interrupted attempt is not mistaken for part of the volume.
	if err := os.MkdirAll(filepath.Join(root.work("dl-uid"), "junk"), 0o700); err != nil {
		t.Fatal(err)
	}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(dl)}
	if _, err := tk.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	got := &storkv1.VolumeTask{}
	if err := c.Get(ctx, req.NamespacedName, got); err != nil {
		t.Fatal(err)
	}
	const size = 100000 + 18 + 5 // data.bin, run.sh, sub/f
	if st := got.Status; st.Phase != storkv1.TaskSucceeded || st.Path != root.volume("pv-restored") || st.SizeBytes != size ||
		st.Progress.BytesDone != size || st.Progress.BytesTotal != size || st.Progress.ItemsTotal != 3 || st.Progress.ItemsDone != 3 {
		t.Fatalf("status %+v", st)
	}
	sameTree(t, b.src, got.Status.Path)
	if _, err := os.Stat(root.work("dl-uid")); !os.IsNotExist(err) {
		t.Errorf("work directory left behind: %v", err)
	}

	// The agent died after publishing, before reporting, on its last attempt: the next one
	// reports the volume. The access Secret is gone (the controller deleted it), so a download
	// would fail: the result must come from what was published.
	if err := c.Delete(ctx, b.secret); err != nil {
		t.Fatal(err)
	}
	got.Status = storkv1.VolumeTaskStatus{Phase: storkv1.TaskRunning, Attempts: 3, AgentID: "dead"}
	if err := c.Status().Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, req.NamespacedName, got); err != nil {
		t.Fatal(err)
	}
	if st := got.Status; st.Phase != storkv1.TaskSucceeded || st.Path != root.volume("pv-restored") || st.SizeBytes != size {
		t.Fatalf("status after an unreported attempt: %+v", st)
	}
	// The same when the agent died on an earlier attempt and the task is started again.
	var last storkv1.Progress
	res, err := tk.do(ctx, dl, func(p storkv1.Progress) { last = p })
	if err != nil || res.path != root.volume("pv-restored") || res.size != size || last != (storkv1.Progress{}) {
		t.Fatalf("download started again after publishing: %+v, %v, progress %v", res, err, last)
	}
	sameTree(t, b.src, res.path)
}

func TestDownloadRefusals(t *testing.T) {
	ctx := context.Background()
	b := backUpTree(t, "stork-access-1")
	empty := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: storkNamespace, Name: "no-repo", Labels: map[string]string{access.LabelFor: "app"}},
		Data: access.SecretData(access.Access{Store: objstore.Config{URL: "file://" + t.TempDir()}, Key: repo.UserKey{Passphrase: "test passphrase"}})}
	other := b.secret.DeepCopy()
	other.Name, other.Labels = "other-namespace", map[string]string{access.LabelFor: "someone-else"}
	c := fake.NewClientBuilder().WithScheme(taskScheme()).WithObjects(b.secret, empty, other).Build()
	root := Root(t.TempDir())
	tk := &Tasks{Client: c, Node: "n1", Root: root, AgentID: "a1", Namespace: storkNamespace}
	if err := os.MkdirAll(root.volume("taken"), 0o755); err != nil {
		t.Fatal(err)
	}
	missing := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name   string
		task   *storkv1.VolumeTask
		reason string
		says   []string
	}{
		{"a backup not in the repository", downloadTask("u1", "v1", b.secret.Name, missing), "BackupNotFound", []string{missing, b.url}},
		{"an existing volume directory", downloadTask("u2", "taken", b.secret.Name, b.snapID.String()), "VolumeExists", []string{root.volume("taken")}},
		{"a volume name with a slash", downloadTask("u3", "../x", b.secret.Name, b.snapID.String()), "InvalidTask", []string{"volume name"}},
		{"a malformed backup ID", downloadTask("u4", "v4", b.secret.Name, "latest"), "InvalidTask", []string{"repositorySnapshotID"}},
		{"no access Secret named", downloadTask("u5", "v5", "", b.snapID.String()), "InvalidTask", []string{"accessSecretName"}},
		{"a missing access Secret", downloadTask("u6", "v6", "gone", b.snapID.String()), "AccessSecretMissing", []string{"gone"}},
		{"another namespace's access Secret", downloadTask("u7", "v7", "other-namespace", b.snapID.String()), "InvalidTask", []string{`for the tasks of namespace "someone-else"`}},
		{"a location without a repository", downloadTask("u7", "v7", empty.Name, b.snapID.String()), "RepositoryUnavailable", []string{"no repository"}},
	} {
		_, err := tk.do(ctx, tc.task, func(storkv1.Progress) {})
		if !isReason(err, tc.reason) {
			t.Errorf("%s: %v, want reason %s", tc.name, err, tc.reason)
			continue
		}
		for _, s := range tc.says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %q does not say %q", tc.name, err, s)
			}
		}
	}
	// Nothing was made, and the existing directory was left alone.
	if entries, err := os.ReadDir(filepath.Join(string(root), "volumes")); err != nil || len(entries) != 1 {
		t.Errorf("volumes after refusals: %v, %v", entries, err)
	}
}

// With spec.verify, the agent reads the volume back and reports what it compared; a volume
// published by an attempt that died before reporting is verified before it is reported, and
// one that differs from the backup fails the task, naming the file.
func TestDownloadTaskVerifies(t *testing.T) {
	ctx := context.Background()
	b := backUpTree(t, "stork-access-1")
	root := Root(t.TempDir())
	dl := downloadTask("dl-uid", "pv-restored", b.secret.Name, b.snapID.String())
	dl.Spec.Verify = true
	c := fake.NewClientBuilder().WithScheme(taskScheme()).WithObjects(b.secret, dl).WithStatusSubresource(dl).Build()
	tk := &Tasks{Client: c, Node: "n1", Root: root, AgentID: "a1", Namespace: storkNamespace, MaxAttempts: 3}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(dl)}
	if _, err := tk.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	got := &storkv1.VolumeTask{}
	if err := c.Get(ctx, req.NamespacedName, got); err != nil {
		t.Fatal(err)
	}
	const size = 100000 + 18 + 5
	if v := got.Status.Verification; got.Status.Phase != storkv1.TaskSucceeded || v == nil || v.Files != 3 || v.Bytes != size {
		t.Fatalf("status %+v, verification %+v: want Succeeded with 3 files and %d bytes verified", got.Status, v, size)
	}

	// Damage the published volume (same size and time), then make the task look unreported.
	p := filepath.Join(root.volume("pv-restored"), "sub", "f")
	fi, _ := os.Stat(p)
	if err := os.WriteFile(p, []byte("HELLO"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(p, fi.ModTime(), fi.ModTime())
	got.Status = storkv1.VolumeTaskStatus{Phase: storkv1.TaskRunning, Attempts: 1, AgentID: "dead"}
	if err := c.Status().Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, req.NamespacedName, got); err != nil {
		t.Fatal(err)
	}
	if st := got.Status; st.Phase != storkv1.TaskFailed || st.Reason != "VerificationFailed" || !strings.Contains(st.Message, "sub/f: bytes 0 to 5 differ") {
		t.Fatalf("status after damage %+v: want Failed, VerificationFailed, naming sub/f", st)
	}
}

// A Download task with paths restores only those paths into the new volume; a path that is not
// in the backup fails the task, naming it.
func TestDownloadTaskPaths(t *testing.T) {
	ctx := context.Background()
	b := backUpTree(t, "stork-access-1")
	for _, tc := range []struct {
		name  string
		paths []string
		phase storkv1.VolumeTaskPhase
		msg   string
	}{
		{"one directory", []string{"sub"}, storkv1.TaskSucceeded, ""},
		{"missing", []string{"sub", "nope/x"}, storkv1.TaskFailed, `path "nope/x" is not in the snapshot`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := Root(t.TempDir())
			dl := downloadTask("dl-uid", "pv-restored", b.secret.Name, b.snapID.String())
			dl.Spec.Paths = tc.paths
			c := fake.NewClientBuilder().WithScheme(taskScheme()).WithObjects(b.secret, dl).WithStatusSubresource(dl).Build()
			tk := &Tasks{Client: c, Node: "n1", Root: root, AgentID: "a1", Namespace: storkNamespace, MaxAttempts: 1}
			req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(dl)}
			if _, err := tk.Reconcile(ctx, req); err != nil {
				t.Fatal(err)
			}
			got := &storkv1.VolumeTask{}
			if err := c.Get(ctx, req.NamespacedName, got); err != nil {
				t.Fatal(err)
			}
			if got.Status.Phase != tc.phase || !strings.Contains(got.Status.Message, tc.msg) {
				t.Fatalf("status %+v, want %s %q", got.Status, tc.phase, tc.msg)
			}
			if tc.phase != storkv1.TaskSucceeded {
				return
			}
			entries, err := os.ReadDir(root.volume("pv-restored"))
			if err != nil || len(entries) != 1 || entries[0].Name() != "sub" {
				t.Fatalf("restored volume holds %v (%v), want only sub", entries, err)
			}
			if data, err := os.ReadFile(filepath.Join(root.volume("pv-restored"), "sub", "f")); err != nil || string(data) != "hello" {
				t.Fatalf("sub/f: %q %v", data, err)
			}
		})
	}
}

// A Download task deleted while the agent runs it is cancelled (Tasks.Cancel, which the
// deletion watch calls): the work stops, its temporary directory goes, nothing is published and
// nothing is reported. The cancel is made when the task is marked Running, before the work, so
// that the test does not race the download.
func TestDownloadTaskCancelled(t *testing.T) {
	ctx := context.Background()
	b := backUpTree(t, "stork-access-1")
	root := Root(t.TempDir())
	dl := downloadTask("dl-uid", "pv-restored", b.secret.Name, b.snapID.String())
	var tk *Tasks
	c := fake.NewClientBuilder().WithScheme(taskScheme()).WithObjects(b.secret, dl).WithStatusSubresource(dl).
		WithInterceptorFuncs(interceptor.Funcs{SubResourcePatch: func(ctx context.Context, cl client.Client, sub string, obj client.Object, p client.Patch, o ...client.SubResourcePatchOption) error {
			if vt := obj.(*storkv1.VolumeTask); vt.Status.Phase == storkv1.TaskRunning && vt.Status.Attempts == 1 {
				if err := os.MkdirAll(root.work("dl-uid"), 0o700); err != nil { // as an interrupted copy leaves it
					t.Error(err)
				}
				tk.Cancel(client.ObjectKeyFromObject(obj))
			}
			return cl.SubResource(sub).Patch(ctx, obj, p, o...)
		}}).Build()
	tk = &Tasks{Client: c, Node: "n1", Root: root, AgentID: "a1", Namespace: storkNamespace, MaxAttempts: 3}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(dl)}
	if _, err := tk.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	got := &storkv1.VolumeTask{}
	if err := c.Get(ctx, req.NamespacedName, got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != storkv1.TaskRunning {
		t.Errorf("phase %s, want the cancelled task left unreported (Running)", got.Status.Phase)
	}
	for _, p := range []string{root.work("dl-uid"), root.volume("pv-restored")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after the cancel (%v)", p, err)
		}
	}
}
