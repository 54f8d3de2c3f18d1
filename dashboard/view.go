package dashboard

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/internal/units"
)

// The resources the dashboard shows, as SubjectAccessReview names them.
const (
	resSchedules = "snapshotschedules"
	resBackups   = "backups"
	resRestores  = "restores"
	resDrills    = "restoredrills"
	resLocations = "backuplocations"
)

// Badge is a status shown as a coloured word; Class is ok, bad or unknown, Title the
// condition's message (a tooltip).
type Badge struct{ Text, Class, Title string }

// AppRow is one protected application: a SnapshotSchedule and how it stands against its
// objectives.
type AppRow struct {
	Namespace, Name                     string
	RPO, RTO                            string
	RPOMet, RTOMet                      Badge
	LastBackup, Captured                string
	ProvenRTO, LastProven, EstimatedRTO string
	Next, LastDrill                     string
}

// WorkRow is a Backup or Restore in progress.
type WorkRow struct {
	Kind, Namespace, Name, Phase string
	Percent                      int
	Done, Total                  string
	Started                      string
	// Retrying says which step is failing and being tried again, when one is (status.retry).
	Retrying string
}

// DrillRow is one finished (or running) drill run.
type DrillRow struct {
	Namespace, Drill, Backup string
	Result                   Badge
	RTO, Finished            string
	Files, Bytes             string
}

// LocationRow is one BackupLocation's health.
type LocationRow struct {
	Namespace, Name string
	Health          Badge
	Backups         int32
	Validated       string
	LastPrune       string
}

// BackupRow is one Backup of an application.
type BackupRow struct {
	Name     string
	Phase    Badge
	Started  string
	Duration string
	Size     string
	Files    int64
	Verified Badge
	start    time.Time
	took     time.Duration
	bytes    int64
}

// Overview is the front page.
type Overview struct {
	Apps      []AppRow
	Running   []WorkRow
	Drills    []DrillRow
	Locations []LocationRow
}

// AppPage is one application's page.
type AppPage struct {
	App          AppRow
	Backups      []BackupRow
	Drills       []DrillRow
	SizePlot     *Plot
	DurationPlot *Plot
}

// reader builds pages for one user from the cache.
type reader struct {
	c    client.Reader
	auth *Auth
	user *User
	now  time.Time
}

// list lists every object of a kind and returns where the user may see it.
func (r *reader) list(ctx context.Context, resource string, list client.ObjectList, opts ...client.ListOption) (visible, error) {
	if err := r.c.List(ctx, list, opts...); err != nil {
		return visible{}, fmt.Errorf("listing %s: %w", resource, err)
	}
	seen := map[string]bool{}
	var namespaces []string
	if err := meta.EachListItem(list, func(o runtime.Object) error {
		if ns := o.(client.Object).GetNamespace(); !seen[ns] {
			seen[ns] = true
			namespaces = append(namespaces, ns)
		}
		return nil
	}); err != nil {
		return visible{}, err
	}
	if len(namespaces) == 0 {
		return visible{}, nil
	}
	return r.auth.Visible(ctx, r.user, resource, namespaces)
}

func (r *reader) overview(ctx context.Context) (*Overview, error) {
	o := &Overview{}
	var scheds storkv1.SnapshotScheduleList
	vis, err := r.list(ctx, resSchedules, &scheds)
	if err != nil {
		return nil, err
	}
	for i := range scheds.Items {
		if s := &scheds.Items[i]; vis.has(s.Namespace) {
			o.Apps = append(o.Apps, r.app(s))
		}
	}
	sort.Slice(o.Apps, func(i, j int) bool {
		return key(o.Apps[i].Namespace, o.Apps[i].Name) < key(o.Apps[j].Namespace, o.Apps[j].Name)
	})

	var backups storkv1.BackupList
	if vis, err = r.list(ctx, resBackups, &backups); err != nil {
		return nil, err
	}
	for _, b := range backups.Items {
		if vis.has(b.Namespace) && !backupFinal(b.Status.Phase) {
			o.Running = append(o.Running, r.work("Backup", b.ObjectMeta, string(b.Status.Phase), b.Status.Progress, b.Status.StartTime, b.Status.Retry))
		}
	}
	var restores storkv1.RestoreList
	if vis, err = r.list(ctx, resRestores, &restores); err != nil {
		return nil, err
	}
	for _, rs := range restores.Items {
		if vis.has(rs.Namespace) && !restoreFinal(rs.Status.Phase) {
			o.Running = append(o.Running, r.work("Restore", rs.ObjectMeta, string(rs.Status.Phase), rs.Status.Progress, rs.Status.StartTime, rs.Status.Retry))
		}
	}

	var drills storkv1.RestoreDrillList
	if vis, err = r.list(ctx, resDrills, &drills); err != nil {
		return nil, err
	}
	for _, d := range drills.Items {
		if vis.has(d.Namespace) {
			o.Drills = append(o.Drills, r.drillRows(&d)...)
		}
	}
	sortDrills(o.Drills)

	var locs storkv1.BackupLocationList
	if vis, err = r.list(ctx, resLocations, &locs); err != nil {
		return nil, err
	}
	for _, l := range locs.Items {
		if vis.has(l.Namespace) {
			o.Locations = append(o.Locations, r.location(&l))
		}
	}
	sort.Slice(o.Locations, func(i, j int) bool {
		return key(o.Locations[i].Namespace, o.Locations[i].Name) < key(o.Locations[j].Namespace, o.Locations[j].Name)
	})
	return o, nil
}

// errNotFound is a page for an object that does not exist or that the user may not see: the two
// are not told apart, so that a page does not reveal what exists where the user may not look.
var errNotFound = fmt.Errorf("no such application, or you may not see it")

func (r *reader) appPage(ctx context.Context, ns, name string) (*AppPage, error) {
	ok, err := r.auth.MayList(ctx, r.user, resSchedules, ns)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errNotFound
	}
	sched := &storkv1.SnapshotSchedule{}
	if err := r.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, sched); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return nil, errNotFound
		}
		return nil, fmt.Errorf("reading SnapshotSchedule %s/%s: %w", ns, name, err)
	}
	p := &AppPage{App: r.app(sched)}
	if ok, err := r.auth.MayList(ctx, r.user, resBackups, ns); err != nil {
		return nil, err
	} else if ok {
		var list storkv1.BackupList
		if err := r.c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{storkv1.LabelScheduleUID: string(sched.UID)}); err != nil {
			return nil, fmt.Errorf("listing the Backups of SnapshotSchedule %s/%s: %w", ns, name, err)
		}
		for i := range list.Items {
			p.Backups = append(p.Backups, r.backup(&list.Items[i]))
		}
		// Newest first in the table; the plots run oldest to newest, left to right.
		sort.Slice(p.Backups, func(i, j int) bool { return p.Backups[i].start.After(p.Backups[j].start) })
		p.SizePlot, p.DurationPlot = historyPlots(p.Backups)
	}
	if ok, err := r.auth.MayList(ctx, r.user, resDrills, ns); err != nil {
		return nil, err
	} else if ok {
		var list storkv1.RestoreDrillList
		if err := r.c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("listing the RestoreDrills of namespace %s: %w", ns, err)
		}
		for i := range list.Items {
			if list.Items[i].Spec.ScheduleName == name {
				p.Drills = append(p.Drills, r.drillRows(&list.Items[i])...)
			}
		}
		sortDrills(p.Drills)
	}
	return p, nil
}

func (r *reader) app(s *storkv1.SnapshotSchedule) AppRow {
	a := AppRow{Namespace: s.Namespace, Name: s.Name, RPO: "-", RTO: "-", LastBackup: "-", Captured: "-", ProvenRTO: "-",
		LastProven: "-", EstimatedRTO: "-", Next: "-", LastDrill: "-",
		RPOMet: condition(s.Status.Conditions, storkv1.ConditionRPOMet), RTOMet: condition(s.Status.Conditions, storkv1.ConditionRTOMet)}
	if o := s.Spec.Objectives; o != nil {
		if o.RPO != nil {
			a.RPO = o.RPO.Duration.String()
		}
		if o.RTO != nil {
			a.RTO = o.RTO.Duration.String()
		}
	}
	if p := s.Status.Protection; p != nil {
		if p.LastBackupName != "" {
			a.LastBackup = p.LastBackupName
		}
		a.Captured = r.ago(p.LastBackupCaptureTime)
		if p.LastProvenRTO != nil {
			a.ProvenRTO = p.LastProvenRTO.Duration.String()
		}
		a.LastProven = r.ago(p.LastProvenTime)
		if p.EstimatedRTO != nil {
			a.EstimatedRTO = p.EstimatedRTO.Duration.String()
		}
		if p.LastDrill != "" {
			a.LastDrill = p.LastDrill
		}
	}
	switch {
	case s.Spec.Suspend:
		a.Next = "suspended"
	case s.Status.NextScheduleTime != nil:
		a.Next = "in " + duration.HumanDuration(s.Status.NextScheduleTime.Sub(r.now))
	}
	return a
}

func (r *reader) work(kind string, om metav1.ObjectMeta, phase string, p storkv1.Progress, started *metav1.Time, rt *storkv1.Retry) WorkRow {
	w := WorkRow{Kind: kind, Namespace: om.Namespace, Name: om.Name, Phase: phase, Done: units.Bytes(p.BytesDone), Total: "?", Started: r.ago(started)}
	if rt != nil {
		w.Retrying = fmt.Sprintf("%s failed %d times (%s); tried until %s", rt.Reason, rt.Attempts, rt.Message, rt.GiveUpTime.UTC().Format(time.DateTime))
	}
	if phase == "" {
		w.Phase = "Pending"
	}
	if p.BytesTotal > 0 {
		w.Total = units.Bytes(p.BytesTotal)
		w.Percent = int(min(100, p.BytesDone*100/p.BytesTotal))
	}
	return w
}

func (r *reader) drillRows(d *storkv1.RestoreDrill) []DrillRow {
	runs := d.Status.History
	if d.Status.Current != nil {
		runs = append([]storkv1.DrillRun{*d.Status.Current}, runs...)
	}
	rows := make([]DrillRow, 0, len(runs))
	for _, run := range runs {
		row := DrillRow{Namespace: d.Namespace, Drill: d.Name, Backup: run.BackupName, RTO: "-", Finished: "running",
			Files: strconv.FormatInt(run.VerifiedFiles, 10), Bytes: units.Bytes(run.VerifiedBytes)}
		row.Result = Badge{Text: string(run.Result), Class: "unknown", Title: run.Message}
		if run.Result == "" {
			row.Result.Text = string(storkv1.DrillRunning)
		}
		switch run.Result {
		case storkv1.DrillPassed:
			row.Result.Class = "ok"
		case storkv1.DrillFailed:
			row.Result.Class = "bad"
			if run.Reason != "" {
				row.Result.Text += " (" + run.Reason + ")"
			}
		}
		if run.RTO != nil {
			row.RTO = run.RTO.Duration.Round(time.Millisecond).String()
		}
		if run.CompletionTime != nil {
			row.Finished = r.ago(run.CompletionTime)
		}
		rows = append(rows, row)
	}
	return rows
}

// sortDrills orders the rows by drill, keeping each drill's runs as drillRows made them: the
// running one first, then its history, newest first.
func sortDrills(rows []DrillRow) {
	sort.SliceStable(rows, func(i, j int) bool {
		return key(rows[i].Namespace, rows[i].Drill) < key(rows[j].Namespace, rows[j].Drill)
	})
}

func (r *reader) location(l *storkv1.BackupLocation) LocationRow {
	row := LocationRow{Namespace: l.Namespace, Name: l.Name, Backups: l.Status.Backups, Validated: r.ago(l.Status.LastValidationTime),
		LastPrune: "-", Health: Badge{Text: string(l.Status.Phase), Class: "unknown"}}
	if row.Health.Text == "" {
		row.Health.Text = string(storkv1.BackupLocationPending)
	}
	switch l.Status.Phase {
	case storkv1.BackupLocationAvailable:
		row.Health.Class = "ok"
	case storkv1.BackupLocationUnavailable:
		row.Health.Class = "bad"
	}
	if c := meta.FindStatusCondition(l.Status.Conditions, storkv1.ConditionAvailable); c != nil {
		row.Health.Title = c.Message
	}
	if l.Status.LastPruneResult != "" {
		row.LastPrune = l.Status.LastPruneResult
	}
	return row
}

func (r *reader) backup(b *storkv1.Backup) BackupRow {
	row := BackupRow{Name: b.Name, Phase: Badge{Text: string(b.Status.Phase), Class: "unknown"}, Started: "-", Duration: "-",
		Size: units.Bytes(b.Status.Progress.BytesTotal), Files: b.Status.Progress.ItemsTotal, bytes: b.Status.Progress.BytesTotal,
		Verified: condition(b.Status.Conditions, storkv1.ConditionVerified)}
	row.start = b.CreationTimestamp.Time
	switch b.Status.Phase {
	case storkv1.BackupCompleted:
		row.Phase.Class = "ok"
	case storkv1.BackupFailed, storkv1.BackupPartiallyFailed, storkv1.BackupCancelled:
		row.Phase.Class = "bad"
		if c := meta.FindStatusCondition(b.Status.Conditions, storkv1.ConditionReady); c != nil {
			row.Phase.Title = c.Message
		}
	}
	if t := b.Status.StartTime; t != nil {
		row.start, row.Started = t.Time, t.UTC().Format(time.DateTime)
		if c := b.Status.CompletionTime; c != nil {
			row.took = c.Sub(t.Time)
			row.Duration = row.took.Round(time.Second / 10).String()
		}
	}
	return row
}

// condition is a condition as a badge: yes (ok), NO (reason) (bad), unknown, or "-" when absent.
func condition(conds []metav1.Condition, t string) Badge {
	c := meta.FindStatusCondition(conds, t)
	switch {
	case c == nil:
		return Badge{Text: "-", Class: "unknown"}
	case c.Status == metav1.ConditionTrue:
		return Badge{Text: "yes", Class: "ok", Title: c.Message}
	case c.Status == metav1.ConditionFalse:
		return Badge{Text: "NO (" + c.Reason + ")", Class: "bad", Title: c.Message}
	default:
		return Badge{Text: "unknown (" + c.Reason + ")", Class: "unknown", Title: c.Message}
	}
}

func (r *reader) ago(t *metav1.Time) string {
	if t == nil {
		return "-"
	}
	return duration.HumanDuration(r.now.Sub(t.Time)) + " ago"
}

func backupFinal(p storkv1.BackupPhase) bool {
	switch p {
	case storkv1.BackupCompleted, storkv1.BackupFailed, storkv1.BackupPartiallyFailed, storkv1.BackupCancelled:
		return true
	}
	return false
}

func restoreFinal(p storkv1.RestorePhase) bool {
	switch p {
	case storkv1.RestoreCompleted, storkv1.RestoreFailed, storkv1.RestorePartiallyFailed, storkv1.RestoreCancelled:
		return true
	}
	return false
}

func key(ns, name string) string { return ns + "/" + name }
