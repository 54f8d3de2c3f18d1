package csiplugin

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// CreateSnapshot copies the source volume's data: the snapshot is complete, and ready to use,
// when the call returns.
func (s *controllerServer) CreateSnapshot(_ context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot name missing")
	}
	if req.GetSourceVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "source volume ID missing")
	}
	if err := injectedFailure(req.GetParameters()); err != nil {
		return nil, err
	}
	id := idFor("snap-", req.GetName())
	st := s.p.store
	st.mu.Lock()
	defer st.mu.Unlock()

	var have snapshotMeta
	found, err := readMeta(st.snapshotDir(id), id, &have)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if found {
		if have.SourceVolume != req.GetSourceVolumeId() {
			return nil, status.Errorf(codes.AlreadyExists, "snapshot %q exists, of volume %q", req.GetName(), have.SourceVolume)
		}
		return &csi.CreateSnapshotResponse{Snapshot: csiSnapshot(have)}, nil
	}
	src, err := st.volume(req.GetSourceVolumeId(), "source volume")
	if err != nil {
		return nil, err
	}
	if msg, err := os.ReadFile(filepath.Join(st.volumeDir(src.ID), FailSnapshotFile)); err == nil {
		return nil, status.Error(codes.ResourceExhausted, strings.TrimSpace(string(msg)))
	}
	if err := st.placeData(st.snapshotDir(id), st.volumeDir(src.ID)); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	size, err := dataSize(st.snapshotDir(id))
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	m := snapshotMeta{ID: id, Name: req.GetName(), SourceVolume: src.ID, SizeBytes: size, CreatedAt: time.Now().UTC(), ReadyToUse: true}
	if err := st.writeMeta(st.snapshotDir(id), m); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.CreateSnapshotResponse{Snapshot: csiSnapshot(m)}, nil
}

func csiSnapshot(m snapshotMeta) *csi.Snapshot {
	return &csi.Snapshot{
		SnapshotId:     m.ID,
		SourceVolumeId: m.SourceVolume,
		SizeBytes:      m.SizeBytes,
		CreationTime:   timestamppb.New(m.CreatedAt),
		ReadyToUse:     m.ReadyToUse,
	}
}

func (s *controllerServer) DeleteSnapshot(_ context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	id := req.GetSnapshotId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot ID missing")
	}
	if !validID(id) {
		return &csi.DeleteSnapshotResponse{}, nil // names no snapshot: already gone
	}
	st := s.p.store
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := remove(st.snapshotDir(id)); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

// ListSnapshots follows the CSI semantics: a snapshot ID that names nothing gives an empty
// list, not an error (csi-snapshotter checks pre-provisioned handles that way), and the
// starting token is the index of the first entry of the page in the ID order.
func (s *controllerServer) ListSnapshots(_ context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	if req.GetMaxEntries() < 0 {
		return nil, status.Error(codes.InvalidArgument, "negative max_entries")
	}
	st := s.p.store
	st.mu.Lock()
	all, err := st.snapshots()
	st.mu.Unlock()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	var matching []snapshotMeta
	for _, m := range all {
		if id := req.GetSnapshotId(); id != "" && m.ID != id {
			continue
		}
		if src := req.GetSourceVolumeId(); src != "" && m.SourceVolume != src {
			continue
		}
		matching = append(matching, m)
	}
	start := 0
	if tok := req.GetStartingToken(); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 || n > len(matching) {
			return nil, status.Errorf(codes.Aborted, "starting token %q is not valid", tok)
		}
		start = n
	}
	end := len(matching)
	if limit := int(req.GetMaxEntries()); limit > 0 && start+limit < end {
		end = start + limit
	}
	resp := &csi.ListSnapshotsResponse{}
	for _, m := range matching[start:end] {
		resp.Entries = append(resp.Entries, &csi.ListSnapshotsResponse_Entry{Snapshot: csiSnapshot(m)})
	}
	if end < len(matching) {
		resp.NextToken = strconv.Itoa(end)
	}
	return resp, nil
}
