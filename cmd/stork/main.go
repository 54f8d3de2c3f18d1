package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	groupv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumegroupsnapshot/v1"
	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	storkv1 "stork.dev/stork/api/v1alpha1"
	backupcontrollers "stork.dev/stork/backup/controllers"
	"stork.dev/stork/backup/controllers/locations"
	"stork.dev/stork/backup/hooks"
	"stork.dev/stork/backup/locator"
	"stork.dev/stork/dashboard"
	"stork.dev/stork/drivers"
	"stork.dev/stork/drivers/csi"        // registers the csi driver
	"stork.dev/stork/drivers/local"      // registers the local driver
	_ "stork.dev/stork/drivers/longhorn" // registers the longhorn driver
	"stork.dev/stork/internal/certs"
	"stork.dev/stork/internal/retry"
	"stork.dev/stork/internal/version"
	"stork.dev/stork/placement"
	podWebhook "stork.dev/stork/placement/webhook"
	"stork.dev/stork/restore"
	"stork.dev/stork/restore/drill"
	"stork.dev/stork/schedules"
)

// options are the stork command's flags.
type options struct {
	metricsAddr, probeAddr, driverList, namespace, cluster string
	leaderElect                                            bool
	driverConfig                                           map[string]string

	// placement
	extenderAddr, schedulerName              string
	extenderCertDir, extenderService         string
	extenderInsecure                         bool
	webhookPort                              int
	webhookCertDir, webhookService           string
	webhookIPs                               string
	monitor                                  bool
	probation, checkEvery, batchEvery, stale time.Duration
	batchSize                                int

	// pendingTimeout fails a volume whose capture has not started in time.
	pendingTimeout time.Duration
	// storageWait bounds a restored volume's wait for healthy storage in its zone.
	storageWait time.Duration
	// retry is how failing steps of Backups and Restores are tried again.
	retry retry.Policy

	// dashboard
	dashboardAddr, dashboardCertDir, dashboardService string
	dashboardInsecure                                 bool
}

func main() {
	o := options{driverConfig: map[string]string{}}
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 turns it off")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints")
	flag.StringVar(&o.namespace, "namespace", envOr("POD_NAMESPACE", "stork-system"), "Stork's namespace: leader election and the agents' leases")
	flag.StringVar(&o.cluster, "cluster", "default", "this cluster's name, recorded in its backups (tag cluster) so that other clusters can tell them apart")
	flag.BoolVar(&o.leaderElect, "leader-elect", true, "elect a leader, so that only one replica acts at a time")
	flag.StringVar(&o.driverList, "drivers", "local", "comma-separated storage drivers to enable; registered: "+strings.Join(drivers.Registered(), ", "))
	flag.Func("driver-config", "KEY=VALUE setting of a driver, repeatable (e.g. local.roots=/var/lib/stork/local,/opt/local-path-provisioner)", func(v string) error {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE, got %q", v)
		}
		o.driverConfig[k] = val
		return nil
	})
	flag.StringVar(&o.extenderAddr, "extender-bind-address", ":8099", "address of the kube-scheduler extender (HTTPS, answering the stork scheduler's client certificate); 0 turns it off")
	flag.StringVar(&o.extenderCertDir, "extender-cert-dir", filepath.Join(os.TempDir(), "stork-extender-certs"), "where the extender's rotating serving certificate and client CA are written")
	flag.StringVar(&o.extenderService, "extender-service", "stork-extender", "Service of the extender in Stork's namespace, named in its certificate")
	flag.BoolVar(&o.extenderInsecure, "extender-insecure-http", false, "serve the extender over plain HTTP, answering any client (not recommended: answers say where every namespace's data is)")
	flag.StringVar(&o.schedulerName, "scheduler-name", "stork", "scheduler the webhook sends pods with Stork volumes to (the kube-scheduler configured with the extender)")
	flag.IntVar(&o.webhookPort, "webhook-port", 9443, "port of the pod admission webhook (HTTPS); 0 turns it off")
	flag.StringVar(&o.webhookCertDir, "webhook-cert-dir", filepath.Join(os.TempDir(), "stork-webhook-certs"), "where the webhook's rotating serving certificate is written")
	flag.StringVar(&o.webhookService, "webhook-service", "stork-webhook", "Service of the webhook in Stork's namespace, named in its certificate")
	flag.StringVar(&o.webhookIPs, "webhook-ips", "", "comma-separated IP addresses to add to the webhook certificate (for API servers that call it by address)")
	flag.BoolVar(&o.monitor, "health-monitor", true, "evict pods from nodes whose storage is down (leader only)")
	flag.DurationVar(&o.probation, "monitor-probation", 2*time.Minute, "how long storage must stay down before its pods are moved")
	flag.DurationVar(&o.checkEvery, "monitor-interval", 10*time.Second, "time between health monitor checks")
	flag.IntVar(&o.batchSize, "monitor-batch-size", 5, "pods evicted per batch")
	flag.DurationVar(&o.batchEvery, "monitor-batch-interval", 30*time.Second, "time between eviction batches")
	flag.DurationVar(&o.stale, "monitor-stale-after", 3*time.Minute, "the monitor acts on nothing when no storage node reported for this long")
	flag.DurationVar(&o.retry.Base, "retry-base", 5*time.Second, "wait after a step of a Backup or Restore first fails (saving objects, writing the record, waiting for its location); doubled after each further failure")
	flag.DurationVar(&o.retry.Max, "retry-max", 2*time.Minute, "longest wait between two attempts of a failing step")
	flag.DurationVar(&o.retry.Limit, "retry-limit", 15*time.Minute, "how long after its first failure a step is given up, and the Backup or Restore fails with the step's reason")
	flag.DurationVar(&o.pendingTimeout, "snapshot-pending-timeout", 10*time.Minute, "how long a volume's capture may wait to start (its node's agent down) before the volume fails NotStarted")
	flag.DurationVar(&o.storageWait, "restore-storage-wait", 10*time.Minute, "how long a restored volume waits for a healthy storage node (or free space) in its target zone before it fails")
	flag.StringVar(&o.dashboardAddr, "dashboard-bind-address", ":8443", "address of the read-only web dashboard (HTTPS); 0 turns it off")
	flag.StringVar(&o.dashboardCertDir, "dashboard-cert-dir", filepath.Join(os.TempDir(), "stork-dashboard-certs"), "where the dashboard's rotating serving certificate is written")
	flag.StringVar(&o.dashboardService, "dashboard-service", "stork-dashboard", "Service of the dashboard in Stork's namespace, named in its certificate")
	flag.BoolVar(&o.dashboardInsecure, "dashboard-insecure-http", false, "serve the dashboard over plain HTTP (only behind a proxy that terminates TLS): tokens cross the network in the clear otherwise")
	zo := zap.Options{}
	zo.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zo)))
	log := ctrl.Log.WithName("stork")

	if err := run(o); err != nil {
		log.Error(err, "stork stopped")
		os.Exit(1)
	}
}

// registerMetrics registers the metrics of the controller's packages with reg (served on
// --metrics-bind-address): registration is explicit so that the agent, which links drivers,
// exposes only its own.
func registerMetrics(reg prometheus.Registerer) error {
	var errs []error
	for _, register := range []func(prometheus.Registerer) error{
		backupcontrollers.RegisterMetrics, locations.RegisterMetrics, restore.RegisterMetrics, drill.RegisterMetrics,
		placement.RegisterMetrics, csi.RegisterMetrics,
	} {
		errs = append(errs, register(reg))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	return nil
}

func run(o options) error {
	if _, ok := o.driverConfig[local.ConfigAgentNamespace]; !ok {
		o.driverConfig[local.ConfigAgentNamespace] = o.namespace
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(storkv1.AddToScheme(scheme))
	utilruntime.Must(snapv1.AddToScheme(scheme))
	utilruntime.Must(groupv1.AddToScheme(scheme))

	if err := registerMetrics(crmetrics.Registry); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading the Kubernetes client configuration: %w", err)
	}
	mopts := ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:  o.probeAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "stork-controller.stork.dev",
		LeaderElectionNamespace: o.namespace,
		// Leases are read in Stork's namespace only (the agents' heartbeats): RBAC grants no
		// more.
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&coordinationv1.Lease{}: {Namespaces: map[string]cache.Config{o.namespace: {}}},
		}},
	}
	if o.webhookPort != 0 {
		mopts.WebhookServer = webhook.NewServer(webhook.Options{Port: o.webhookPort, CertDir: o.webhookCertDir})
	}
	mgr, err := ctrl.NewManager(cfg, mopts)
	if err != nil {
		return fmt.Errorf("creating the controller manager: %w", err)
	}
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := moverImageFromPod(context.Background(), clientset, o); err != nil {
		return err
	}
	var names []string
	if o.driverList != "" {
		names = strings.Split(o.driverList, ",")
	}
	set, err := drivers.New(names, drivers.Options{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: o.namespace,
		Log: ctrl.Log.WithName("drivers"), Config: o.driverConfig, RESTConfig: cfg})
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
	runner := &hooks.Runner{Client: mgr.GetClient(), Exec: &hooks.APIExecutor{Config: cfg, Client: clientset.CoreV1().RESTClient()}}
	if err := (&backupcontrollers.SnapshotReconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Drivers: set, Hooks: runner,
		PendingTimeout: o.pendingTimeout, Recorder: mgr.GetEventRecorder("stork-snapshot")}).SetupWithManager(mgr); err != nil {
		return err
	}
	repos := &locator.Cache{Secrets: mgr.GetAPIReader()}
	if err := (&backupcontrollers.BackupReconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Repos: repos, Drivers: set,
		Namespace: o.namespace, Cluster: o.cluster, Retry: o.retry, Recorder: mgr.GetEventRecorder("stork-backup")}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&locations.Reconciler{Client: mgr.GetClient(), Secrets: mgr.GetAPIReader(), Cluster: o.cluster,
		Recorder: mgr.GetEventRecorder("stork-location")}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := mgr.Add(&locations.AccessSweeper{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Namespace: o.namespace,
		Log: ctrl.Log.WithName("access-sweeper")}); err != nil {
		return err
	}
	if err := (&backupcontrollers.SyncReconciler{Client: mgr.GetClient(), Repos: repos, AdminNamespace: o.namespace,
		Recorder: mgr.GetEventRecorder("stork-sync")}).SetupWithManager(mgr); err != nil {
		return err
	}
	objectives := &schedules.Metrics{}
	if err := crmetrics.Registry.Register(objectives); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	if err := (&schedules.Reconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(),
		Recorder: mgr.GetEventRecorder("stork-schedule"), Metrics: objectives}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&restore.Reconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Drivers: set, AdminNamespace: o.namespace, Repos: repos, Hooks: runner,
		Retry: o.retry, StorageWait: o.storageWait, Recorder: mgr.GetEventRecorder("stork-restore")}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&drill.Reconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), AdminNamespace: o.namespace,
		Recorder: mgr.GetEventRecorder("stork-drill")}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := setupPlacement(mgr, set, o); err != nil {
		return err
	}
	if err := setupDashboard(mgr, clientset, o); err != nil {
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

// setupPlacement adds the scheduler extender, the health monitor with failover, and the pod
// webhook with its rotating certificate.
func setupPlacement(mgr ctrl.Manager, set *drivers.Set, o options) error {
	view := placement.NewView(set, ctrl.Log.WithName("placement"))
	if err := view.WatchNodes(context.Background(), mgr.GetCache()); err != nil {
		return err
	}
	if err := mgr.Add(view); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.PersistentVolume{}, placement.IndexPreboundClaim, placement.PreboundClaim); err != nil {
		return fmt.Errorf("indexing PersistentVolumes by the claim they are reserved for: %w", err)
	}
	if err := mgr.AddReadyzCheck("placement-view", view.Ready); err != nil {
		return err
	}
	vols := &placement.Volumes{Reader: mgr.GetClient(), Drivers: set}
	if o.extenderAddr != "0" && o.extenderAddr != "" {
		ext := &placement.Extender{View: view, Volumes: vols, Recorder: mgr.GetEventRecorder("stork-scheduler-extender"), Log: ctrl.Log.WithName("extender")}
		srv := &placement.Server{Addr: o.extenderAddr, Handler: ext.Handler(), Log: ctrl.Log.WithName("extender")}
		if !o.extenderInsecure {
			// The stork scheduler's client certificate comes from the same Secret (mounted
			// into its pods, 60-scheduler.yaml); the extender answers only certificates of
			// this CA.
			svc := o.extenderService + "." + o.namespace + ".svc"
			rot := &certs.Rotator{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), SecretNamespace: o.namespace, SecretName: ExtenderSecret,
				DNSNames: []string{svc, svc + ".cluster.local"}, CertDir: o.extenderCertDir, ClientCommonName: "stork-scheduler",
				Log: ctrl.Log.WithName("extender-certs")}
			if err := ensureCerts(rot, "the extender's certificates"); err != nil {
				return err
			}
			if err := mgr.Add(rot); err != nil {
				return err
			}
			srv.CertDir = o.extenderCertDir
		}
		if err := mgr.Add(srv); err != nil {
			return err
		}
	}
	if o.monitor {
		fo := &placement.Failover{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), View: view, Drivers: set, Recorder: mgr.GetEventRecorder("stork-failover"), Log: ctrl.Log.WithName("failover")}
		if err := fo.SetupWithManager(mgr); err != nil {
			return err
		}
		if err := mgr.Add(&placement.Monitor{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), View: view, Volumes: vols,
			Recorder: mgr.GetEventRecorder("stork-health-monitor"), Log: ctrl.Log.WithName("health-monitor"), Failover: fo,
			Probation: o.probation, Interval: o.checkEvery, BatchSize: o.batchSize, BatchInterval: o.batchEvery, StaleAfter: o.stale}); err != nil {
			return err
		}
	}
	if o.webhookPort == 0 {
		return nil
	}
	svc := o.webhookService + "." + o.namespace + ".svc"
	rot := &certs.Rotator{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), SecretNamespace: o.namespace, SecretName: "stork-webhook-certs",
		DNSNames: []string{svc, svc + ".cluster.local"}, CertDir: o.webhookCertDir, WebhookConfigs: []string{"stork-pods"}, Log: ctrl.Log.WithName("webhook-certs")}
	for _, ip := range strings.Split(o.webhookIPs, ",") {
		if ip == "" {
			continue
		}
		parsed := net.ParseIP(ip)
		if parsed == nil {
			return fmt.Errorf("--webhook-ips: %q is not an IP address", ip)
		}
		rot.IPs = append(rot.IPs, parsed)
	}
	// The webhook server starts before any runnable and needs the certificate files.
	if err := ensureCerts(rot, "the webhook's certificate"); err != nil {
		return err
	}
	if err := mgr.Add(rot); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhook-certs", rot.Ready); err != nil {
		return err
	}
	podWebhook.Register(mgr.GetWebhookServer(), &podWebhook.PodMutator{Reader: mgr.GetClient(), Drivers: set, SchedulerName: o.schedulerName,
		Decoder: admission.NewDecoder(mgr.GetScheme()), Log: ctrl.Log.WithName("pod-webhook")})
	return nil
}

// setupDashboard adds the web dashboard and, unless it serves plain HTTP, the rotator of its
// serving certificate (its own CA, in the Secret stork-dashboard-certs).
func setupDashboard(mgr ctrl.Manager, cs kubernetes.Interface, o options) error {
	if o.dashboardAddr == "0" || o.dashboardAddr == "" {
		return nil
	}
	srv := &dashboard.Server{Reader: mgr.GetClient(), Auth: &dashboard.Auth{Client: cs}, Addr: o.dashboardAddr, Log: ctrl.Log.WithName("dashboard")}
	if !o.dashboardInsecure {
		svc := o.dashboardService + "." + o.namespace + ".svc"
		rot := &certs.Rotator{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), SecretNamespace: o.namespace, SecretName: "stork-dashboard-certs",
			DNSNames: []string{svc, svc + ".cluster.local", "localhost"}, CertDir: o.dashboardCertDir, Log: ctrl.Log.WithName("dashboard-certs")}
		if err := ensureCerts(rot, "the dashboard's certificate"); err != nil {
			return err
		}
		if err := mgr.Add(rot); err != nil {
			return err
		}
		srv.CertDir = o.dashboardCertDir
	}
	return mgr.Add(srv)
}

// ExtenderSecret holds the extender's CA, serving certificate and the stork scheduler's client
// certificate.
const ExtenderSecret = "stork-extender-certs"

// ensureCerts writes a rotator's certificates once before the manager starts: servers read
// the files when they start. Straight to the API server; the cache is not started yet.
func ensureCerts(rot *certs.Rotator, what string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := rot.Ensure(ctx); err != nil {
		return fmt.Errorf("making %s: %w", what, err)
	}
	return nil
}

// moverImageFromPod sets csi.moverImage, when no --driver-config names it, to the image this
// controller runs from (its own pod, $POD_NAME): data movers then come from the same registry
// and tag as the controller however the image was renamed at install (kustomize's images:,
// Helm's image.repository), without a second setting to keep in step. Outside a pod (no
// $POD_NAME) the csi driver's default, stork:<version>, stays.
func moverImageFromPod(ctx context.Context, cs kubernetes.Interface, o options) error {
	name := os.Getenv("POD_NAME")
	if _, set := o.driverConfig[csi.ConfigMoverImage]; set || name == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pod, err := cs.CoreV1().Pods(o.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading this controller's pod %s/%s for the data movers' image (or set --driver-config=%s=IMAGE): %w",
			o.namespace, name, csi.ConfigMoverImage, err)
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == controllerContainer {
			o.driverConfig[csi.ConfigMoverImage] = c.Image
			return nil
		}
	}
	return fmt.Errorf("pod %s/%s has no container %q to take the data movers' image from (set --driver-config=%s=IMAGE)",
		o.namespace, name, controllerContainer, csi.ConfigMoverImage)
}

// controllerContainer is the name of the controller's container in deploy/base/manifests/30-controller.yaml.
const controllerContainer = "stork"

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
