package csiplugin

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-test/v5/driver"
)

const (
	// DefaultName is the driver name when Options.Name is empty.
	DefaultName = "csi.stork.test"
	// DefaultTopologyKey is the topology key when Options.TopologyKey is empty.
	DefaultTopologyKey = "topology.kubernetes.io/zone"
	// ParamFail, as a StorageClass or VolumeSnapshotClass parameter, makes CreateVolume or
	// CreateSnapshot fail with ResourceExhausted and the parameter's value as the message.
	ParamFail = "stork.test/fail"
	// FailSnapshotFile, in a volume's data directory, makes CreateSnapshot of that volume fail
	// with ResourceExhausted and the file's content as the message: a driver error that one
	// volume meets while others of the same class snapshot fine.
	FailSnapshotFile = ".stork-test-fail-snapshot"
	// Version is what GetPluginInfo reports.
	Version = "v1.0.0"
)

// Options configures a Plugin.
type Options struct {
	// Root is the directory of the plugin's state; required.
	Root string
	// Name is the driver name (DefaultName when empty).
	Name string
	// TopologyKey is the one topology key the plugin knows (DefaultTopologyKey when empty):
	// a volume is accessible in the segment of that key it was created for.
	TopologyKey string
	// NodeID and Zone are what NodeGetInfo reports on the socket of Start. There is one plugin
	// for the whole cluster there, so they only matter to callers of its Node service (sanity
	// tests); NodeID defaults to the host name. Real nodes get their own (ServeNode).
	NodeID string
	Zone   string
}

// Plugin is the CSI plugin. Its methods are safe for concurrent use.
type Plugin struct {
	opts  Options
	store *store

	mu     sync.Mutex // guards server and socket
	server *driver.CSIDriver
	socket string
}

// New returns a plugin keeping its state under opts.Root, which it makes if missing.
func New(opts Options) (*Plugin, error) {
	if opts.Root == "" {
		return nil, errors.New("csi plugin: Options.Root is empty")
	}
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	if opts.TopologyKey == "" {
		opts.TopologyKey = DefaultTopologyKey
	}
	if opts.NodeID == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("csi plugin: finding the host name for the node ID: %w", err)
		}
		opts.NodeID = host
	}
	s, err := openStore(opts.Root)
	if err != nil {
		return nil, err
	}
	return &Plugin{opts: opts, store: s}, nil
}

// Name is the driver name.
func (p *Plugin) Name() string { return p.opts.Name }

// TopologyKey is the topology key the plugin reports volumes' accessibility with.
func (p *Plugin) TopologyKey() string { return p.opts.TopologyKey }

// Servers returns the plugin's gRPC services, for serving them some other way than Start.
func (p *Plugin) Servers() *driver.CSIDriverServers {
	return &driver.CSIDriverServers{
		Identity:   &identityServer{p: p},
		Controller: &controllerServer{p: p},
		Node:       &nodeServer{p: p, id: p.opts.NodeID, zone: p.opts.Zone},
	}
}

// Start serves the plugin on a unix socket at path (replacing a stale socket file) until Stop.
// Unix socket paths are limited to about 107 bytes.
func (p *Plugin) Start(path string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.server != nil {
		return fmt.Errorf("csi plugin %s: already serving on %s", p.opts.Name, p.socket)
	}
	d, err := p.serve(path, p.Servers())
	if err != nil {
		return err
	}
	p.server, p.socket = d, path
	return nil
}

// NodeService is the plugin's node part for one real node, serving on its own socket.
type NodeService struct {
	server *driver.CSIDriver
	socket string
}

// ServeNode serves the Identity and Node services for a real kubelet on node nodeID (in zone,
// if not empty) at path, until NodeService.Stop: NodeGetInfo reports that node, and volumes
// are published as bind mounts (which needs root). The volumes are the plugin's own, so the
// controller side (Start) and every node share one store.
func (p *Plugin) ServeNode(path, nodeID, zone string) (*NodeService, error) {
	d, err := p.serve(path, &driver.CSIDriverServers{
		Identity: &identityServer{p: p},
		Node:     &nodeServer{p: p, id: nodeID, zone: zone, bind: true},
	})
	if err != nil {
		return nil, err
	}
	return &NodeService{server: d, socket: path}, nil
}

// Stop stops serving and removes the socket.
func (n *NodeService) Stop() {
	n.server.Stop()
	_ = os.Remove(n.socket)
}

func (p *Plugin) serve(path string, servers *driver.CSIDriverServers) (*driver.CSIDriver, error) {
	// The kernel's limit (sun_path) is 108 bytes with the terminating NUL; longer paths fail
	// with a bare "invalid argument".
	if len(path) > 107 {
		return nil, fmt.Errorf("csi plugin %s: socket path %s is longer than 107 bytes", p.opts.Name, path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("csi plugin %s: removing stale socket: %w", p.opts.Name, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("csi plugin %s: making the socket's directory: %w", p.opts.Name, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("csi plugin %s: listening on %s: %w", p.opts.Name, path, err)
	}
	d := driver.NewCSIDriver(servers)
	if err := d.Start(l); err != nil {
		l.Close()
		return nil, fmt.Errorf("csi plugin %s: serving on %s: %w", p.opts.Name, path, err)
	}
	return d, nil
}

// Endpoint is the address of the socket in the form the sidecars' --csi-address takes.
func (p *Plugin) Endpoint() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.socket == "" {
		return ""
	}
	return "unix://" + p.socket
}

// Stop stops serving and removes the socket; the state stays. Calling it again does nothing.
func (p *Plugin) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.server == nil {
		return
	}
	// The driver stops the gRPC server, which closes the listener; closing the listener first
	// would make the driver's serving goroutine panic.
	p.server.Stop()
	_ = os.Remove(p.socket)
	p.server, p.socket = nil, ""
}

// VolumeDir is the data directory of the volume with the given handle (CSI volume ID, a PV's
// spec.csi.volumeHandle).
func (p *Plugin) VolumeDir(handle string) string { return p.store.volumeDir(handle) }

// SnapshotDir is the data directory of the snapshot with the given ID (a VolumeSnapshotContent's
// status.snapshotHandle).
func (p *Plugin) SnapshotDir(id string) string { return p.store.snapshotDir(id) }

// accessibleTopology is the segment a new volume is accessible in: the first preferred segment
// of the request, else its first requisite one, cut down to the plugin's topology key. Nil when
// the request has no segment with that key.
func (p *Plugin) accessibleTopology(req *csi.TopologyRequirement) map[string]string {
	if req == nil {
		return nil
	}
	for _, list := range [][]*csi.Topology{req.GetPreferred(), req.GetRequisite()} {
		if len(list) == 0 {
			continue
		}
		if v, ok := list[0].GetSegments()[p.opts.TopologyKey]; ok {
			return map[string]string{p.opts.TopologyKey: v}
		}
		return nil
	}
	return nil
}
