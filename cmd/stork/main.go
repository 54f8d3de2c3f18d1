package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup"
	"stork.dev/stork/backup/hooks"
	"stork.dev/stork/backup/locations"
	"stork.dev/stork/drivers"
	"stork.dev/stork/drivers/local" // registers the local driver
	"stork.dev/stork/internal/version"
	"stork.dev/stork/restore"
	"stork.dev/stork/schedules"
)

func main() {
	var (
		metricsAddr, probeAddr, driverList, namespace, cluster string
		leaderElect                                            bool
		driverConfig                                           = map[string]string{}
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 turns it off")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints")
	flag.StringVar(&namespace, "namespace", envOr("POD_NAMESPACE", "stork-system"), "Stork's namespace: leader election and the agents' leases")
	flag.StringVar(&cluster, "cluster", "default", "this cluster's name, recorded in its backups (tag cluster) so that other clusters can tell them apart")
	flag.BoolVar(&leaderElect, "leader-elect", true, "elect a leader, so that only one replica acts at a time")
	flag.StringVar(&driverList, "drivers", "local", "comma-separated storage drivers to enable; registered: "+strings.Join(drivers.Registered(), ", "))
	flag.Func("driver-config", "KEY=VALUE setting of a driver, repeatable (e.g. local.roots=/var/lib/stork/local,/opt/local-path-provisioner)", func(v string) error {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE, got %q", v)
		}
		driverConfig[k] = val
		return nil
	})
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("stork")

	if err := run(metricsAddr, probeAddr, driverList, namespace, cluster, driverConfig, leaderElect); err != nil {
		log.Error(err, "stork stopped")
		os.Exit(1)
	}
}

func run(metricsAddr, probeAddr, driverList, namespace, cluster string, driverConfig map[string]string, leaderElect bool) error {
	if _, ok := driverConfig[local.ConfigAgentNamespace]; !ok {
		driverConfig[local.ConfigAgentNamespace] = namespace
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(storkv1.AddToScheme(scheme))

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading the Kubernetes client configuration: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "stork-controller.stork.dev",
		LeaderElectionNamespace: namespace,
		// Leases are read in Stork's namespace only (the agents' heartbeats): RBAC grants no
		// more.
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&coordinationv1.Lease{}: {Namespaces: map[string]cache.Config{namespace: {}}},
		}},
	})
	if err != nil {
		return fmt.Errorf("creating the controller manager: %w", err)
	}
	var names []string
	if driverList != "" {
		names = strings.Split(driverList, ",")
	}
	set, err := drivers.New(names, drivers.Options{Client: mgr.GetClient(), Log: ctrl.Log.WithName("drivers"), Config: driverConfig})
	if err != nil {
		return err
	}
	for _, d := range set.All() {
		if c, ok := drivers.As[drivers.ControllerOwner](d); ok {
			if err := c.SetupWithManager(mgr); err != nil {
				return fmt.Errorf("setting up the controllers of driver %s: %w", d.Name(), err)
			}
		}
	}
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	runner := &hooks.Runner{Client: mgr.GetClient(), Exec: &hooks.APIExecutor{Config: cfg, Client: clientset.CoreV1().RESTClient()}}
	if err := (&backup.SnapshotReconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Drivers: set, Hooks: runner,
		Recorder: mgr.GetEventRecorder("stork-snapshot")}).SetupWithManager(mgr); err != nil {
		return err
	}
	repos := &locations.Repositories{Secrets: mgr.GetAPIReader()}
	if err := (&backup.BackupReconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Repos: repos, Drivers: set,
		Namespace: namespace, Cluster: cluster, Recorder: mgr.GetEventRecorder("stork-backup")}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&locations.Reconciler{Client: mgr.GetClient(), Secrets: mgr.GetAPIReader(),
		Recorder: mgr.GetEventRecorder("stork-location")}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := mgr.Add(&locations.AccessSweeper{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Namespace: namespace,
		Log: ctrl.Log.WithName("access-sweeper")}); err != nil {
		return err
	}
	if err := (&backup.SyncReconciler{Client: mgr.GetClient(), Repos: repos, AdminNamespace: namespace,
		Recorder: mgr.GetEventRecorder("stork-sync")}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&schedules.Reconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(),
		Recorder: mgr.GetEventRecorder("stork-schedule")}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&restore.Reconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Drivers: set, AdminNamespace: namespace, Repos: repos,
		Recorder: mgr.GetEventRecorder("stork-restore")}).SetupWithManager(mgr); err != nil {
		return err
	}
	ctrl.Log.Info("starting", "version", version.Version, "drivers", len(set.All()))
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
