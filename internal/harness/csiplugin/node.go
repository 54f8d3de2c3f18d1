package csiplugin

import (
	"context"
	"errors"
	"io/fs"
	"os"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// nodeServer identifies a node and publishes volumes on it. Served by Start (one plugin for the
// whole cluster, nothing calls it but csi-test's sanity suite: the harness plays the kubelet and
// reaches a volume's data through Plugin.VolumeDir), it publishes a volume as a symbolic link to
// its directory. Served by ServeNode for a real kubelet, it bind-mounts the directory, as a
// container runtime needs a mount point: a link is not followed into the container.
type nodeServer struct {
	csi.UnimplementedNodeServer
	p        *Plugin
	id, zone string
	bind     bool
}

func (s *nodeServer) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{}, nil
}

func (s *nodeServer) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	resp := &csi.NodeGetInfoResponse{NodeId: s.id}
	if s.zone != "" {
		resp.AccessibleTopology = &csi.Topology{Segments: map[string]string{s.p.opts.TopologyKey: s.zone}}
	}
	return resp, nil
}

// NodePublishVolume links target_path to the volume's directory. A link cannot be read-only:
// the readonly flag is not enforced.
func (s *nodeServer) NodePublishVolume(_ context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	switch {
	case req.GetVolumeId() == "":
		return nil, status.Error(codes.InvalidArgument, "volume ID missing")
	case req.GetTargetPath() == "":
		return nil, status.Error(codes.InvalidArgument, "target path missing")
	case req.GetVolumeCapability() == nil:
		return nil, status.Error(codes.InvalidArgument, "volume capability missing")
	case req.GetVolumeCapability().GetMount() == nil:
		return nil, status.Error(codes.InvalidArgument, "only mount access is supported: volumes are directories")
	}
	st := s.p.store
	st.mu.Lock()
	defer st.mu.Unlock()
	v, err := st.volume(req.GetVolumeId(), "volume")
	if err != nil {
		return nil, err
	}
	want := st.volumeDir(v.ID)
	target := req.GetTargetPath()
	if s.bind {
		return bindMount(want, target, req.GetReadonly(), v.ID)
	}
	if have, err := os.Readlink(target); err == nil {
		if have == want {
			return &csi.NodePublishVolumeResponse{}, nil // published already
		}
		return nil, status.Errorf(codes.AlreadyExists, "%s links to %s, not to volume %s", target, have, v.ID)
	}
	// A CO may have made the target directory; an empty one is replaced by the link.
	if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, status.Errorf(codes.FailedPrecondition, "target path %s is in the way: %v", target, err)
	}
	if err := os.Symlink(want, target); err != nil {
		return nil, status.Errorf(codes.Internal, "publishing volume %s at %s: %v", v.ID, target, err)
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

// NodeUnpublishVolume removes the link; a target path that is gone already is success.
func (s *nodeServer) NodeUnpublishVolume(_ context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	switch {
	case req.GetVolumeId() == "":
		return nil, status.Error(codes.InvalidArgument, "volume ID missing")
	case req.GetTargetPath() == "":
		return nil, status.Error(codes.InvalidArgument, "target path missing")
	}
	if s.bind {
		return &csi.NodeUnpublishVolumeResponse{}, unmount(req.GetTargetPath())
	}
	fi, err := os.Lstat(req.GetTargetPath())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &csi.NodeUnpublishVolumeResponse{}, nil
	case err != nil:
		return nil, status.Errorf(codes.Internal, "unpublishing %s: %v", req.GetTargetPath(), err)
	case fi.Mode()&fs.ModeSymlink == 0:
		return nil, status.Errorf(codes.FailedPrecondition, "%s is not a link this plugin made", req.GetTargetPath())
	}
	if err := os.Remove(req.GetTargetPath()); err != nil {
		return nil, status.Errorf(codes.Internal, "unpublishing %s: %v", req.GetTargetPath(), err)
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}
