package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers/mover"
)

// moverCommand is `stork-agent mover backup|restore`, the data mover pods' command.
func moverCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mover",
		Short: "Move a volume's data between a mounted volume and a backup location (run in data mover pods)",
	}
	for _, verb := range []string{mover.Backup, mover.Restore} {
		o := mover.Options{Verb: verb}
		var task string
		zapOpts := zap.Options{}
		short := map[string]string{mover.Backup: "Back the volume mounted at --volume up into the task's location",
			mover.Restore: "Restore the task's backup into the (fresh) volume mounted at --volume"}[verb]
		sub := &cobra.Command{
			Use:   verb,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
				ns, name, ok := strings.Cut(task, "/")
				if !ok || ns == "" || name == "" {
					return fmt.Errorf("--task: %q is not NAMESPACE/NAME", task)
				}
				o.Task = types.NamespacedName{Namespace: ns, Name: name}
				cfg, err := ctrl.GetConfig()
				if err != nil {
					return fmt.Errorf("loading the Kubernetes client configuration: %w", err)
				}
				scheme := runtime.NewScheme()
				utilruntime.Must(clientgoscheme.AddToScheme(scheme))
				utilruntime.Must(storkv1.AddToScheme(scheme))
				if o.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
					return err
				}
				o.Log = ctrl.Log.WithName("mover")
				return mover.Run(ctrl.SetupSignalHandler(), o)
			},
		}
		f := sub.Flags()
		f.StringVar(&task, "task", "", "the VolumeTask to do, as NAMESPACE/NAME")
		f.StringVar(&o.VolumeDir, "volume", "/mover/volume", "where the volume is mounted")
		f.StringVar(&o.AccessDir, "access", "/mover/access", "where the task's access Secret is mounted")
		f.StringVar(&o.Who, "name", os.Getenv("POD_NAME"), "this pod's name, for the task's status (default $POD_NAME)")
		fs := flag.NewFlagSet("log", flag.ExitOnError)
		zapOpts.BindFlags(fs)
		f.AddGoFlagSet(fs)
		cmd.AddCommand(sub)
	}
	return cmd
}
