package e2e

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/internal/harness"
)

// TestLocalDriver is the first end-to-end slice: real control plane, the stork controller and
// one stork-agent process per simulated node (each with its own storage root), all running
// under the RBAC of deploy/base/manifests. Data is written into volume directories as an
// application would; snapshots and restores are checked byte for byte and metadata for
// metadata.
func TestLocalDriver(t *testing.T) {
	ctx := context.Background()
	env := harness.New(t)
	c, err := env.StartCluster(ctx, harness.ClusterOptions{Name: "local", Nodes: harness.Nodes("n", "region-1", []string{"zone-a", "zone-b"}, 1)})
	if err != nil {
		t.Fatal(err)
	}
	nodeA, nodeB := "n-zone-a-1", "n-zone-b-1"
	if err := c.ApplyManifests(ctx, harness.RBACOnly); err != nil {
		t.Fatal(err)
	}
	metricsPort, err := env.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	storkArgs := []string{fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort)}
	stork, err := c.StartStork(ctx, storkArgs...)
	if err != nil {
		t.Fatal(err)
	}
	agents := map[string]*harness.Process{}
	for _, n := range []string{nodeA, nodeB} {
		if agents[n], err = c.StartAgent(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	mustCreate(t, c, &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "local"}, Provisioner: "kubernetes.io/no-provisioner",
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer)})
	mustCreate(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}})

	t.Run("storage nodes report topology, capacity and health", func(t *testing.T) {
		for node, zone := range map[string]string{nodeA: "zone-a", nodeB: "zone-b"} {
			sn := &storkv1.StorageNode{}
			if err := c.Client.Get(ctx, client.ObjectKey{Name: "local." + node}, sn); err != nil {
				t.Fatal(err)
			}
			st := sn.Status
			if st.Health != storkv1.StorageHealthy || st.Topology.Zone != zone || st.Topology.Region != "region-1" || st.Topology.Rack == "" ||
				st.Capacity.TotalBytes <= 0 || st.Capacity.FreeBytes <= 0 || st.StorageRoot != c.NodeRoot(node) {
				t.Errorf("StorageNode of %s: %+v", node, st)
			}
			for _, cond := range []string{storkv1.StorageConditionAgentAlive, storkv1.StorageConditionWritable} {
				if !meta.IsStatusConditionTrue(st.Conditions, cond) {
					t.Errorf("%s: condition %s is not True: %+v", node, cond, st.Conditions)
				}
			}
		}
	})

	// Two claims of one application on two nodes, with data.
	volA := makeLocalVolume(t, c, "app", "data-0", nodeA, map[string]string{"app": "db"})
	volB := makeLocalVolume(t, c, "app", "data-1", nodeB, map[string]string{"app": "db"})
	writeTree(t, volA, 1, 3<<20)
	writeTree(t, volB, 2, 1<<20)
	// What the snapshot must hold: copies of the trees as they are now.
	wantA, wantB := t.TempDir()+"/a", t.TempDir()+"/b"
	copyTree(t, volA, wantA)
	copyTree(t, volB, wantB)

	var snap storkv1.Snapshot
	t.Run("a snapshot of two claims on two nodes is taken as a group", func(t *testing.T) {
		snap = storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "snap1"},
			Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}}}
		mustCreate(t, c, &snap)
		waitSnapshot(t, c, &snap, storkv1.SnapshotReady)
		if len(snap.Status.Volumes) != 2 {
			t.Fatalf("volumes %+v", snap.Status.Volumes)
		}
		nodes := map[string]string{}
		for _, v := range snap.Status.Volumes {
			if v.Phase != storkv1.VolumeSucceeded || v.SnapshotID == "" || v.Driver != "local" || v.SizeBytes <= 0 || v.Capacity == nil {
				t.Errorf("volume %+v", v)
			}
			nodes[v.ClaimName] = v.Node
		}
		if nodes["data-0"] != nodeA || nodes["data-1"] != nodeB {
			t.Errorf("snapshot nodes %v, want data-0 on %s and data-1 on %s", nodes, nodeA, nodeB)
		}
		if p := snap.Status.Progress; p.ItemsDone != 2 || p.BytesDone != p.BytesTotal || p.BytesTotal < 4<<20 {
			t.Errorf("progress %+v", p)
		}
		// The two tasks were created together, before either finished.
		var tasks storkv1.VolumeTaskList
		if err := c.Client.List(ctx, &tasks, client.InNamespace("app")); err != nil {
			t.Fatal(err)
		}
		var created []time.Time
		for _, tk := range tasks.Items {
			if tk.Spec.Type == storkv1.TaskSnapshot && metav1.IsControlledBy(&tk, &snap) {
				created = append(created, tk.CreationTimestamp.Time)
				if tk.Status.CompletionTime != nil && tk.Status.CompletionTime.Before(&tasks.Items[0].CreationTimestamp) {
					t.Errorf("task %s finished before the group's first task was created", tk.Name)
				}
			}
		}
		if len(created) != 2 {
			t.Fatalf("%d snapshot tasks owned by the Snapshot, want 2", len(created))
		}
		for _, v := range snap.Status.Volumes {
			got := filepath.Join(c.NodeRoot(v.Node), ".stork", "snapshots", v.SnapshotID)
			want := map[string]string{"data-0": wantA, "data-1": wantB}[v.ClaimName]
			compareTrees(t, want, got)
		}
	})

	// The application goes on writing.
	writeTree(t, volA, 3, 1<<20)
	if err := os.WriteFile(filepath.Join(volB, "later.txt"), []byte("written after the snapshot"), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("restore into another namespace, renamed", func(t *testing.T) {
		// A namespace's users restore within it; moving data across namespaces takes a Restore
		// in Stork's namespace, which only administrators can create.
		denied := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "r-elsewhere"},
			Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{SnapshotName: "snap1"}, NamespaceMapping: map[string]string{"app": "app-copy"}}}
		mustCreate(t, c, denied)
		waitRestore(t, c, denied, storkv1.RestoreFailed)
		if cond := meta.FindStatusCondition(denied.Status.Conditions, storkv1.ConditionValid); cond == nil || cond.Reason != "CrossNamespaceNotAllowed" ||
			!strings.Contains(cond.Message, "stork-system") {
			t.Errorf("a restore into another namespace from a user namespace: %+v", denied.Status.Conditions)
		}
		rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: harness.StorkNamespace, Name: "r1"},
			Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{SnapshotName: "snap1", Namespace: "app"},
				NamespaceMapping: map[string]string{"app": "app-copy"}, ClaimNameMapping: map[string]string{"data-0": "restored-0"}}}
		mustCreate(t, c, rs)
		waitRestore(t, c, rs, storkv1.RestoreCompleted)
		for claim, want := range map[string]string{"restored-0": wantA, "data-1": wantB} {
			pvc := &corev1.PersistentVolumeClaim{}
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "app-copy", Name: claim}, pvc); err != nil {
				t.Fatal(err)
			}
			if pvc.Status.Phase != corev1.ClaimBound {
				t.Fatalf("claim %s is %s", claim, pvc.Status.Phase)
			}
			pv := &corev1.PersistentVolume{}
			if err := c.Client.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, pv); err != nil {
				t.Fatal(err)
			}
			compareTrees(t, want, pv.Spec.Local.Path)
		}
	})

	t.Run("an existing target claim is not overwritten", func(t *testing.T) {
		rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: harness.StorkNamespace, Name: "r2"},
			Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{SnapshotName: "snap1", Namespace: "app"}, NamespaceMapping: map[string]string{"app": "app-copy"}}}
		mustCreate(t, c, rs)
		waitRestore(t, c, rs, storkv1.RestorePartiallyFailed)
		for _, v := range rs.Status.Volumes {
			switch v.SourceClaim {
			case "data-1":
				if v.Phase != storkv1.VolumeFailed || v.Reason != "ClaimExists" || !strings.Contains(v.Message, "app-copy/data-1") {
					t.Errorf("data-1: %+v, want Failed with ClaimExists naming app-copy/data-1", v)
				}
			case "data-0":
				if v.Phase != storkv1.VolumeSucceeded {
					t.Errorf("data-0 (no claim of that name in app-copy): %+v", v)
				}
			}
		}
	})

	t.Run("invalid requests end in a clear condition", func(t *testing.T) {
		elsewhere := t.TempDir()
		if err := c.Volume(ctx, "app", "foreign", nodeA, elsewhere, nil); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name, reason, text string
			source             storkv1.SnapshotSource
		}{
			{"unknown-claim", "ClaimNotFound", "app/nope", storkv1.SnapshotSource{ClaimName: "nope"}},
			{"other-driver", "NoDriver", "app/foreign", storkv1.SnapshotSource{ClaimName: "foreign"}},
			{"nothing-selected", "NoClaims", "selects no", storkv1.SnapshotSource{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "none"}}}},
		}
		for _, tc := range cases {
			s := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: tc.name}, Spec: storkv1.SnapshotSpec{Source: tc.source}}
			mustCreate(t, c, s)
			waitSnapshot(t, c, s, storkv1.SnapshotFailed)
			cond := meta.FindStatusCondition(s.Status.Conditions, storkv1.ConditionValid)
			if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != tc.reason || !strings.Contains(cond.Message, tc.text) {
				t.Errorf("%s: Valid condition %+v, want False/%s mentioning %q", tc.name, cond, tc.reason, tc.text)
			}
		}
		rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "r-missing"},
			Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{SnapshotName: "missing"}}}
		mustCreate(t, c, rs)
		waitRestore(t, c, rs, storkv1.RestoreFailed)
		if cond := meta.FindStatusCondition(rs.Status.Conditions, storkv1.ConditionValid); cond == nil || cond.Reason != "SnapshotNotFound" {
			t.Errorf("restore of a missing snapshot: %+v", rs.Status.Conditions)
		}
	})

	t.Run("hooks run through pods/exec and their failures are reported", func(t *testing.T) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "db-0", Labels: map[string]string{"app": "db"}},
			Spec: corev1.PodSpec{NodeName: nodeA, Containers: []corev1.Container{{Name: "db", Image: "db"}}}}
		mustCreate(t, c, pod)
		// There is no kubelet: play its part and say the pod runs, so that the hook picks it.
		pod.Status.Phase = corev1.PodRunning
		if err := c.Client.Status().Update(ctx, pod); err != nil {
			t.Fatal(err)
		}
		for _, policy := range []storkv1.HookErrorPolicy{storkv1.HookFail, storkv1.HookContinue} {
			s := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "hooked-" + strings.ToLower(string(policy))},
				Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "data-1"},
					PreHooks: []storkv1.Hook{{Name: "freeze", PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
						Command: []string{"fsfreeze", "--freeze", "/data"}, Timeout: &metav1.Duration{Duration: 10 * time.Second}, OnError: policy}},
					PostHooks: []storkv1.Hook{{Name: "thaw", PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
						Command: []string{"fsfreeze", "--unfreeze", "/data"}, OnError: storkv1.HookContinue}}}}
			mustCreate(t, c, s)
			want := map[storkv1.HookErrorPolicy]storkv1.SnapshotPhase{storkv1.HookFail: storkv1.SnapshotFailed, storkv1.HookContinue: storkv1.SnapshotReady}[policy]
			waitSnapshot(t, c, s, want)
			if len(s.Status.Hooks) != 2 {
				t.Fatalf("%s: hook results %+v, want the pre-hook and the post-hook", policy, s.Status.Hooks)
			}
			for _, h := range s.Status.Hooks {
				// The API server accepted the exec request and failed to reach the node's
				// kubelet: the request was built right, and the failure is reported.
				if h.Succeeded || h.Pod != "db-0" || h.Container != "db" || h.Message == "" {
					t.Errorf("%s: hook result %+v", policy, h)
				}
			}
			if policy == storkv1.HookFail {
				if !strings.Contains(s.Status.Volumes[0].Message, "freeze") || s.Status.Volumes[0].SnapshotID != "" {
					t.Errorf("capture after a failed pre-hook: %+v", s.Status.Volumes[0])
				}
			}
			t.Logf("%s: pre-hook result: %s", policy, s.Status.Hooks[0].Message)
		}
	})

	t.Run("an agent killed during a snapshot", func(t *testing.T) {
		big := makeLocalVolume(t, c, "app", "big", nodeB, nil)
		writeTree(t, big, 9, 24<<20)
		want := t.TempDir() + "/big"
		copyTree(t, big, want)
		// Slow copies, so that the kill lands in the middle of one.
		if err := agents[nodeB].Kill(); err != nil {
			t.Fatal(err)
		}
		if agents[nodeB], err = c.StartAgent(ctx, nodeB, "--bytes-per-second=4000000"); err != nil {
			t.Fatal(err)
		}
		s := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "during-kill"},
			Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "big"}}}
		mustCreate(t, c, s)
		var task storkv1.VolumeTask
		err := c.WaitFor(ctx, time.Minute, "the snapshot task to make progress", func(ctx context.Context) (bool, error) {
			var tasks storkv1.VolumeTaskList
			if err := c.Client.List(ctx, &tasks, client.InNamespace("app")); err != nil {
				return false, err
			}
			for _, tk := range tasks.Items {
				if metav1.IsControlledBy(&tk, s) && tk.Status.Progress.BytesDone > 0 {
					task = tk
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Both sides die: the agent in the middle of the copy, and the controller too.
		if err := agents[nodeB].Kill(); err != nil {
			t.Fatal(err)
		}
		if err := stork.Kill(); err != nil {
			t.Fatal(err)
		}
		if stork, err = c.StartStork(ctx, storkArgs...); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
			t.Fatal(err)
		}
		if s.Status.Phase == storkv1.SnapshotReady {
			t.Fatal("the Snapshot is Ready while its agent was killed in the middle of the copy")
		}
		snaps, _ := filepath.Glob(filepath.Join(c.NodeRoot(nodeB), ".stork", "snapshots", "big-*"))
		if len(snaps) != 0 {
			t.Fatalf("a partial copy is visible as a snapshot: %v", snaps)
		}
		if agents[nodeB], err = c.StartAgent(ctx, nodeB); err != nil {
			t.Fatal(err)
		}
		waitSnapshot(t, c, s, storkv1.SnapshotReady)
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(&task), &task); err != nil {
			t.Fatal(err)
		}
		if task.Status.Attempts != 2 || task.Status.Phase != storkv1.TaskSucceeded {
			t.Errorf("task after the restart: attempts %d, phase %s; want 2, Succeeded", task.Status.Attempts, task.Status.Phase)
		}
		compareTrees(t, want, filepath.Join(c.NodeRoot(nodeB), ".stork", "snapshots", s.Status.Volumes[0].SnapshotID))
		work, _ := os.ReadDir(filepath.Join(c.NodeRoot(nodeB), ".stork", "work"))
		if len(work) != 0 {
			t.Errorf("leftovers in the agent's work directory: %d entries", len(work))
		}
	})

	t.Run("storkctl drives snapshots and restores", func(t *testing.T) {
		bins, err := harness.Commands()
		if err != nil {
			t.Fatal(err)
		}
		storkctl := func(wantOK bool, args ...string) string {
			t.Helper()
			cmd := exec.Command(filepath.Join(bins, "storkctl"), args...)
			cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
			out, err := cmd.CombinedOutput()
			if (err == nil) != wantOK {
				t.Fatalf("storkctl %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			return string(out)
		}
		for _, step := range []struct {
			args []string
			want []string
		}{
			{[]string{"snapshot", "create", "cli-snap", "-n", "app", "--claim", "data-1", "--wait"}, []string{"created", "capturing: ", "Ready"}},
			{[]string{"snapshot", "get", "-n", "app"}, []string{"cli-snap", "Ready", "1/1"}},
			{[]string{"snapshot", "describe", "cli-snap", "-n", "app"}, []string{"data-1", nodeB, "zone-b", "Succeeded", "Ready=True"}},
			{[]string{"restore", "create", "cli-restore", "-n", harness.StorkNamespace, "--source-namespace", "app", "--snapshot", "cli-snap",
				"--namespace-mapping", "app=app-cli", "--wait"}, []string{"Completed"}},
			{[]string{"restore", "get", "-n", harness.StorkNamespace}, []string{"cli-restore", "cli-snap", "Completed"}},
			{[]string{"restore", "describe", "cli-restore", "-n", harness.StorkNamespace}, []string{"app-cli/data-1", "Succeeded"}},
			{[]string{"snapshot", "delete", "cli-snap", "-n", "app", "--wait"}, []string{"deleted"}},
		} {
			out := storkctl(true, step.args...)
			for _, w := range step.want {
				if !strings.Contains(out, w) {
					t.Errorf("storkctl %s: output lacks %q:\n%s", strings.Join(step.args, " "), w, out)
				}
			}
		}
		if out := storkctl(false, "snapshot", "create", "no-source", "-n", "app"); !strings.Contains(out, "exactly one of --claim, --selector or --all-claims") {
			t.Errorf("a snapshot without a source: %s", out)
		}
		if out := storkctl(false, "restore", "create", "bad-map", "-n", "app", "--snapshot", "x", "--claim-mapping", "a"); !strings.Contains(out, "--claim-mapping") {
			t.Errorf("a malformed mapping: %s", out)
		}
	})

	t.Run("events and metrics", func(t *testing.T) {
		var evs eventsv1.EventList
		if err := c.Client.List(ctx, &evs); err != nil {
			t.Fatal(err)
		}
		reasons := map[string]bool{}
		for _, e := range evs.Items {
			if e.Regarding.Name == "snap1" || e.Regarding.Name == "hooked-fail" || e.Regarding.Name == "r2" {
				reasons[e.Regarding.Name+"/"+e.Reason] = true
			}
		}
		for _, want := range []string{"snap1/Started", "snap1/Ready", "hooked-fail/HookFailed", "hooked-fail/Failed", "r2/VolumeFailed"} {
			if !reasons[want] {
				t.Errorf("no Event %s; got %v", want, reasons)
			}
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// The controller was restarted above: counters start from that restart.
		for _, want := range []string{"stork_snapshots_total{phase=\"Ready\"}", "stork_snapshot_duration_seconds_count", "stork_restores_total{phase=\"Completed\"}"} {
			if !strings.Contains(string(body), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})

	t.Run("a schedule takes snapshots and keeps the newest two", func(t *testing.T) {
		sched := &storkv1.SnapshotSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "every2s"},
			Spec: storkv1.SnapshotScheduleSpec{Schedule: "*/2 * * * * *", Retention: storkv1.Retention{KeepLast: 2},
				Template: storkv1.SnapshotTemplate{Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "data-1"}}}}}
		mustCreate(t, c, sched)
		var deleted []string
		err := c.WaitFor(ctx, 90*time.Second, "four runs of the schedule, two snapshots kept", func(ctx context.Context) (bool, error) {
			if err := c.Client.Get(ctx, client.ObjectKeyFromObject(sched), sched); err != nil {
				return false, err
			}
			var snaps storkv1.SnapshotList
			if err := c.Client.List(ctx, &snaps, client.InNamespace("app"), client.MatchingLabels{"stork.dev/schedule": "every2s"}); err != nil {
				return false, err
			}
			ready, names := 0, map[string]bool{}
			for _, s := range snaps.Items {
				names[s.Name] = true
				if s.Status.Phase == storkv1.SnapshotReady && s.DeletionTimestamp == nil {
					ready++
				}
			}
			deleted = deleted[:0]
			for _, h := range sched.Status.History {
				if h.SnapshotName != "" && !names[h.SnapshotName] {
					deleted = append(deleted, h.SnapshotName)
				}
			}
			return len(sched.Status.History) >= 4 && ready == 2 && len(deleted) >= 1 && len(snaps.Items) <= 3, nil
		})
		if err != nil {
			t.Fatalf("%v; status %+v", err, sched.Status)
		}
		if sched.Status.LastResult != "Ready" || sched.Status.NextScheduleTime == nil || sched.Status.LastSuccessfulTime == nil {
			t.Errorf("schedule status %+v", sched.Status)
		}
		// Stop it, so that the tests after this one see no new snapshots.
		if err := c.Client.Patch(ctx, sched, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"suspend":true}}`))); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitFor(ctx, 30*time.Second, "the suspended schedule to say so", func(ctx context.Context) (bool, error) {
			err := c.Client.Get(ctx, client.ObjectKeyFromObject(sched), sched)
			return err == nil && sched.Status.NextScheduleTime == nil, err
		}); err != nil {
			t.Fatal(err)
		}
		// The data of the snapshots retention deleted is gone from the node.
		left, _ := filepath.Glob(filepath.Join(c.NodeRoot(nodeB), ".stork", "snapshots", "pv-app-data-1-*"))
		if err := c.WaitFor(ctx, 30*time.Second, "retention to delete snapshot data", func(ctx context.Context) (bool, error) {
			var snaps storkv1.SnapshotList
			if err := c.Client.List(ctx, &snaps, client.InNamespace("app")); err != nil {
				return false, err
			}
			want := 0
			for _, s := range snaps.Items {
				for _, v := range s.Status.Volumes {
					if v.ClaimName == "data-1" && v.SnapshotID != "" {
						want++
					}
				}
			}
			left, _ = filepath.Glob(filepath.Join(c.NodeRoot(nodeB), ".stork", "snapshots", "pv-app-data-1-*"))
			return len(left) == want, nil
		}); err != nil {
			t.Errorf("%v: %d snapshot directories of data-1 on the node", err, len(left))
		}
		bad := &storkv1.SnapshotSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "bad-tz"},
			Spec: storkv1.SnapshotScheduleSpec{Schedule: "@every 1m", TimeZone: "Mars/Olympus",
				Template: storkv1.SnapshotTemplate{Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "data-1"}}}}}
		mustCreate(t, c, bad)
		if err := c.WaitFor(ctx, 30*time.Second, "an unknown time zone to be reported", func(ctx context.Context) (bool, error) {
			err := c.Client.Get(ctx, client.ObjectKeyFromObject(bad), bad)
			cond := meta.FindStatusCondition(bad.Status.Conditions, storkv1.ConditionValid)
			return err == nil && cond != nil && cond.Reason == "InvalidTimeZone" && strings.Contains(cond.Message, "spec.timeZone"), err
		}); err != nil {
			t.Error(err)
		}
	})

	t.Run("a snapshot naming a location is backed up to MinIO and restored without the cluster", func(t *testing.T) {
		m, err := env.StartMinIO(ctx, "minio")
		if err != nil {
			t.Fatal(err)
		}
		const passphrase = "correct horse battery staple"
		for _, o := range []client.Object{
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "minio"},
				StringData: map[string]string{"accessKeyID": m.AccessKey, "secretAccessKey": m.SecretKey}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "backup-key"}, StringData: map[string]string{"passphrase": passphrase}},
			&storkv1.BackupLocation{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "minio"},
				Spec: storkv1.BackupLocationSpec{URL: "s3://" + m.Bucket + "/local",
					S3:                     &storkv1.S3Options{Endpoint: m.Endpoint, Region: "us-east-1", ForcePathStyle: true},
					CredentialsSecretRef:   &storkv1.SecretReference{Name: "minio"},
					EncryptionKeySecretRef: storkv1.SecretKeyReference{Name: "backup-key", Key: "passphrase"}}},
		} {
			mustCreate(t, c, o)
		}
		want := t.TempDir() + "/data-1"
		copyTree(t, volB, want)
		s := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "to-minio"},
			Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "data-1"}, BackupLocation: "minio"}}
		mustCreate(t, c, s)
		waitSnapshot(t, c, s, storkv1.SnapshotReady)
		b := &storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "to-minio"}}
		err = c.WaitFor(ctx, 2*time.Minute, "Backup to-minio to finish", func(ctx context.Context) (bool, error) {
			if err := c.Client.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
				return false, client.IgnoreNotFound(err)
			}
			return b.Status.Phase == storkv1.BackupCompleted || b.Status.Phase == storkv1.BackupFailed || b.Status.Phase == storkv1.BackupPartiallyFailed, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if b.Status.Phase != storkv1.BackupCompleted || len(b.Status.Volumes) != 1 || b.Status.Volumes[0].RepositorySnapshotID == "" ||
			b.Status.Cluster != "local" || b.Status.Progress.BytesDone == 0 || s.Status.BackupName != "to-minio" {
			t.Fatalf("backup %+v (snapshot's backupName %q)", b.Status, s.Status.BackupName)
		}
		// The agent's access to the location was for this upload only.
		var secrets corev1.SecretList
		if err := c.Client.List(ctx, &secrets, client.InNamespace(harness.StorkNamespace)); err != nil {
			t.Fatal(err)
		}
		for _, sec := range secrets.Items {
			if strings.HasPrefix(sec.Name, "stork-access-") {
				t.Errorf("access Secret %s left after the backup", sec.Name)
			}
		}
		// Break-glass: the cluster is gone; the bucket, its credentials and the passphrase are
		// enough to get the claim's data back.
		bins, err := harness.Commands()
		if err != nil {
			t.Fatal(err)
		}
		creds := t.TempDir()
		os.WriteFile(filepath.Join(creds, "accessKeyID"), []byte(m.AccessKey), 0o600)
		os.WriteFile(filepath.Join(creds, "secretAccessKey"), []byte(m.SecretKey), 0o600)
		passFile := filepath.Join(creds, "passphrase")
		os.WriteFile(passFile, []byte(passphrase), 0o600)
		target := filepath.Join(t.TempDir(), "restored")
		out, err := exec.Command(filepath.Join(bins, "storkctl"), "repo", "restore", "latest", target, "--tag", "namespace=app", "--tag", "pvc=data-1",
			"--location", "s3://"+m.Bucket+"/local", "--s3-endpoint", m.Endpoint, "--s3-path-style", "--s3-region", "us-east-1",
			"--credentials-dir", creds, "--passphrase-file", passFile).CombinedOutput()
		if err != nil {
			t.Fatalf("storkctl repo restore: %v\n%s", err, out)
		}
		compareTrees(t, want, target)
	})

	t.Run("a dead agent is reported by its lease", func(t *testing.T) {
		if err := agents[nodeA].Kill(); err != nil {
			t.Fatal(err)
		}
		sn := &storkv1.StorageNode{}
		err := c.WaitFor(ctx, time.Minute, "AgentAlive False on "+nodeA, func(ctx context.Context) (bool, error) {
			err := c.Client.Get(ctx, client.ObjectKey{Name: "local." + nodeA}, sn)
			return err == nil && meta.IsStatusConditionFalse(sn.Status.Conditions, storkv1.StorageConditionAgentAlive), err
		})
		if err != nil {
			t.Fatal(err)
		}
		if sn.Status.Health != storkv1.StorageUnknown {
			t.Errorf("health of a node whose agent is dead: %s", sn.Status.Health)
		}
		if agents[nodeA], err = c.StartAgent(ctx, nodeA); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitFor(ctx, time.Minute, "AgentAlive True again", func(ctx context.Context) (bool, error) {
			err := c.Client.Get(ctx, client.ObjectKey{Name: "local." + nodeA}, sn)
			return err == nil && sn.Status.Health == storkv1.StorageHealthy, err
		}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("deleting a snapshot deletes its data on the nodes", func(t *testing.T) {
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(&snap), &snap); err != nil {
			t.Fatal(err)
		}
		var dirs []string
		for _, v := range snap.Status.Volumes {
			dirs = append(dirs, filepath.Join(c.NodeRoot(v.Node), ".stork", "snapshots", v.SnapshotID))
		}
		if err := c.Client.Delete(ctx, &snap); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitFor(ctx, time.Minute, "Snapshot snap1 to be gone", func(ctx context.Context) (bool, error) {
			err := c.Client.Get(ctx, client.ObjectKeyFromObject(&snap), &snap)
			return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
		}); err != nil {
			t.Fatal(err)
		}
		for _, d := range dirs {
			if _, err := os.Stat(d); !os.IsNotExist(err) {
				t.Errorf("snapshot data %s is still there (%v)", d, err)
			}
		}
	})

	t.Run("RBAC of deploy/base/manifests is least privilege", func(t *testing.T) {
		cases := []struct {
			sa      string
			obj     client.Object
			list    client.ObjectList
			op      string
			allowed bool
		}{
			{"stork-agent", nil, &corev1.SecretList{}, "list secrets", false},
			{"stork-agent", nil, &corev1.PersistentVolumeClaimList{}, "list claims", false},
			{"stork-agent", &storkv1.VolumeTask{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "forged"},
				Spec: storkv1.VolumeTaskSpec{Type: storkv1.TaskSnapshot, Driver: "local", NodeName: nodeA, VolumeName: "x"}}, nil, "create tasks", false},
			{"stork-agent", nil, &storkv1.VolumeTaskList{}, "list tasks", true},
			// Backups hold the application's Secrets; restores create them.
			{"stork", nil, &corev1.SecretList{}, "list secrets", true},
			// Restores recreate a fixed list of kinds; RBAC objects and pods are not among them.
			{"stork", &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "x"}}, nil, "create roles", false},
			{"stork", &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "x"},
				RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "admin"},
				Subjects: []rbacv1.Subject{{Kind: "User", Name: "mallory"}}}, nil, "create role bindings", false},
			{"stork", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "x"},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "x"}}}}, nil, "create pods", false},
			{"stork", nil, &corev1.PersistentVolumeClaimList{}, "list claims", true},
		}
		for _, tc := range cases {
			kc, err := c.ServiceAccountKubeconfig(harness.StorkNamespace, tc.sa)
			if err != nil {
				t.Fatal(err)
			}
			cl, err := harness.ClientFromKubeconfig(kc)
			if err != nil {
				t.Fatal(err)
			}
			if tc.obj != nil {
				err = cl.Create(ctx, tc.obj)
			} else {
				err = cl.List(ctx, tc.list)
			}
			if allowed := !apierrors.IsForbidden(err); allowed != tc.allowed || (tc.allowed && err != nil) {
				t.Errorf("%s may %s: got %v (err %v), want %v", tc.sa, tc.op, allowed, err, tc.allowed)
			}
			if tc.sa == "stork-agent" && tc.list != nil {
				// Nor read one by name outside Stork's namespace (the location's credentials).
				err := cl.Get(ctx, client.ObjectKey{Namespace: "app", Name: "minio"}, &corev1.Secret{})
				if !apierrors.IsForbidden(err) {
					t.Errorf("stork-agent may read Secret app/minio: %v", err)
				}
			}
		}
	})
}

func mustCreate(t *testing.T, c *harness.Cluster, obj client.Object) {
	t.Helper()
	if err := c.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// makeLocalVolume is Cluster.LocalVolume for a test.
func makeLocalVolume(t *testing.T, c *harness.Cluster, ns, claim, node string, labels map[string]string) string {
	t.Helper()
	dir, err := c.LocalVolume(context.Background(), ns, claim, node, labels)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func waitSnapshot(t *testing.T, c *harness.Cluster, s *storkv1.Snapshot, want storkv1.SnapshotPhase) {
	t.Helper()
	err := c.WaitFor(context.Background(), 2*time.Minute, fmt.Sprintf("Snapshot %s to be %s", s.Name, want), func(ctx context.Context) (bool, error) {
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
			return false, err
		}
		if p := s.Status.Phase; (p == storkv1.SnapshotReady || p == storkv1.SnapshotFailed) && p != want {
			return false, fmt.Errorf("Snapshot %s is %s: %+v", s.Name, p, s.Status)
		}
		return s.Status.Phase == want, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func waitRestore(t *testing.T, c *harness.Cluster, r *storkv1.Restore, want storkv1.RestorePhase) {
	t.Helper()
	err := c.WaitFor(context.Background(), 2*time.Minute, fmt.Sprintf("Restore %s to be %s", r.Name, want), func(ctx context.Context) (bool, error) {
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(r), r); err != nil {
			return false, err
		}
		switch p := r.Status.Phase; p {
		case storkv1.RestoreCompleted, storkv1.RestorePartiallyFailed, storkv1.RestoreFailed:
			if p != want {
				return false, fmt.Errorf("Restore %s is %s: %+v", r.Name, p, r.Status)
			}
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("%v\nlast status: %+v", err, r.Status)
	}
}

// writeTree writes an application's kind of data: nested files of random content, one large,
// a sparse file, a symlink, odd modes and owners, and old mtimes.
func writeTree(t *testing.T, dir string, seed uint64, large int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	sub := filepath.Join(dir, fmt.Sprintf("gen-%d", seed), "nested")
	if err := os.MkdirAll(sub, 0o750); err != nil {
		t.Fatal(err)
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	files := map[string][]byte{
		fmt.Sprintf("gen-%d/large.bin", seed):    random(large),
		fmt.Sprintf("gen-%d/nested/a.txt", seed): []byte(strings.Repeat("row\n", 1000)),
		fmt.Sprintf("gen-%d/nested/empty", seed): nil,
		fmt.Sprintf("gen-%d/nested/small", seed): random(100),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	sparse := filepath.Join(dir, fmt.Sprintf("gen-%d/sparse.db", seed))
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("head"), 0)
	f.WriteAt([]byte("tail"), 8<<20)
	f.Close()
	if err := os.Symlink("nested/a.txt", filepath.Join(dir, fmt.Sprintf("gen-%d/link", seed))); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(dir, fmt.Sprintf("gen-%d/nested/small", seed)), 999, 998); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 6000, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, fmt.Sprintf("gen-%d/nested/a.txt", seed)), old, old); err != nil {
		t.Fatal(err)
	}
}

// copyTree copies with cp -a, independently of the code under test.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
}

// compareTrees checks that got has exactly want's entries, with equal content, type, mode,
// owner, mtime (not for directories, whose mtimes the test's own writes change) and link
// targets, and that sparse files stayed sparse.
func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.Walk(want, func(p string, wi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		seen[rel] = true
		gp := filepath.Join(got, rel)
		gi, err := os.Lstat(gp)
		if err != nil {
			t.Errorf("%s: missing in %s: %v", rel, got, err)
			return nil
		}
		ws, gs := wi.Sys().(*syscall.Stat_t), gi.Sys().(*syscall.Stat_t)
		if wi.Mode() != gi.Mode() || ws.Uid != gs.Uid || ws.Gid != gs.Gid {
			t.Errorf("%s: mode/owner %v %d:%d, want %v %d:%d", rel, gi.Mode(), gs.Uid, gs.Gid, wi.Mode(), ws.Uid, ws.Gid)
		}
		switch {
		case wi.Mode().IsRegular():
			if !wi.ModTime().Equal(gi.ModTime()) {
				t.Errorf("%s: mtime %v, want %v", rel, gi.ModTime(), wi.ModTime())
			}
			a, _ := os.ReadFile(p)
			b, _ := os.ReadFile(gp)
			if string(a) != string(b) {
				t.Errorf("%s: content differs (%d vs %d bytes)", rel, len(b), len(a))
			}
			if gs.Blocks > ws.Blocks+16 {
				t.Errorf("%s: %d blocks, the source has %d: holes were filled", rel, gs.Blocks, ws.Blocks)
			}
		case wi.Mode()&os.ModeSymlink != 0:
			a, _ := os.Readlink(p)
			b, _ := os.Readlink(gp)
			if a != b {
				t.Errorf("%s: link to %q, want %q", rel, b, a)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	filepath.Walk(got, func(p string, _ os.FileInfo, err error) error {
		if rel, _ := filepath.Rel(got, p); err == nil && !seen[rel] {
			t.Errorf("%s: in %s but not in the source", rel, got)
		}
		return nil
	})
}
