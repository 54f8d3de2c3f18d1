package locations

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/archive"
	"stork.dev/stork/backup/engine/catalog"
	"stork.dev/stork/backup/engine/repo"
)

// TestPruneForgetsOrphans: before a prune, the parts this cluster's Backups wrote that no record
// names are forgotten once their Backup is gone and they are older than the grace; a running
// Backup's parts, recorded backups, other clusters' parts and recent parts stay.
func TestPruneForgetsOrphans(t *testing.T) {
	ctx := context.Background()
	rp, dir := newRepository(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	part := func(uid, cluster string) repo.ID {
		id, _, err := archive.Backup(ctx, rp, src, archive.BackupOptions{Tags: map[string]string{catalog.TagKind: catalog.KindVolume,
			catalog.TagBackupUID: uid, catalog.TagCluster: cluster, catalog.TagNamespace: "app", catalog.TagBackup: "b-" + uid}})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	orphan, running, recorded, foreign := part("gone", "here"), part("running", "here"), part("recorded", "here"), part("other", "there")
	if _, err := catalog.WriteRecord(ctx, rp, &catalog.Record{Name: "b-recorded", Namespace: "app", UID: "recorded", Cluster: "here"}); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, location(dir, storkv1.AccessReadWrite, seconds(10), seconds(0)))
	h.r.Cluster = "here"
	if err := h.c.Create(ctx, &storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "b-running", UID: types.UID("running")}}); err != nil {
		t.Fatal(err)
	}
	kept := func() map[repo.ID]bool {
		t.Helper()
		fresh, err := repo.Open(ctx, rp.Store(), repo.UserKey{Passphrase: passphrase})
		if err != nil {
			t.Fatal(err)
		}
		defer fresh.Close()
		snaps, err := fresh.Snapshots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[repo.ID]bool{}
		for _, s := range snaps {
			out[s.ID] = true
		}
		return out
	}
	h.after(0)                // checked, the interval starts
	h.after(10 * time.Second) // pruned: the orphan is too recent to be judged
	if !kept()[orphan] {
		t.Fatal("a part minutes old was forgotten")
	}
	h.after(25 * time.Hour) // pruned again, a day later
	left := kept()
	for id, want := range map[repo.ID]bool{orphan: false, running: true, recorded: true, foreign: true} {
		if left[id] != want {
			t.Errorf("snapshot %s kept %v, want %v", id, left[id], want)
		}
	}
	evs := h.events()
	if !hasEvent(evs, "Normal "+EventOrphansForgotten+" ") || !strings.Contains(strings.Join(evs, "\n"), "volume of Backup app/b-gone") {
		t.Errorf("no %s Event naming the orphan: %q", EventOrphansForgotten, evs)
	}
}
