package csiplugin

import (
	"context"
	"maps"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// defaultCapacity is a new volume's size when the request names none.
const defaultCapacity int64 = 1 << 30

type controllerServer struct {
	csi.UnimplementedControllerServer
	p *Plugin
}

func (s *controllerServer) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, t := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
		csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{
			Rpc: &csi.ControllerServiceCapability_RPC{Type: t}}})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

// injectedFailure returns the error a test asked for with ParamFail, if any.
func injectedFailure(params map[string]string) error {
	if msg, ok := params[ParamFail]; ok {
		return status.Error(codes.ResourceExhausted, msg)
	}
	return nil
}

// ownParameters drops the csi.storage.k8s.io/ parameters the sidecars add (PVC and snapshot
// names with --extra-create-metadata, secret references): they are not the class's.
func ownParameters(params map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range params {
		if !strings.HasPrefix(k, "csi.storage.k8s.io/") {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// capacity picks a new volume's size: the required bytes, else the limit if below the default,
// else the default.
func capacity(r *csi.CapacityRange) (int64, error) {
	req, limit := r.GetRequiredBytes(), r.GetLimitBytes()
	if req < 0 || limit < 0 {
		return 0, status.Error(codes.InvalidArgument, "negative capacity")
	}
	if limit > 0 && req > limit {
		return 0, status.Errorf(codes.OutOfRange, "required bytes %d exceed the limit %d", req, limit)
	}
	switch {
	case req > 0:
		return req, nil
	case limit > 0 && limit < defaultCapacity:
		return limit, nil
	default:
		return defaultCapacity, nil
	}
}

func checkCapabilities(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return status.Error(codes.InvalidArgument, "volume capabilities missing")
	}
	for _, c := range caps {
		if c.GetAccessMode() == nil {
			return status.Error(codes.InvalidArgument, "volume capability without access mode")
		}
		if c.GetMount() == nil && c.GetBlock() == nil {
			return status.Error(codes.InvalidArgument, "volume capability is neither mount nor block")
		}
	}
	return nil
}

func (s *controllerServer) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume name missing")
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	if err := injectedFailure(req.GetParameters()); err != nil {
		return nil, err
	}
	size, err := capacity(req.GetCapacityRange())
	if err != nil {
		return nil, err
	}
	want := volumeMeta{
		ID:            idFor("vol-", req.GetName()),
		Name:          req.GetName(),
		CapacityBytes: size,
		SourceVolume:  req.GetVolumeContentSource().GetVolume().GetVolumeId(),
		SourceSnap:    req.GetVolumeContentSource().GetSnapshot().GetSnapshotId(),
		Topology:      s.p.accessibleTopology(req.GetAccessibilityRequirements()),
		Parameters:    ownParameters(req.GetParameters()),
	}
	st := s.p.store
	st.mu.Lock()
	defer st.mu.Unlock()

	var have volumeMeta
	found, err := readMeta(st.volumeDir(want.ID), want.ID, &have)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if found {
		// The same name again: the sidecar retrying. It must ask for what exists.
		limit := req.GetCapacityRange().GetLimitBytes()
		if have.CapacityBytes < req.GetCapacityRange().GetRequiredBytes() || limit > 0 && have.CapacityBytes > limit ||
			have.SourceVolume != want.SourceVolume || have.SourceSnap != want.SourceSnap {
			return nil, status.Errorf(codes.AlreadyExists, "volume %q exists with %d bytes from %q%q", req.GetName(),
				have.CapacityBytes, have.SourceVolume, have.SourceSnap)
		}
		return &csi.CreateVolumeResponse{Volume: s.p.csiVolume(have, req.GetVolumeContentSource())}, nil
	}

	src, err := s.sourceDir(&want)
	if err != nil {
		return nil, err
	}
	if err := st.placeData(st.volumeDir(want.ID), src); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	want.CreatedAt = time.Now().UTC()
	if err := st.writeMeta(st.volumeDir(want.ID), want); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.CreateVolumeResponse{Volume: s.p.csiVolume(want, req.GetVolumeContentSource())}, nil
}

// sourceDir checks a new volume's content source and returns the directory to copy its data
// from ("" for an empty volume). The caller holds the store's lock.
func (s *controllerServer) sourceDir(v *volumeMeta) (string, error) {
	st := s.p.store
	switch {
	case v.SourceVolume != "":
		src, err := st.volume(v.SourceVolume, "source volume")
		if err != nil {
			return "", err
		}
		if v.CapacityBytes < src.CapacityBytes {
			return "", status.Errorf(codes.OutOfRange, "%d bytes are less than source volume %q's %d", v.CapacityBytes, v.SourceVolume, src.CapacityBytes)
		}
		return st.volumeDir(v.SourceVolume), nil
	case v.SourceSnap != "":
		var src snapshotMeta
		found, err := readMeta(st.snapshotDir(v.SourceSnap), v.SourceSnap, &src)
		if err != nil {
			return "", status.Error(codes.Internal, err.Error())
		}
		if !found {
			return "", status.Errorf(codes.NotFound, "source snapshot %q not found", v.SourceSnap)
		}
		if v.CapacityBytes < src.SizeBytes {
			return "", status.Errorf(codes.OutOfRange, "%d bytes are less than snapshot %q's %d", v.CapacityBytes, v.SourceSnap, src.SizeBytes)
		}
		return st.snapshotDir(v.SourceSnap), nil
	}
	return "", nil
}

func (p *Plugin) csiVolume(v volumeMeta, source *csi.VolumeContentSource) *csi.Volume {
	out := &csi.Volume{VolumeId: v.ID, CapacityBytes: v.CapacityBytes, ContentSource: source}
	if len(v.Topology) > 0 {
		out.AccessibleTopology = []*csi.Topology{{Segments: maps.Clone(v.Topology)}}
	}
	return out
}

func (s *controllerServer) DeleteVolume(_ context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID missing")
	}
	// An ID this plugin cannot have made names no volume: deleting it succeeds, as for any
	// volume that does not exist.
	if !validID(id) {
		return &csi.DeleteVolumeResponse{}, nil
	}
	st := s.p.store
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := remove(st.volumeDir(id)); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.DeleteVolumeResponse{}, nil
}

func (s *controllerServer) ValidateVolumeCapabilities(_ context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID missing")
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	st := s.p.store
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, err := st.volume(req.GetVolumeId(), "volume"); err != nil {
		return nil, err
	}
	// A directory serves any access mode, as a filesystem or (in name) as a block device.
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
	}}, nil
}
