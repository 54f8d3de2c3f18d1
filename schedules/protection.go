package schedules

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// Recovery objectives. A schedule with spec.objectives reports, at every reconcile, its newest
// Completed Backup (by the time its data was captured), the time its RPO runs out
// (status.protection.rpoDeadline) and the conditions RPOMet and RTOMet; a change of either
// condition is an Event. The reconcile is requeued for the deadline, so that RPOMet turns
// False when the RPO is missed, not at the next run.

// protect evaluates sched's objectives against its backups (oldest first) at now and returns
// how long until the status would change by time alone (0: never).
func (r *Reconciler) protect(sched *storkv1.SnapshotSchedule, backups []storkv1.Backup, restores []storkv1.Restore, drills []storkv1.RestoreDrill, cs cron.Schedule, loc *time.Location, now time.Time) time.Duration {
	st, obj := &sched.Status, sched.Spec.Objectives
	if obj == nil {
		st.Protection = nil
		meta.RemoveStatusCondition(&st.Conditions, storkv1.ConditionRPOMet)
		meta.RemoveStatusCondition(&st.Conditions, storkv1.ConditionRTOMet)
		r.Metrics.forget(types.NamespacedName{Namespace: sched.Namespace, Name: sched.Name})
		return 0
	}
	p := &storkv1.Protection{}
	lastDrill := proven(p, sched, drills)
	var captured time.Time
	var newest *storkv1.Backup
	for i := range backups {
		b := &backups[i]
		if t := b.CaptureTime(); b.Status.Phase == storkv1.BackupCompleted && !t.Before(captured) {
			captured, p.LastBackupName, newest = t, b.Name, b
		}
	}
	p.EstimatedRTO = estimateRTO(newest, backups, restores)
	if p.LastBackupName != "" {
		p.LastBackupCaptureTime = &metav1.Time{Time: captured}
	}
	st.Protection = p
	r.Metrics.set(sched, captured, p)

	var wake time.Duration
	if obj.RPO == nil {
		meta.RemoveStatusCondition(&st.Conditions, storkv1.ConditionRPOMet)
	} else {
		rpo := obj.RPO.Duration
		// A new schedule has one RPO to complete its first backup.
		from, what := sched.CreationTimestamp.Time, "no backup has completed since the schedule was created"
		if p.LastBackupName != "" {
			from, what = captured, fmt.Sprintf("newest Completed backup %s was captured at %s", p.LastBackupName, captured.UTC().Format(time.RFC3339))
		}
		deadline := from.Add(rpo)
		p.RPODeadline = &metav1.Time{Time: deadline}
		met, reason, msg := now.Before(deadline), "WithinRPO", fmt.Sprintf("%s: within the RPO of %s until %s", what, rpo, deadline.UTC().Format(time.RFC3339))
		if !met {
			reason, msg = "RPOMissed", fmt.Sprintf("%s, %s ago: the RPO of %s was missed at %s", what, now.Sub(from).Round(time.Second), rpo, deadline.UTC().Format(time.RFC3339))
		} else {
			wake = deadline.Sub(now)
		}
		if gap := runGap(cs, loc, now); gap > rpo {
			msg += fmt.Sprintf("; runs are %s apart, longer than the RPO: it will be missed between runs", gap)
		}
		r.setTracked(sched, storkv1.ConditionRPOMet, met, reason, msg)
	}
	switch {
	case obj.RTO == nil:
		meta.RemoveStatusCondition(&st.Conditions, storkv1.ConditionRTOMet)
	case p.EstimatedRTO != nil && p.EstimatedRTO.Duration > obj.RTO.Duration:
		// Whatever a drill proved before, the newest backup is too big for the RTO at the
		// throughput restores reach.
		r.setTracked(sched, storkv1.ConditionRTOMet, false, "RestoreTooSlow", fmt.Sprintf(
			"restoring the newest backup %s would take about %s at the throughput of the last restore of this schedule's backups, longer than the RTO of %s",
			p.LastBackupName, p.EstimatedRTO.Duration, obj.RTO.Duration))
	case lastDrill != nil && lastDrill.Result == storkv1.DrillFailed:
		r.setTracked(sched, storkv1.ConditionRTOMet, false, "DrillFailed", fmt.Sprintf("the last restore drill (%s) failed: %s", p.LastDrill, lastDrill.Message))
	case p.LastProvenRTO == nil:
		msg := "no restore drill has restored a backup of this schedule yet: the RTO of " + obj.RTO.Duration.String() + " is not proven"
		if p.EstimatedRTO != nil {
			msg += fmt.Sprintf(" (restores so far suggest about %s)", p.EstimatedRTO.Duration)
		}
		conditionUnknown(sched, storkv1.ConditionRTOMet, "NotProven", msg)
	default:
		rto, proven := obj.RTO.Duration, p.LastProvenRTO.Duration
		if proven <= rto {
			r.setTracked(sched, storkv1.ConditionRTOMet, true, "WithinRTO", fmt.Sprintf("the last restore drill took %s, within the RTO of %s", proven, rto))
		} else {
			r.setTracked(sched, storkv1.ConditionRTOMet, false, "RTOMissed", fmt.Sprintf("the last restore drill took %s, longer than the RTO of %s", proven, rto))
		}
	}
	return wake
}

// proven fills in p what the schedule's drills proved: the recovery time of the newest passed
// run and when it finished, and the newest finished run, which it returns (nil: none).
func proven(p *storkv1.Protection, sched *storkv1.SnapshotSchedule, drills []storkv1.RestoreDrill) *storkv1.DrillRun {
	var last, passed *storkv1.DrillRun
	var lastName string
	newer := func(a, b *storkv1.DrillRun) bool {
		return b == nil || (a.CompletionTime != nil && b.CompletionTime != nil && a.CompletionTime.After(b.CompletionTime.Time))
	}
	for i := range drills {
		d := &drills[i]
		if d.Spec.ScheduleName != sched.Name {
			continue
		}
		if len(d.Status.History) > 0 && newer(&d.Status.History[0], last) {
			last, lastName = &d.Status.History[0], d.Name
		}
		if lp := d.Status.LastPassed; lp != nil && lp.RTO != nil && newer(lp, passed) {
			passed = lp
		}
	}
	if passed != nil {
		p.LastProvenRTO, p.LastProvenTime = passed.RTO, passed.CompletionTime
	}
	if last != nil {
		p.LastDrill = fmt.Sprintf("%s: %s (%s) at %s", lastName, last.Result, last.Reason, last.CompletionTime.UTC().Format(time.RFC3339))
	}
	return last
}

// estimateRTO is how long restoring newest would take at the throughput (bytes restored per
// second from start to completion) of the newest Completed Restore of one of backups; nil
// when either is missing.
func estimateRTO(newest *storkv1.Backup, backups []storkv1.Backup, restores []storkv1.Restore) *metav1.Duration {
	if newest == nil || newest.Status.Progress.BytesTotal == 0 {
		return nil
	}
	ours := map[string]bool{}
	for _, b := range backups {
		ours[b.Name] = true
	}
	var last *storkv1.Restore
	for i := range restores {
		rs := &restores[i]
		if rs.Status.Phase != storkv1.RestoreCompleted || !ours[rs.Spec.Source.BackupName] || rs.Status.StartTime == nil ||
			rs.Status.CompletionTime == nil || rs.Status.Progress.BytesDone == 0 {
			continue
		}
		if last == nil || rs.Status.CompletionTime.After(last.Status.CompletionTime.Time) {
			last = rs
		}
	}
	if last == nil {
		return nil
	}
	took := last.Status.CompletionTime.Sub(last.Status.StartTime.Time)
	perByte := float64(max(took, time.Second)) / float64(last.Status.Progress.BytesDone)
	return &metav1.Duration{Duration: time.Duration(perByte * float64(newest.Status.Progress.BytesTotal)).Round(time.Second)}
}

// setTracked sets a condition and records an Event when its status changes (not when it is
// first set True: a schedule meeting its objectives from the start is not news).
func (r *Reconciler) setTracked(sched *storkv1.SnapshotSchedule, t string, ok bool, reason, msg string) {
	was := meta.FindStatusCondition(sched.Status.Conditions, t)
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	if (was == nil && !ok) || (was != nil && was.Status != status) {
		kind := corev1.EventTypeWarning
		if ok {
			kind = corev1.EventTypeNormal
		}
		r.event(sched, kind, reason, msg)
	}
	setCondition(sched, t, ok, reason, msg)
}

func conditionUnknown(sched *storkv1.SnapshotSchedule, t, reason, msg string) {
	meta.SetStatusCondition(&sched.Status.Conditions, metav1.Condition{Type: t, Status: metav1.ConditionUnknown,
		ObservedGeneration: sched.Generation, Reason: reason, Message: msg})
}

// runGap is the longest time between two of the schedule's next few runs after now: for
// "@every 5m" 5m, for "0 2 * * 1-5" the weekend.
func runGap(cs cron.Schedule, loc *time.Location, now time.Time) time.Duration {
	var gap time.Duration
	t := cs.Next(now.In(loc))
	for range 16 {
		n := cs.Next(t)
		if n.IsZero() {
			break
		}
		gap, t = max(gap, n.Sub(t)), n
	}
	return gap
}

// Metrics exports each schedule's protection to Prometheus. The achieved RPO is computed at
// scrape time, so it grows between reconciles as it does in reality.
type Metrics struct {
	Clock clock.PassiveClock

	mu   sync.Mutex
	apps map[types.NamespacedName]appProtection
}

type appProtection struct {
	rpo, rto       time.Duration // objectives; 0 when not set
	captured       time.Time     // of the newest Completed backup; zero if none
	provenRTO      time.Duration // of the last passed drill; 0 if none
	provenAt       time.Time     // when it finished
	scheduleCreate time.Time
}

var (
	rpoDesc = prometheus.NewDesc("stork_app_rpo_seconds",
		"Achieved recovery point: seconds since the newest Completed backup of the schedule's application was captured (since the schedule's creation if none).",
		[]string{"namespace", "schedule"}, nil)
	rpoObjectiveDesc = prometheus.NewDesc("stork_app_rpo_objective_seconds", "The schedule's declared RPO.", []string{"namespace", "schedule"}, nil)
	rtoObjectiveDesc = prometheus.NewDesc("stork_app_rto_objective_seconds", "The schedule's declared RTO.", []string{"namespace", "schedule"}, nil)
	lastBackupDesc   = prometheus.NewDesc("stork_app_last_backup_capture_timestamp_seconds",
		"When the newest Completed backup of the schedule's application was captured (Unix time).", []string{"namespace", "schedule"}, nil)
	provenRTODesc = prometheus.NewDesc("stork_app_last_proven_rto_seconds", "Recovery time measured by the last passed restore drill of the schedule's backups.", []string{"namespace", "schedule"}, nil)
	provenAtDesc  = prometheus.NewDesc("stork_app_last_restore_proven_timestamp",
		"When a restore drill last restored and verified a backup of the schedule's application (Unix time).", []string{"namespace", "schedule"}, nil)
)

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{rpoDesc, rpoObjectiveDesc, rtoObjectiveDesc, lastBackupDesc, provenRTODesc, provenAtDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for k, a := range m.apps {
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, k.Namespace, k.Name)
		}
		from := a.captured
		if from.IsZero() {
			from = a.scheduleCreate
		} else {
			gauge(lastBackupDesc, float64(a.captured.UnixNano())/1e9)
		}
		gauge(rpoDesc, now.Sub(from).Seconds())
		if a.rpo > 0 {
			gauge(rpoObjectiveDesc, a.rpo.Seconds())
		}
		if a.rto > 0 {
			gauge(rtoObjectiveDesc, a.rto.Seconds())
		}
		if a.provenRTO > 0 {
			gauge(provenRTODesc, a.provenRTO.Seconds())
			gauge(provenAtDesc, float64(a.provenAt.UnixNano())/1e9)
		}
	}
}

func (m *Metrics) now() time.Time {
	if m.Clock == nil {
		return time.Now()
	}
	return m.Clock.Now()
}

func (m *Metrics) set(sched *storkv1.SnapshotSchedule, captured time.Time, p *storkv1.Protection) {
	if m == nil {
		return
	}
	a := appProtection{captured: captured, scheduleCreate: sched.CreationTimestamp.Time}
	if o := sched.Spec.Objectives; o.RPO != nil {
		a.rpo = o.RPO.Duration
	}
	if o := sched.Spec.Objectives; o.RTO != nil {
		a.rto = o.RTO.Duration
	}
	if p.LastProvenRTO != nil && p.LastProvenTime != nil {
		a.provenRTO, a.provenAt = p.LastProvenRTO.Duration, p.LastProvenTime.Time
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.apps == nil {
		m.apps = map[types.NamespacedName]appProtection{}
	}
	m.apps[types.NamespacedName{Namespace: sched.Namespace, Name: sched.Name}] = a
}

func (m *Metrics) forget(key types.NamespacedName) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.apps, key)
}
