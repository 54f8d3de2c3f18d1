package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
	"stork.dev/stork/internal/version"
)

func main() {
	var (
		metricsAddr, probeAddr, driverList string
		leaderElect                        bool
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 turns it off")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints")
	flag.BoolVar(&leaderElect, "leader-elect", true, "elect a leader, so that only one replica acts at a time")
	flag.StringVar(&driverList, "drivers", "", "comma-separated storage drivers to enable; registered: "+strings.Join(drivers.Registered(), ", "))
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("stork")

	if err := run(metricsAddr, probeAddr, driverList, leaderElect); err != nil {
		log.Error(err, "stork stopped")
		os.Exit(1)
	}
}

func run(metricsAddr, probeAddr, driverList string, leaderElect bool) error {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(storkv1.AddToScheme(scheme))

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading the Kubernetes client configuration: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: probeAddr,
		LeaderElection:         leaderElect,
		LeaderElectionID:       "stork-controller.stork.dev",
	})
	if err != nil {
		return fmt.Errorf("creating the controller manager: %w", err)
	}
	var names []string
	if driverList != "" {
		names = strings.Split(driverList, ",")
	}
	set, err := drivers.New(names, drivers.Options{Client: mgr.GetClient(), Log: ctrl.Log.WithName("drivers")})
	if err != nil {
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
