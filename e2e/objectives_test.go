package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/internal/harness"
)

// TestRecoveryObjectives: a schedule with an RPO of one minute backs up once and is then
// suspended; a minute after the backup's capture RPOMet turns False with a Warning Event, the
// achieved RPO metric passes 60 s; resumed, its next backup turns RPOMet True again.
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
	if _, err := c.StartStork(ctx, fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort)); err != nil {
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
}
