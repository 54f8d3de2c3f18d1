package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/internal/harness"
)

// TestRecoveryObjectives: a schedule with an RPO of one minute backs up once and is then
// suspended; a minute after the backup's capture RPOMet turns False with a Warning Event, the
// achieved RPO metric passes 60 s; resumed, its next backup turns RPOMet True again. Then a
// RestoreDrill restores the newest backup into a sandbox namespace, verifies every file, records
// an RTO that proves the schedule's RTO, and removes the sandbox; after a byte of every data pack
// in MinIO is flipped, the next drill fails naming a damaged pack, and the Backup, the schedule
// and the metrics say so. Last, the web dashboard shows all of it in headless Chromium to a user
// who may read namespace app, and none of it to one who may not (checkDashboard).
func TestRecoveryObjectives(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := harness.New(t)
	m, err := env.StartMinIO(ctx, "minio-rpo")
	if err != nil {
		t.Fatal(err)
	}
	c, err := env.StartCluster(ctx, harness.ClusterOptions{Name: "rpo", Nodes: harness.Nodes("n", "region-1", []string{"zone-a"}, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyManifests(ctx, harness.RBACOnly); err != nil {
		t.Fatal(err)
	}
	metricsPort, err := env.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dashArgs, dashAddr := dashboardArgs(t, env)
	if _, err := c.StartStork(ctx, append(dashArgs, fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort))...); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartAgent(ctx, "n-zone-a-1"); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}})
	writeTree(t, makeLocalVolume(t, c, "app", "data", "n-zone-a-1", nil), 3, 256<<10)
	location(t, c, m, "app", "loc")
	sched := &storkv1.SnapshotSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "db"},
		Spec: storkv1.SnapshotScheduleSpec{Schedule: "*/5 * * * * *",
			Template:   storkv1.SnapshotTemplate{Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "data"}, BackupLocation: "loc"}},
			Objectives: &storkv1.Objectives{RPO: &metav1.Duration{Duration: time.Minute}, RTO: &metav1.Duration{Duration: 10 * time.Minute}}}}
	mustCreate(t, c, sched)

	// waitRPO waits for RPOMet to have status want and returns the schedule.
	waitRPO := func(want metav1.ConditionStatus, timeout time.Duration) *storkv1.SnapshotSchedule {
		t.Helper()
		s := &storkv1.SnapshotSchedule{}
		err := c.WaitFor(ctx, timeout, "RPOMet "+string(want), func(ctx context.Context) (bool, error) {
			if err := c.Client.Get(ctx, client.ObjectKeyFromObject(sched), s); err != nil {
				return false, err
			}
			cnd := meta.FindStatusCondition(s.Status.Conditions, storkv1.ConditionRPOMet)
			return cnd != nil && cnd.Status == want && (want == metav1.ConditionFalse || s.Status.Protection.LastBackupName != ""), nil
		})
		if err != nil {
			t.Fatalf("%v: status %+v", err, s.Status)
		}
		return s
	}
	suspend := func(s *storkv1.SnapshotSchedule, on bool) {
		t.Helper()
		patch := client.MergeFrom(s.DeepCopy())
		s.Spec.Suspend = on
		if err := c.Client.Patch(ctx, s, patch); err != nil {
			t.Fatal(err)
		}
	}
	s := waitRPO(metav1.ConditionTrue, 2*time.Minute)
	suspend(s, true)
	if rto := meta.FindStatusCondition(s.Status.Conditions, storkv1.ConditionRTOMet); rto == nil || rto.Status != metav1.ConditionUnknown || rto.Reason != "NotProven" {
		t.Errorf("RTOMet %+v, want Unknown NotProven (no drill yet)", rto)
	}

	// Suspended, no run completes: the RPO runs out a minute after the newest capture.
	s = waitRPO(metav1.ConditionFalse, 3*time.Minute)
	p := s.Status.Protection
	cnd := meta.FindStatusCondition(s.Status.Conditions, storkv1.ConditionRPOMet)
	if cnd.Reason != "RPOMissed" || p.RPODeadline == nil || p.LastBackupCaptureTime == nil ||
		!p.RPODeadline.Time.Equal(p.LastBackupCaptureTime.Add(time.Minute)) || time.Since(p.RPODeadline.Time) > 30*time.Second {
		t.Errorf("RPOMet %+v, protection %+v: want RPOMissed at the capture + 1m, noticed within 30 s", cnd, p)
	}
	waitEvent(ctx, t, c, "app", "db", "RPOMissed")
	if out := storkctl(t, c, "status", "-n", "app"); !regexp.MustCompile(`app\s+db\s+\S+\s+\S+ ago\s+1m0s\s+NO \(RPOMissed\)\s+10m0s\s+-\s+unknown \(NotProven\)\s+suspended`).MatchString(out) {
		t.Errorf("storkctl status:\n%s", out)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if m := regexp.MustCompile(`stork_app_rpo_seconds\{namespace="app",schedule="db"\} (\S+)`).FindSubmatch(body); m == nil {
		t.Errorf("no stork_app_rpo_seconds for app/db")
	} else if v, _ := strconv.ParseFloat(string(m[1]), 64); v < 60 {
		t.Errorf("stork_app_rpo_seconds %v, want over 60 once the RPO is missed", v)
	}

	// Resumed: the next backup meets the RPO again.
	suspend(s, false)
	s = waitRPO(metav1.ConditionTrue, 2*time.Minute)
	if s.Status.Protection.LastBackupName == p.LastBackupName {
		t.Errorf("RPOMet True again with the same backup %s", p.LastBackupName)
	}
	waitEvent(ctx, t, c, "app", "db", "WithinRPO")

	// Drills run against a fixed set of backups: suspended, once every run has finished, the
	// newest Completed backup no longer changes. A run that fired just before the suspension
	// may not have made its Snapshot yet (a CI run drilled a backup made 5 s after the one
	// this picked), so the answer must also hold for longer than the schedule's period.
	suspend(s, true)
	var newest, seen string
	var seenSince time.Time
	err = c.WaitFor(ctx, 2*time.Minute, "the schedule's backups to finish", func(ctx context.Context) (bool, error) {
		var snaps storkv1.SnapshotList
		if err := c.Client.List(ctx, &snaps, client.InNamespace("app")); err != nil {
			return false, err
		}
		for _, sn := range snaps.Items {
			if sn.Status.Phase == storkv1.SnapshotPending || sn.Status.Phase == storkv1.SnapshotInProgress || sn.Status.Phase == "" {
				return false, nil
			}
		}
		var list storkv1.BackupList
		if err := c.Client.List(ctx, &list, client.InNamespace("app")); err != nil {
			return false, err
		}
		newest = ""
		var at time.Time
		for i := range list.Items {
			b := &list.Items[i]
			switch b.Status.Phase {
			case storkv1.BackupCompleted:
				if t := b.CaptureTime(); newest == "" || t.After(at) || (t.Equal(at) && b.Name > newest) {
					newest, at = b.Name, t
				}
			case storkv1.BackupFailed, storkv1.BackupPartiallyFailed:
			default:
				return false, nil
			}
		}
		if newest != seen {
			seen, seenSince = newest, time.Now()
			return false, nil
		}
		return newest != "" && time.Since(seenSince) > 7*time.Second, nil // the period is 5 s
	})
	if err != nil {
		t.Fatal(err)
	}
	metrics := func() string {
		t.Helper()
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}

	passed := drill(ctx, t, c, "weekly")
	if passed.Result != storkv1.DrillPassed || passed.BackupName != newest || passed.RTO == nil || passed.RTO.Duration <= 0 ||
		passed.VerifiedFiles < 5 || passed.VerifiedBytes < 256<<10 {
		t.Fatalf("drill run %+v: want Passed for %s, an RTO, every file verified", passed, newest)
	}
	t.Logf("drill passed: Backup %s restored into %s, RTO %s, %d files and %d bytes verified", passed.BackupName, passed.Sandbox, passed.RTO.Duration, passed.VerifiedFiles, passed.VerifiedBytes)
	sched = &storkv1.SnapshotSchedule{}
	err = c.WaitFor(ctx, time.Minute, "RTOMet True from the drill", func(ctx context.Context) (bool, error) {
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: "db"}, sched); err != nil {
			return false, err
		}
		cnd := meta.FindStatusCondition(sched.Status.Conditions, storkv1.ConditionRTOMet)
		return cnd != nil && cnd.Status == metav1.ConditionTrue && cnd.Reason == "WithinRTO", nil
	})
	if err != nil || sched.Status.Protection.LastProvenRTO == nil || sched.Status.Protection.LastProvenRTO.Duration != passed.RTO.Duration {
		t.Fatalf("%v: protection %+v, want the drill's RTO %v proven", err, sched.Status.Protection, passed.RTO)
	}
	page := metrics()
	for _, want := range []string{`stork_app_last_restore_proven_timestamp{namespace="app",schedule="db"} `, `stork_drill_last_run_passed{drill="weekly",namespace="app"} 1`} {
		if !strings.Contains(page, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	b := &storkv1.Backup{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: newest}, b); err != nil {
		t.Fatal(err)
	}
	if cnd := meta.FindStatusCondition(b.Status.Conditions, storkv1.ConditionVerified); cnd == nil || cnd.Status != metav1.ConditionTrue {
		t.Errorf("Backup %s Verified %+v", newest, cnd)
	}

	// RBAC lets the controller delete namespaces; the admission policy shipped beside it narrows
	// that to drill sandboxes.
	err = asStork(t, c).Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, client.DryRunAll)
	if err == nil || !strings.Contains(err.Error(), "only the sandbox namespaces of restore drills") {
		t.Errorf("the controller's identity deleting namespace app (dry run): %v, want refused by the admission policy", err)
	}

	// A byte flipped in every data pack: the next drill fails, naming one.
	damaged := 0
	for obj := range m.Client.ListObjects(ctx, m.Bucket, minio.ListObjectsOptions{Prefix: c.Name + "/data/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		flipByte(ctx, t, m, obj.Key)
		damaged++
	}
	if damaged == 0 {
		t.Fatal("no data packs under " + c.Name + "/data/")
	}
	failed := drill(ctx, t, c, "after-damage")
	if failed.Result != storkv1.DrillFailed || !regexp.MustCompile(`damaged object data/[0-9a-f]{2}/[0-9a-f]+`).MatchString(failed.Message) {
		t.Fatalf("drill after the damage %+v: want Failed naming a damaged data pack", failed)
	}
	t.Logf("drill after %d packs were damaged: %s: %s", damaged, failed.Reason, failed.Message)
	waitEvent(ctx, t, c, "app", "after-damage", "DrillFailed")
	waitEvent(ctx, t, c, "app", newest, "DrillFailed")
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: newest}, b); err != nil {
		t.Fatal(err)
	}
	if cnd := meta.FindStatusCondition(b.Status.Conditions, storkv1.ConditionVerified); cnd == nil || cnd.Status != metav1.ConditionFalse || !strings.Contains(cnd.Message, "damaged object data/") {
		t.Errorf("Backup %s Verified %+v, want False naming the damaged pack", newest, cnd)
	}
	err = c.WaitFor(ctx, time.Minute, "RTOMet False DrillFailed", func(ctx context.Context) (bool, error) {
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: "db"}, sched); err != nil {
			return false, err
		}
		cnd := meta.FindStatusCondition(sched.Status.Conditions, storkv1.ConditionRTOMet)
		return cnd != nil && cnd.Status == metav1.ConditionFalse && cnd.Reason == "DrillFailed", nil
	})
	if err != nil {
		t.Fatalf("%v: conditions %+v", err, sched.Status.Conditions)
	}
	if body := metrics(); !strings.Contains(body, `stork_drill_last_run_passed{drill="after-damage",namespace="app"} 0`) {
		t.Error("stork_drill_last_run_passed is not 0 after the failed drill")
	}

	checkDashboard(ctx, t, c, dashAddr)
}

// drill runs a one-off RestoreDrill of schedule db (volumes only) and returns its run, once its
// sandbox namespace and Restore are gone.
func drill(ctx context.Context, t *testing.T, c *harness.Cluster, name string) storkv1.DrillRun {
	t.Helper()
	d := &storkv1.RestoreDrill{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name},
		Spec: storkv1.RestoreDrillSpec{ScheduleName: "db", VolumesOnly: true}}
	mustCreate(t, c, d)
	err := c.WaitFor(ctx, 3*time.Minute, "RestoreDrill "+name+" to finish", func(ctx context.Context) (bool, error) {
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(d), d); err != nil {
			return false, err
		}
		return len(d.Status.History) > 0, nil
	})
	if err != nil {
		t.Fatalf("%v: status %+v", err, d.Status)
	}
	run := d.Status.History[0]
	err = c.WaitFor(ctx, 2*time.Minute, "sandbox "+run.Sandbox+" and its Restore to be deleted", func(ctx context.Context) (bool, error) {
		err := c.Client.Get(ctx, client.ObjectKey{Name: run.Sandbox}, &corev1.Namespace{})
		if !apierrors.IsNotFound(err) {
			return false, client.IgnoreNotFound(err)
		}
		err = c.Client.Get(ctx, client.ObjectKey{Namespace: harness.StorkNamespace, Name: run.RestoreName}, &storkv1.Restore{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// flipByte inverts one byte in the middle of an object in MinIO.
func flipByte(ctx context.Context, t *testing.T, m *harness.MinIO, key string) {
	t.Helper()
	o, err := m.Client.GetObject(ctx, m.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(o)
	o.Close()
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if _, err := m.Client.PutObject(ctx, m.Bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
}
