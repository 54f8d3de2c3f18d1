package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	storagev1 "k8s.io/api/storage/v1"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stork.dev/stork/internal/harness/csiplugin"
)

// nodePlugin is the CSI driver on one real node: the plugin's node service on a socket in the
// kubelet's plugins directory, and a registration socket in its plugins_registry directory, which
// the kubelet's plugin watcher finds and asks what it serves (the part node-driver-registrar
// plays in a real installation; that sidecar's module is refused by this machine's module
// proxy, so the harness answers the kubelet's registration API itself, with its own types).
// The kubelet then calls NodeGetInfo, records the driver in the node's CSINode and mounts the
// driver's volumes into pods through the node socket.
type nodePlugin struct {
	registerapi.UnimplementedRegistrationServer
	driver, endpoint string
	node             *csiplugin.NodeService
	reg              *grpc.Server
	regSocket        string

	mu     sync.Mutex
	status *registerapi.RegistrationStatus // the kubelet's last answer
}

// serveNodePlugin registers the driver with the kubelet of n and waits until the kubelet has
// put it in the node's CSINode.
func (s *CSI) serveNodePlugin(ctx context.Context, n *RealNode) (*nodePlugin, error) {
	root := filepath.Join(n.Dir, "kubelet")
	np := &nodePlugin{driver: s.Driver,
		endpoint:  filepath.Join(root, "plugins", s.Driver, "csi.sock"),
		regSocket: filepath.Join(root, "plugins_registry", s.Driver+"-reg.sock")}
	var err error
	if np.node, err = s.Plugin.ServeNode(np.endpoint, n.Name, n.labels[s.TopologyKey]); err != nil {
		return nil, err
	}
	if err := np.serveRegistration(); err != nil {
		np.stop()
		return nil, err
	}
	err = s.cluster.WaitFor(ctx, time.Minute, "the kubelet of "+n.Name+" to register CSI driver "+s.Driver, func(ctx context.Context) (bool, error) {
		if st := np.lastStatus(); st != nil && !st.PluginRegistered {
			return false, fmt.Errorf("the kubelet refused the plugin: %s", st.Error)
		}
		var cn storagev1.CSINode
		if err := s.cluster.Client.Get(ctx, client.ObjectKey{Name: n.Name}, &cn); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		for _, d := range cn.Spec.Drivers {
			if d.Name == s.Driver {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		np.stop()
		return nil, err
	}
	return np, nil
}

func (np *nodePlugin) serveRegistration() error {
	if len(np.regSocket) > 107 {
		return fmt.Errorf("registration socket path %s is longer than 107 bytes", np.regSocket)
	}
	if err := os.MkdirAll(filepath.Dir(np.regSocket), 0o750); err != nil {
		return err
	}
	if err := os.Remove(np.regSocket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	l, err := net.Listen("unix", np.regSocket)
	if err != nil {
		return fmt.Errorf("listening for the kubelet's plugin registration: %w", err)
	}
	np.reg = grpc.NewServer()
	registerapi.RegisterRegistrationServer(np.reg, np)
	go func() { _ = np.reg.Serve(l) }()
	return nil
}

// GetInfo tells the kubelet what the socket registers: a CSI plugin, its name and node socket.
func (np *nodePlugin) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{Type: registerapi.CSIPlugin, Name: np.driver, Endpoint: np.endpoint,
		SupportedVersions: []string{"1.0.0"}}, nil
}

// NotifyRegistrationStatus records the kubelet's verdict.
func (np *nodePlugin) NotifyRegistrationStatus(_ context.Context, st *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	np.mu.Lock()
	defer np.mu.Unlock()
	np.status = st
	return &registerapi.RegistrationStatusResponse{}, nil
}

func (np *nodePlugin) lastStatus() *registerapi.RegistrationStatus {
	np.mu.Lock()
	defer np.mu.Unlock()
	return np.status
}

// stop removes the registration socket first (the kubelet deregisters the plugin), then stops
// the node service.
func (np *nodePlugin) stop() {
	if np.reg != nil {
		np.reg.Stop()
		_ = os.Remove(np.regSocket)
	}
	np.node.Stop()
}
