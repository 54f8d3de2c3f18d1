package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers/local/agent"
	"stork.dev/stork/internal/version"
)

func main() {
	root := &cobra.Command{
		Use:           "stork-agent",
		Short:         "Stork's node agent: storage health and volume work on one node",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the agent's version",
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), version.Version) },
	}, runCommand(), moverCommand())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "stork-agent:", err)
		os.Exit(1)
	}
}

type runOptions struct {
	node, root, namespace  string
	metricsAddr, probeAddr string
	every, leaseDuration   time.Duration
	bytesPerSecond         int64
	nearlyFullPercent      float64
	workers                int
	sweepEvery, sweepGrace time.Duration
}

func runCommand() *cobra.Command {
	o := runOptions{}
	zapOpts := zap.Options{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Keep this node's StorageNode up to date and do the local driver's VolumeTasks for it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
			return run(o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.node, "node", os.Getenv("NODE_NAME"), "name of this node (default $NODE_NAME, set from the downward API)")
	f.StringVar(&o.root, "root", "/var/lib/stork/local", "storage root: where this node's local volumes and snapshots live")
	f.StringVar(&o.namespace, "namespace", envOr("POD_NAMESPACE", "stork-system"), "namespace of the agent's Lease")
	f.StringVar(&o.metricsAddr, "metrics-bind-address", "0", "address of the Prometheus metrics endpoint; 0 turns it off")
	f.StringVar(&o.probeAddr, "health-probe-bind-address", "0", "address of /healthz and /readyz; 0 turns them off")
	f.DurationVar(&o.every, "report-interval", 10*time.Second, "how often the storage is probed and the Lease renewed")
	f.DurationVar(&o.leaseDuration, "lease-duration", 40*time.Second, "how long the Lease is valid without renewal")
	f.DurationVar(&o.sweepEvery, "sweep-interval", 10*time.Minute, "how often the node's storage is swept for leftovers of tasks that are gone")
	f.DurationVar(&o.sweepGrace, "sweep-grace", time.Hour, "how old a leftover must be before a sweep removes it")
	f.Int64Var(&o.bytesPerSecond, "bytes-per-second", 0, "bandwidth limit of each snapshot or restore copy (0: none)")
	f.Float64Var(&o.nearlyFullPercent, "nearly-full-percent", 10, "free space (percent) at or below which the storage is NearlyFull")
	f.IntVar(&o.workers, "workers", 2, "volume tasks done at once")
	fs := flag.NewFlagSet("log", flag.ExitOnError)
	zapOpts.BindFlags(fs)
	f.AddGoFlagSet(fs)
	return cmd
}

func run(o runOptions) error {
	if o.node == "" {
		return errors.New("--node is required (or NODE_NAME)")
	}
	if o.leaseDuration < 2*o.every {
		return fmt.Errorf("--lease-duration %s must be at least twice --report-interval %s", o.leaseDuration, o.every)
	}
	root, err := filepath.Abs(o.root)
	if err != nil {
		return err
	}
	if info, err := os.Stat(root); err != nil {
		return fmt.Errorf("--root: %w", err)
	} else if !info.IsDir() {
		return fmt.Errorf("--root %s is not a directory", root)
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(storkv1.AddToScheme(scheme))
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading the Kubernetes client configuration: %w", err)
	}
	// The agent sees only its own node, its own tasks, its StorageNode and its Lease: a
	// cluster of a thousand nodes does not send every task to every agent.
	mine := labels.SelectorFromSet(labels.Set{storkv1.LabelTaskNode: o.node, storkv1.LabelTaskDriver: agent.DriverName})
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress: o.probeAddr,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&storkv1.VolumeTask{}:   {Label: mine},
			&corev1.Node{}:          {Field: fields.OneTermEqualSelector("metadata.name", o.node)},
			&storkv1.StorageNode{}:  {Field: fields.OneTermEqualSelector("metadata.name", agent.StorageNodeName(agent.DriverName, o.node))},
			&coordinationv1.Lease{}: {Namespaces: map[string]cache.Config{o.namespace: {}}, Field: fields.OneTermEqualSelector("metadata.name", agent.LeaseName(agent.DriverName, o.node))},
		}},
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	id := agentID(o.node)
	log := ctrl.Log.WithName("agent").WithValues("node", o.node, "agent", id)
	ioErrors := &agent.ErrorLog{}
	tasks := &agent.Tasks{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Log: log.WithName("tasks"), Node: o.node, Root: agent.Root(root), AgentID: id,
		Workers: o.workers, BytesPerSecond: o.bytesPerSecond, IOErrors: ioErrors, Namespace: o.namespace}
	if err := tasks.SetupWithManager(mgr); err != nil {
		return err
	}
	reporter := &agent.Reporter{Client: mgr.GetClient(), Log: log.WithName("health"), Node: o.node, Root: agent.Root(root),
		Namespace: o.namespace, AgentID: id, Version: version.Version, Every: o.every, LeaseDuration: o.leaseDuration,
		NearlyFullPercent: o.nearlyFullPercent, IOErrors: ioErrors}
	if err := mgr.Add(reporter); err != nil {
		return err
	}
	if err := mgr.Add(&agent.Sweeper{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("stork-agent"), Log: log.WithName("sweep"),
		Node: o.node, Root: agent.Root(root), Every: o.sweepEvery, Grace: o.sweepGrace}); err != nil {
		return err
	}
	if o.probeAddr != "0" {
		if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
			return err
		}
		if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
			return err
		}
	}
	log.Info("starting", "version", version.Version, "root", root)
	return mgr.Start(ctrl.SetupSignalHandler())
}

// agentID names this process: the node and a random suffix, so that a task's status tells
// which run of the agent worked on it.
func agentID(node string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return node + "-" + hex.EncodeToString(b)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
