package main

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// statusCommand is `storkctl status`: each protected application (a SnapshotSchedule) with its
// newest backup and how it stands against its recovery objectives.
func statusCommand() *cobra.Command {
	f := &kubeFlags{}
	var all bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Each protected application (SnapshotSchedule): newest backup, achieved RPO and RTO against the objectives",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ns, err := f.client()
			if err != nil {
				return err
			}
			var opts []client.ListOption
			if !all {
				opts = append(opts, client.InNamespace(ns))
			}
			var list storkv1.SnapshotScheduleList
			if err := c.List(cmd.Context(), &list, opts...); err != nil {
				return fmt.Errorf("listing SnapshotSchedules: %w", err)
			}
			return printStatus(cmd.OutOrStdout(), list.Items, time.Now())
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "every namespace")
	return cmd
}

// printStatus writes one line per schedule, as seen at now.
func printStatus(out io.Writer, scheds []storkv1.SnapshotSchedule, now time.Time) error {
	sort.Slice(scheds, func(i, j int) bool {
		a, b := scheds[i], scheds[j]
		return a.Namespace < b.Namespace || (a.Namespace == b.Namespace && a.Name < b.Name)
	})
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAMESPACE\tSCHEDULE\tLAST BACKUP\tCAPTURED\tRPO\tRPO MET\tRTO\tPROVEN RTO\tRTO MET\tNEXT RUN\tLAST PROVEN")
	for _, s := range scheds {
		last, captured, proven, provenAt := "-", "-", "-", "-"
		if p := s.Status.Protection; p != nil {
			if p.LastBackupName != "" {
				last = p.LastBackupName
			}
			if p.LastBackupCaptureTime != nil {
				captured = duration.HumanDuration(now.Sub(p.LastBackupCaptureTime.Time)) + " ago"
			}
			if p.LastProvenRTO != nil {
				proven = p.LastProvenRTO.Duration.String()
			}
			if p.LastProvenTime != nil {
				provenAt = duration.HumanDuration(now.Sub(p.LastProvenTime.Time)) + " ago"
			}
		}
		rpo, rto := "-", "-"
		if o := s.Spec.Objectives; o != nil {
			rpo, rto = objective(o.RPO), objective(o.RTO)
		}
		next := "-"
		switch {
		case s.Spec.Suspend:
			next = "suspended"
		case s.Status.NextScheduleTime != nil:
			next = "in " + duration.HumanDuration(s.Status.NextScheduleTime.Sub(now))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Namespace, s.Name, last, captured, rpo,
			conditionStatus(s.Status.Conditions, storkv1.ConditionRPOMet), rto, proven, conditionStatus(s.Status.Conditions, storkv1.ConditionRTOMet), next, provenAt)
	}
	return w.Flush()
}

func objective(d *metav1.Duration) string {
	if d == nil {
		return "-"
	}
	return d.Duration.String()
}

// conditionStatus is a condition's status, with its reason when not True; "-" when absent.
func conditionStatus(conds []metav1.Condition, t string) string {
	c := meta.FindStatusCondition(conds, t)
	switch {
	case c == nil:
		return "-"
	case c.Status == metav1.ConditionTrue:
		return "yes"
	default:
		return fmt.Sprintf("%s (%s)", map[metav1.ConditionStatus]string{metav1.ConditionFalse: "NO", metav1.ConditionUnknown: "unknown"}[c.Status], c.Reason)
	}
}
