package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/internal/cli"
	"stork.dev/stork/internal/units"
)

// kubeFlags are the flags of the commands that talk to a cluster.
type kubeFlags struct {
	kubeconfig, namespace string
	wait                  bool
	timeout               time.Duration
}

func (f *kubeFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	cmd.PersistentFlags().StringVarP(&f.namespace, "namespace", "n", "", "namespace (default: the kubeconfig context's)")
}

func (f *kubeFlags) registerWait(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.wait, "wait", false, "wait until the work is finished, showing progress")
	cmd.Flags().DurationVar(&f.timeout, "timeout", time.Hour, "how long --wait waits")
}

// client returns a client for Stork's types and the namespace to use.
func (f *kubeFlags) client() (client.Client, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("loading the kubeconfig: %w", err)
	}
	ns := f.namespace
	if ns == "" {
		if ns, _, err = cc.Namespace(); err != nil {
			return nil, "", err
		}
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(storkv1.AddToScheme(scheme))
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	return c, ns, err
}

func snapshotCommand() *cobra.Command {
	f := &kubeFlags{}
	cmd := &cobra.Command{Use: "snapshot", Short: "Create, list, inspect and delete Snapshots of claims"}
	f.register(cmd)

	var claim, selector string
	var all bool
	create := &cobra.Command{
		Use:   "create NAME (--claim CLAIM | --selector LABELS | --all-claims)",
		Short: "Take a group snapshot of claims of the namespace",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := f.client()
			if err != nil {
				return err
			}
			snap := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: args[0]}}
			switch {
			case claim != "" && selector == "" && !all:
				snap.Spec.Source.ClaimName = claim
			case selector != "" && claim == "" && !all:
				sel, err := metav1.ParseToLabelSelector(selector)
				if err != nil {
					return fmt.Errorf("--selector: %w", err)
				}
				snap.Spec.Source.Selector = sel
			case all && claim == "" && selector == "":
				snap.Spec.Source.WholeNamespace = true
			default:
				return errors.New("give exactly one of --claim, --selector or --all-claims")
			}
			if err := c.Create(cmd.Context(), snap); err != nil {
				return fmt.Errorf("creating Snapshot %s/%s: %w", ns, args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "snapshot %s/%s created\n", ns, args[0])
			if !f.wait {
				return nil
			}
			return waitFor(cmd, f.timeout, "capturing", func(ctx context.Context) (string, storkv1.Progress, bool, error) {
				if err := c.Get(ctx, client.ObjectKeyFromObject(snap), snap); err != nil {
					return "", storkv1.Progress{}, false, err
				}
				st := snap.Status
				switch st.Phase {
				case storkv1.SnapshotReady:
					return "Ready", st.Progress, true, nil
				case storkv1.SnapshotFailed:
					return "", st.Progress, true, fmt.Errorf("snapshot %s failed: %s", snap.Name, conditionMessage(st.Conditions, storkv1.ConditionReady))
				}
				return string(st.Phase), st.Progress, false, nil
			})
		},
	}
	create.Flags().StringVar(&claim, "claim", "", "capture this claim")
	create.Flags().StringVar(&selector, "selector", "", "capture the claims with these labels (k=v,k2=v2)")
	create.Flags().BoolVar(&all, "all-claims", false, "capture every claim of the namespace")
	f.registerWait(create)

	get := &cobra.Command{
		Use:   "get [NAME]",
		Short: "List Snapshots",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := f.client()
			if err != nil {
				return err
			}
			var list storkv1.SnapshotList
			if err := c.List(cmd.Context(), &list, client.InNamespace(ns)); err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tPHASE\tVOLUMES\tSIZE\tAGE")
			for _, s := range list.Items {
				if len(args) == 1 && s.Name != args[0] {
					continue
				}
				fmt.Fprintf(w, "%s\t%s\t%d/%d\t%s\t%s\n", s.Name, s.Status.Phase, s.Status.Progress.ItemsDone, s.Status.Progress.ItemsTotal,
					units.Bytes(s.Status.Progress.BytesTotal), age(s.CreationTimestamp))
			}
			return w.Flush()
		},
	}

	describe := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a Snapshot: phase, conditions, volumes and hooks",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := f.client()
			if err != nil {
				return err
			}
			s := &storkv1.Snapshot{}
			if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: args[0]}, s); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Snapshot %s/%s\nPhase: %s\nProgress: %s of %s, %d of %d volumes\n", ns, s.Name, s.Status.Phase,
				units.Bytes(s.Status.Progress.BytesDone), units.Bytes(s.Status.Progress.BytesTotal), s.Status.Progress.ItemsDone, s.Status.Progress.ItemsTotal)
			printConditions(out, s.Status.Conditions)
			w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "\nCLAIM\tDRIVER\tNODE\tZONE\tPHASE\tSIZE\tSNAPSHOT ID\tMESSAGE")
			for _, v := range s.Status.Volumes {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.ClaimName, v.Driver, v.Node, v.Topology.Zone, v.Phase, units.Bytes(v.SizeBytes), v.SnapshotID, v.Message)
			}
			if len(s.Status.Hooks) > 0 {
				fmt.Fprintln(w, "\nHOOK\tSTAGE\tPOD\tCONTAINER\tOK\tMESSAGE")
				for _, h := range s.Status.Hooks {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%t\t%s\n", h.Name, h.Stage, h.Pod, h.Container, h.Succeeded, h.Message)
				}
			}
			return w.Flush()
		},
	}

	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a Snapshot and (unless its deletionPolicy is Retain) its data",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := f.client()
			if err != nil {
				return err
			}
			s := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: args[0]}}
			if err := c.Delete(cmd.Context(), s); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "snapshot %s/%s deleting\n", ns, args[0])
			if !f.wait {
				return nil
			}
			return waitFor(cmd, f.timeout, "deleting", func(ctx context.Context) (string, storkv1.Progress, bool, error) {
				err := c.Get(ctx, client.ObjectKeyFromObject(s), s)
				if apierrors.IsNotFound(err) {
					return "deleted", storkv1.Progress{}, true, nil
				}
				return conditionMessage(s.Status.Conditions, storkv1.ConditionReady), storkv1.Progress{}, false, err
			})
		},
	}
	f.registerWait(del)
	cmd.AddCommand(create, get, describe, del)
	return cmd
}

func restoreCommand() *cobra.Command {
	f := &kubeFlags{}
	cmd := &cobra.Command{Use: "restore", Short: "Restore Snapshots into new claims, and follow Restores"}
	f.register(cmd)

	var snapshot, sourceNS, existing string
	var nsMap, claimMap, scMap []string
	create := &cobra.Command{
		Use:   "create NAME --snapshot SNAPSHOT",
		Short: "Restore a Snapshot's claims, into this or other namespaces, under these or other names",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := f.client()
			if err != nil {
				return err
			}
			rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: args[0]},
				Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{SnapshotName: snapshot, Namespace: sourceNS}, ExistingObjectPolicy: storkv1.ExistingObjectPolicy(existing)}}
			if rs.Spec.NamespaceMapping, err = cli.ParseMap("namespace-mapping", "FROM=TO", nsMap); err != nil {
				return err
			}
			if rs.Spec.ClaimNameMapping, err = cli.ParseMap("claim-mapping", "FROM=TO", claimMap); err != nil {
				return err
			}
			if rs.Spec.StorageClassMapping, err = cli.ParseMap("storage-class-mapping", "FROM=TO", scMap); err != nil {
				return err
			}
			if err := c.Create(cmd.Context(), rs); err != nil {
				return fmt.Errorf("creating Restore %s/%s: %w", ns, args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restore %s/%s created\n", ns, args[0])
			if !f.wait {
				return nil
			}
			return waitFor(cmd, f.timeout, "restoring", func(ctx context.Context) (string, storkv1.Progress, bool, error) {
				if err := c.Get(ctx, client.ObjectKeyFromObject(rs), rs); err != nil {
					return "", storkv1.Progress{}, false, err
				}
				st := rs.Status
				switch st.Phase {
				case storkv1.RestoreCompleted:
					return "Completed", st.Progress, true, nil
				case storkv1.RestoreFailed, storkv1.RestorePartiallyFailed:
					return "", st.Progress, true, fmt.Errorf("restore %s %s: %s", rs.Name, st.Phase, conditionMessage(st.Conditions, storkv1.ConditionReady))
				}
				return string(st.Phase), st.Progress, false, nil
			})
		},
	}
	create.Flags().StringVar(&snapshot, "snapshot", "", "the Snapshot to restore")
	create.Flags().StringVar(&sourceNS, "source-namespace", "", "the Snapshot's namespace, when not the Restore's (Restores in stork-system only)")
	_ = create.MarkFlagRequired("snapshot")
	create.Flags().StringArrayVar(&nsMap, "namespace-mapping", nil, "FROM=TO: restore the claims of namespace FROM into TO (repeatable)")
	create.Flags().StringArrayVar(&claimMap, "claim-mapping", nil, "FROM=TO: restore claim FROM under the name TO (repeatable)")
	create.Flags().StringArrayVar(&scMap, "storage-class-mapping", nil, "FROM=TO: give restored claims of class FROM the class TO (repeatable)")
	create.Flags().StringVar(&existing, "existing", "Fail", "what to do with a claim that exists: Fail, Skip or Update")
	f.registerWait(create)

	get := &cobra.Command{
		Use:   "get [NAME]",
		Short: "List Restores",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := f.client()
			if err != nil {
				return err
			}
			var list storkv1.RestoreList
			if err := c.List(cmd.Context(), &list, client.InNamespace(ns)); err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tSOURCE\tPHASE\tVOLUMES\tAGE")
			for _, r := range list.Items {
				if len(args) == 1 && r.Name != args[0] {
					continue
				}
				src := r.Spec.Source.SnapshotName
				if src == "" {
					src = "backup/" + r.Spec.Source.BackupName
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d/%d\t%s\n", r.Name, src, r.Status.Phase, r.Status.Progress.ItemsDone, r.Status.Progress.ItemsTotal, age(r.CreationTimestamp))
			}
			return w.Flush()
		},
	}

	describe := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a Restore: phase, conditions and each claim's result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := f.client()
			if err != nil {
				return err
			}
			r := &storkv1.Restore{}
			if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: args[0]}, r); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			src := "Snapshot " + r.Spec.Source.SnapshotName
			if r.Spec.Source.BackupName != "" {
				src = "Backup " + r.Spec.Source.BackupName
			}
			p := r.Status.Progress
			fmt.Fprintf(out, "Restore %s/%s of %s\nPhase: %s\nProgress: %s of %s, %d of %d volumes\n", ns, r.Name, src, r.Status.Phase,
				units.Bytes(p.BytesDone), units.Bytes(p.BytesTotal), p.ItemsDone, p.ItemsTotal)
			printConditions(out, r.Status.Conditions)
			w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "\nSOURCE CLAIM\tTARGET\tNODE\tPHASE\tDONE\tTOTAL\tREASON\tMESSAGE")
			for _, v := range r.Status.Volumes {
				fmt.Fprintf(w, "%s\t%s/%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.SourceClaim, v.TargetNamespace, v.TargetClaim, v.Node, v.Phase,
					units.Bytes(v.Progress.BytesDone), units.Bytes(v.Progress.BytesTotal), v.Reason, v.Message)
			}
			return w.Flush()
		},
	}
	cmd.AddCommand(create, get, describe)
	return cmd
}

// waitFor polls until done, showing progress: a bar on a terminal, otherwise a line each time
// the state changes.
func waitFor(cmd *cobra.Command, timeout time.Duration, what string, poll func(context.Context) (string, storkv1.Progress, bool, error)) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	bar := cli.NewBar(cmd.ErrOrStderr(), what)
	defer bar.Finish()
	last := ""
	for {
		state, p, done, err := poll(ctx)
		if err != nil {
			return err
		}
		bar.Update(p.BytesDone, p.BytesTotal)
		line := fmt.Sprintf("%s: %s, %s of %s", what, state, units.Bytes(p.BytesDone), units.Bytes(p.BytesTotal))
		if !bar.Active() && line != last {
			fmt.Fprintln(cmd.ErrOrStderr(), line)
			last = line
		}
		if done {
			fmt.Fprintln(cmd.OutOrStdout(), state)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("still %s after %s (%s)", what, timeout, state)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func conditionMessage(conds []metav1.Condition, t string) string {
	for _, c := range conds {
		if c.Type == t {
			return c.Message
		}
	}
	return ""
}

func printConditions(w io.Writer, conds []metav1.Condition) {
	sorted := append([]metav1.Condition(nil), conds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Type < sorted[j].Type })
	for _, c := range sorted {
		fmt.Fprintf(w, "  %s=%s (%s): %s\n", c.Type, c.Status, c.Reason, c.Message)
	}
}

func age(t metav1.Time) string { return duration.HumanDuration(time.Since(t.Time)) }
