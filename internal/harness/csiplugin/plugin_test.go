package csiplugin

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

const zoneKey = DefaultTopologyKey

// clients talks to a plugin over its socket, as the sidecars do.
type clients struct {
	csi.IdentityClient
	csi.ControllerClient
	csi.NodeClient
	plugin *Plugin
}

// start serves a plugin with its state in root (a new directory when empty) on a socket in a
// temporary directory, and stops it when the test ends.
func start(t *testing.T, root string) *clients {
	t.Helper()
	if root == "" {
		root = t.TempDir()
	}
	p, err := New(Options{Root: root, NodeID: "node-1", Zone: "zone-a"})
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir() can be too deep for a unix socket (about 107 bytes).
	sockDir, err := os.MkdirTemp("", "csip")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	if err := p.Start(filepath.Join(sockDir, "csi.sock")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	conn, err := grpc.NewClient(p.Endpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &clients{csi.NewIdentityClient(conn), csi.NewControllerClient(conn), csi.NewNodeClient(conn), p}
}

func mountCaps() []*csi.VolumeCapability {
	return []*csi.VolumeCapability{{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}}
}

func zones(zs ...string) []*csi.Topology {
	var out []*csi.Topology
	for _, z := range zs {
		out = append(out, &csi.Topology{Segments: map[string]string{zoneKey: z}})
	}
	return out
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got %v (%v), want code %v", got, err, want)
	}
}

func createVolume(t *testing.T, c *clients, name string, src *csi.VolumeContentSource) *csi.Volume {
	t.Helper()
	resp, err := c.CreateVolume(context.Background(), &csi.CreateVolumeRequest{Name: name, VolumeCapabilities: mountCaps(), VolumeContentSource: src})
	if err != nil {
		t.Fatalf("creating volume %s: %v", name, err)
	}
	return resp.GetVolume()
}

func createSnapshot(t *testing.T, c *clients, name, volume string) *csi.Snapshot {
	t.Helper()
	resp, err := c.CreateSnapshot(context.Background(), &csi.CreateSnapshotRequest{Name: name, SourceVolumeId: volume})
	if err != nil {
		t.Fatalf("creating snapshot %s of %s: %v", name, volume, err)
	}
	return resp.GetSnapshot()
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestIdentityAndNode(t *testing.T) {
	ctx := context.Background()
	c := start(t, "")
	info, err := c.GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
	if err != nil || info.GetName() != DefaultName {
		t.Fatalf("GetPluginInfo = %v, %v; want name %s", info, err, DefaultName)
	}
	caps, err := c.GetPluginCapabilities(ctx, &csi.GetPluginCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[csi.PluginCapability_Service_Type]bool{}
	for _, cp := range caps.GetCapabilities() {
		got[cp.GetService().GetType()] = true
	}
	for _, want := range []csi.PluginCapability_Service_Type{csi.PluginCapability_Service_CONTROLLER_SERVICE, csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS} {
		if !got[want] {
			t.Errorf("plugin capabilities %v lack %v", caps.GetCapabilities(), want)
		}
	}
	probe, err := c.Probe(ctx, &csi.ProbeRequest{})
	if err != nil || !probe.GetReady().GetValue() {
		t.Fatalf("Probe = %v, %v; want ready", probe, err)
	}
	ni, err := c.NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	if err != nil || ni.GetNodeId() != "node-1" || ni.GetAccessibleTopology().GetSegments()[zoneKey] != "zone-a" {
		t.Fatalf("NodeGetInfo = %v, %v; want node-1 in zone-a", ni, err)
	}
	cc, err := c.ControllerGetCapabilities(ctx, &csi.ControllerGetCapabilitiesRequest{})
	if err != nil || len(cc.GetCapabilities()) != 4 {
		t.Fatalf("ControllerGetCapabilities = %v, %v; want 4", cc, err)
	}
}

func TestCreateVolume(t *testing.T) {
	c := start(t, "")
	cases := []struct {
		name     string
		req      *csi.CreateVolumeRequest
		code     codes.Code
		msg      string // wanted error message
		capacity int64
		zone     string // wanted accessible zone, "" for none
	}{
		{name: "no name", req: &csi.CreateVolumeRequest{VolumeCapabilities: mountCaps()}, code: codes.InvalidArgument},
		{name: "no capabilities", req: &csi.CreateVolumeRequest{Name: "v"}, code: codes.InvalidArgument},
		{name: "injected failure", code: codes.ResourceExhausted, msg: "quota exceeded",
			req: &csi.CreateVolumeRequest{Name: "v-fail", VolumeCapabilities: mountCaps(), Parameters: map[string]string{ParamFail: "quota exceeded"}}},
		{name: "default capacity", req: &csi.CreateVolumeRequest{Name: "v-default", VolumeCapabilities: mountCaps()}, capacity: 1 << 30},
		{name: "required bytes", capacity: 5 << 20,
			req: &csi.CreateVolumeRequest{Name: "v-5m", VolumeCapabilities: mountCaps(), CapacityRange: &csi.CapacityRange{RequiredBytes: 5 << 20}}},
		{name: "limit below default", capacity: 1 << 20,
			req: &csi.CreateVolumeRequest{Name: "v-limit", VolumeCapabilities: mountCaps(), CapacityRange: &csi.CapacityRange{LimitBytes: 1 << 20}}},
		{name: "required above limit", code: codes.OutOfRange,
			req: &csi.CreateVolumeRequest{Name: "v-range", VolumeCapabilities: mountCaps(), CapacityRange: &csi.CapacityRange{RequiredBytes: 2, LimitBytes: 1}}},
		{name: "first preferred segment", capacity: 1 << 30, zone: "zone-b",
			req: &csi.CreateVolumeRequest{Name: "v-pref", VolumeCapabilities: mountCaps(),
				AccessibilityRequirements: &csi.TopologyRequirement{Requisite: zones("zone-a", "zone-b"), Preferred: zones("zone-b", "zone-a")}}},
		{name: "first requisite segment", capacity: 1 << 30, zone: "zone-c",
			req: &csi.CreateVolumeRequest{Name: "v-req", VolumeCapabilities: mountCaps(),
				AccessibilityRequirements: &csi.TopologyRequirement{Requisite: zones("zone-c", "zone-a")}}},
		{name: "segment without the key", capacity: 1 << 30,
			req: &csi.CreateVolumeRequest{Name: "v-other-key", VolumeCapabilities: mountCaps(),
				AccessibilityRequirements: &csi.TopologyRequirement{Preferred: []*csi.Topology{{Segments: map[string]string{"rack": "r1"}}}}}},
		{name: "sidecar parameters ignored", capacity: 1 << 30,
			req: &csi.CreateVolumeRequest{Name: "v-params", VolumeCapabilities: mountCaps(), Parameters: map[string]string{"csi.storage.k8s.io/pvc/name": "data"}}},
		{name: "missing source snapshot", code: codes.NotFound,
			req: &csi.CreateVolumeRequest{Name: "v-nosnap", VolumeCapabilities: mountCaps(), VolumeContentSource: &csi.VolumeContentSource{
				Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: "snap-0"}}}}},
		{name: "missing source volume", code: codes.NotFound,
			req: &csi.CreateVolumeRequest{Name: "v-novol", VolumeCapabilities: mountCaps(), VolumeContentSource: &csi.VolumeContentSource{
				Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: "../../etc"}}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.CreateVolume(context.Background(), tc.req)
			wantCode(t, err, tc.code)
			if err != nil {
				if tc.msg != "" && status.Convert(err).Message() != tc.msg {
					t.Errorf("message %q, want %q", status.Convert(err).Message(), tc.msg)
				}
				return
			}
			v := resp.GetVolume()
			if v.GetCapacityBytes() != tc.capacity {
				t.Errorf("capacity %d, want %d", v.GetCapacityBytes(), tc.capacity)
			}
			var zone string
			if top := v.GetAccessibleTopology(); len(top) > 0 {
				zone = top[0].GetSegments()[zoneKey]
			}
			if zone != tc.zone {
				t.Errorf("accessible topology %v, want zone %q", v.GetAccessibleTopology(), tc.zone)
			}
			if fi, err := os.Stat(c.plugin.VolumeDir(v.GetVolumeId())); err != nil || !fi.IsDir() {
				t.Errorf("volume directory: %v", err)
			}
		})
	}
}

func TestCreateVolumeIsIdempotentByName(t *testing.T) {
	ctx := context.Background()
	c := start(t, "")
	req := &csi.CreateVolumeRequest{Name: "pvc-1", VolumeCapabilities: mountCaps(), CapacityRange: &csi.CapacityRange{RequiredBytes: 1 << 20}}
	first, err := c.CreateVolume(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(c.plugin.VolumeDir(first.GetVolume().GetVolumeId()), "f"), "kept")
	again, err := c.CreateVolume(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if again.GetVolume().GetVolumeId() != first.GetVolume().GetVolumeId() {
		t.Fatalf("same name gave volumes %s and %s", first.GetVolume().GetVolumeId(), again.GetVolume().GetVolumeId())
	}
	if got := readFile(t, filepath.Join(c.plugin.VolumeDir(first.GetVolume().GetVolumeId()), "f")); got != "kept" {
		t.Fatalf("data after a repeated create: %q", got)
	}
	bigger := &csi.CreateVolumeRequest{Name: "pvc-1", VolumeCapabilities: mountCaps(), CapacityRange: &csi.CapacityRange{RequiredBytes: 2 << 20}}
	_, err = c.CreateVolume(ctx, bigger)
	wantCode(t, err, codes.AlreadyExists)
}

func TestDataPath(t *testing.T) {
	ctx := context.Background()
	c := start(t, "")
	src := createVolume(t, c, "pvc-src", nil)
	writeFile(t, filepath.Join(c.plugin.VolumeDir(src.GetVolumeId()), "dir", "file"), "hello")

	snap := createSnapshot(t, c, "snapshot-1", src.GetVolumeId())
	if !snap.GetReadyToUse() || snap.GetSizeBytes() != 5 || snap.GetSourceVolumeId() != src.GetVolumeId() || snap.GetCreationTime() == nil {
		t.Fatalf("snapshot %v: want ready, 5 bytes, of %s, with a creation time", snap, src.GetVolumeId())
	}
	// The snapshot is a copy: later writes to the volume do not reach it.
	writeFile(t, filepath.Join(c.plugin.VolumeDir(src.GetVolumeId()), "dir", "file"), "changed")
	if got := readFile(t, filepath.Join(c.plugin.SnapshotDir(snap.GetSnapshotId()), "dir", "file")); got != "hello" {
		t.Fatalf("snapshot data %q, want hello", got)
	}

	cases := []struct {
		name   string
		source *csi.VolumeContentSource
		want   string
	}{
		{"from snapshot", &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
			Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snap.GetSnapshotId()}}}, "hello"},
		{"clone", &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{
			Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: src.GetVolumeId()}}}, "changed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := createVolume(t, c, "pvc-"+tc.name, tc.source)
			if v.GetContentSource() == nil {
				t.Errorf("volume %v does not report its content source", v)
			}
			if got := readFile(t, filepath.Join(c.plugin.VolumeDir(v.GetVolumeId()), "dir", "file")); got != tc.want {
				t.Errorf("restored data %q, want %q", got, tc.want)
			}
		})
	}

	// Deleting the source leaves the snapshot usable.
	if _, err := c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: src.GetVolumeId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.plugin.VolumeDir(src.GetVolumeId())); !os.IsNotExist(err) {
		t.Fatalf("deleted volume's directory: %v", err)
	}
	v := createVolume(t, c, "pvc-after-delete", &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
		Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snap.GetSnapshotId()}}})
	if got := readFile(t, filepath.Join(c.plugin.VolumeDir(v.GetVolumeId()), "dir", "file")); got != "hello" {
		t.Fatalf("restored data %q, want hello", got)
	}
}

func TestCreateSnapshot(t *testing.T) {
	ctx := context.Background()
	c := start(t, "")
	vol := createVolume(t, c, "pvc-a", nil).GetVolumeId()
	other := createVolume(t, c, "pvc-b", nil).GetVolumeId()
	first := createSnapshot(t, c, "snapshot-a", vol)
	cases := []struct {
		name string
		req  *csi.CreateSnapshotRequest
		code codes.Code
		msg  string
		id   string // wanted snapshot ID when not empty
	}{
		{name: "no name", req: &csi.CreateSnapshotRequest{SourceVolumeId: vol}, code: codes.InvalidArgument},
		{name: "no source", req: &csi.CreateSnapshotRequest{Name: "s"}, code: codes.InvalidArgument},
		{name: "missing source", req: &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: "vol-0"}, code: codes.NotFound},
		{name: "injected failure", code: codes.ResourceExhausted, msg: "injected snapshot failure: quota exceeded",
			req: &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: vol, Parameters: map[string]string{
				ParamFail: "injected snapshot failure: quota exceeded", "csi.storage.k8s.io/volumesnapshot/name": "x"}}},
		{name: "same name again", req: &csi.CreateSnapshotRequest{Name: "snapshot-a", SourceVolumeId: vol}, id: first.GetSnapshotId()},
		{name: "same name, other volume", req: &csi.CreateSnapshotRequest{Name: "snapshot-a", SourceVolumeId: other}, code: codes.AlreadyExists},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.CreateSnapshot(ctx, tc.req)
			wantCode(t, err, tc.code)
			if tc.msg != "" && status.Convert(err).Message() != tc.msg {
				t.Errorf("message %q, want %q", status.Convert(err).Message(), tc.msg)
			}
			if tc.id != "" && resp.GetSnapshot().GetSnapshotId() != tc.id {
				t.Errorf("snapshot ID %s, want %s", resp.GetSnapshot().GetSnapshotId(), tc.id)
			}
		})
	}
}

func TestListSnapshots(t *testing.T) {
	ctx := context.Background()
	c := start(t, "")
	a := createVolume(t, c, "pvc-a", nil).GetVolumeId()
	b := createVolume(t, c, "pvc-b", nil).GetVolumeId()
	s1 := createSnapshot(t, c, "s1", a).GetSnapshotId()
	createSnapshot(t, c, "s2", a)
	createSnapshot(t, c, "s3", b)

	cases := []struct {
		name  string
		req   *csi.ListSnapshotsRequest
		code  codes.Code
		count int
		next  bool
	}{
		{name: "all", req: &csi.ListSnapshotsRequest{}, count: 3},
		{name: "by ID", req: &csi.ListSnapshotsRequest{SnapshotId: s1}, count: 1},
		{name: "unknown ID", req: &csi.ListSnapshotsRequest{SnapshotId: "snap-0"}, count: 0},
		{name: "ID that cannot exist", req: &csi.ListSnapshotsRequest{SnapshotId: "../x"}, count: 0},
		{name: "ID of another volume", req: &csi.ListSnapshotsRequest{SnapshotId: s1, SourceVolumeId: b}, count: 0},
		{name: "by source", req: &csi.ListSnapshotsRequest{SourceVolumeId: a}, count: 2},
		{name: "first page", req: &csi.ListSnapshotsRequest{MaxEntries: 2}, count: 2, next: true},
		{name: "last page", req: &csi.ListSnapshotsRequest{MaxEntries: 2, StartingToken: "2"}, count: 1},
		{name: "bad token", req: &csi.ListSnapshotsRequest{StartingToken: "x"}, code: codes.Aborted},
		{name: "token past the end", req: &csi.ListSnapshotsRequest{StartingToken: "9"}, code: codes.Aborted},
		{name: "negative max", req: &csi.ListSnapshotsRequest{MaxEntries: -1}, code: codes.InvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.ListSnapshots(ctx, tc.req)
			wantCode(t, err, tc.code)
			if err != nil {
				return
			}
			if len(resp.GetEntries()) != tc.count || (resp.GetNextToken() != "") != tc.next {
				t.Errorf("got %d entries, next token %q; want %d, next %v", len(resp.GetEntries()), resp.GetNextToken(), tc.count, tc.next)
			}
		})
	}
}

func TestDeleteIsIdempotent(t *testing.T) {
	ctx := context.Background()
	c := start(t, "")
	vol := createVolume(t, c, "pvc-a", nil).GetVolumeId()
	snap := createSnapshot(t, c, "s", vol).GetSnapshotId()
	for _, id := range []string{snap, snap, "snap-0", "../../x"} {
		if _, err := c.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: id}); err != nil {
			t.Errorf("deleting snapshot %q: %v", id, err)
		}
	}
	for _, id := range []string{vol, vol, "vol-0", "/etc"} {
		if _, err := c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
			t.Errorf("deleting volume %q: %v", id, err)
		}
	}
	_, err := c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{})
	wantCode(t, err, codes.InvalidArgument)
	resp, err := c.ListSnapshots(ctx, &csi.ListSnapshotsRequest{})
	if err != nil || len(resp.GetEntries()) != 0 {
		t.Fatalf("snapshots after deletion: %v, %v", resp, err)
	}
}

// TestRestart shows that the state is the directory: a plugin started on the same root knows
// every volume and snapshot, and creating them again by name gives the same objects.
func TestRestart(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	c := start(t, root)
	vol := createVolume(t, c, "pvc-a", nil).GetVolumeId()
	writeFile(t, filepath.Join(c.plugin.VolumeDir(vol), "f"), "data")
	snap := createSnapshot(t, c, "s", vol).GetSnapshotId()
	c.plugin.Stop()
	// What a crash in the middle of a copy leaves behind.
	writeFile(t, filepath.Join(root, "tmp", "data-1", "half"), "x")

	c = start(t, root)
	if got := createVolume(t, c, "pvc-a", nil).GetVolumeId(); got != vol {
		t.Fatalf("volume after restart %s, want %s", got, vol)
	}
	if got := createSnapshot(t, c, "s", vol).GetSnapshotId(); got != snap {
		t.Fatalf("snapshot after restart %s, want %s", got, snap)
	}
	resp, err := c.ListSnapshots(ctx, &csi.ListSnapshotsRequest{SnapshotId: snap})
	if err != nil || len(resp.GetEntries()) != 1 || resp.GetEntries()[0].GetSnapshot().GetSizeBytes() != 4 {
		t.Fatalf("ListSnapshots after restart: %v, %v", resp, err)
	}
	if _, err := os.Stat(filepath.Join(root, "tmp", "data-1")); !os.IsNotExist(err) {
		t.Fatalf("staging leftovers after restart: %v", err)
	}
}

func TestPublish(t *testing.T) {
	ctx := context.Background()
	c := start(t, "")
	vol := createVolume(t, c, "pvc-a", nil).GetVolumeId()
	writeFile(t, filepath.Join(c.plugin.VolumeDir(vol), "f"), "data")
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.Mkdir(filepath.Join(dir, "busy"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "busy", "x"), "x")
	publish := func(id, target string, caps *csi.VolumeCapability) *csi.NodePublishVolumeRequest {
		return &csi.NodePublishVolumeRequest{VolumeId: id, TargetPath: target, VolumeCapability: caps}
	}
	block := &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: mountCaps()[0].GetAccessMode()}
	cases := []struct {
		name string
		req  *csi.NodePublishVolumeRequest
		code codes.Code
	}{
		{"no volume", publish("", target, mountCaps()[0]), codes.InvalidArgument},
		{"no target", publish(vol, "", mountCaps()[0]), codes.InvalidArgument},
		{"no capability", publish(vol, target, nil), codes.InvalidArgument},
		{"block", publish(vol, target, block), codes.InvalidArgument},
		{"unknown volume", publish("vol-0", target, mountCaps()[0]), codes.NotFound},
		{"publish", publish(vol, target, mountCaps()[0]), codes.OK},
		{"publish again", publish(vol, target, mountCaps()[0]), codes.OK},
		{"target in the way", publish(vol, filepath.Join(dir, "busy"), mountCaps()[0]), codes.FailedPrecondition},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.NodePublishVolume(ctx, tc.req)
			wantCode(t, err, tc.code)
		})
	}
	if got := readFile(t, filepath.Join(target, "f")); got != "data" {
		t.Fatalf("data through the published path: %q", got)
	}
	for range 2 {
		if _, err := c.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: vol, TargetPath: target}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Fatalf("target after unpublishing: %v", err)
	}
	if got := readFile(t, filepath.Join(c.plugin.VolumeDir(vol), "f")); got != "data" {
		t.Fatalf("volume data after unpublishing: %q", got)
	}
}

// TestServeNode publishes through a node service as a kubelet would: NodeGetInfo names that
// node, a volume is bind-mounted (read-only when asked), and unpublishing unmounts it.
func TestServeNode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("bind mounts need root")
	}
	ctx := context.Background()
	c := start(t, "")
	vol := createVolume(t, c, "pvc-a", nil).GetVolumeId()
	writeFile(t, filepath.Join(c.plugin.VolumeDir(vol), "f"), "data")
	sockDir, err := os.MkdirTemp("", "csin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	ns, err := c.plugin.ServeNode(filepath.Join(sockDir, "node.sock"), "real-1", "zone-b")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Stop)
	conn, err := grpc.NewClient("unix://"+filepath.Join(sockDir, "node.sock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	node := csi.NewNodeClient(conn)
	ni, err := node.NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	if err != nil || ni.GetNodeId() != "real-1" || ni.GetAccessibleTopology().GetSegments()[zoneKey] != "zone-b" {
		t.Fatalf("NodeGetInfo = %v, %v; want real-1 in zone-b", ni, err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name     string
		readOnly bool
	}{{"read-write", false}, {"read-only", true}} {
		t.Run(tc.name, func(t *testing.T) {
			target := filepath.Join(dir, tc.name, "mount") // the kubelet makes the parent only
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				t.Fatal(err)
			}
			req := &csi.NodePublishVolumeRequest{VolumeId: vol, TargetPath: target, VolumeCapability: mountCaps()[0], Readonly: tc.readOnly}
			for range 2 { // publishing again is success
				if _, err := node.NodePublishVolume(ctx, req); err != nil {
					t.Fatal(err)
				}
			}
			if mounted, err := isMountPoint(target); err != nil || !mounted {
				t.Fatalf("%s is not a mount point (%v)", target, err)
			}
			if fi, err := os.Lstat(target); err != nil || !fi.IsDir() {
				t.Fatalf("target %v, %v: want a directory, not a link", fi, err)
			}
			if got := readFile(t, filepath.Join(target, "f")); got != "data" {
				t.Fatalf("data through the mount: %q", got)
			}
			err := os.WriteFile(filepath.Join(target, "new"), []byte("x"), 0o644)
			if tc.readOnly != (err != nil) {
				t.Fatalf("writing through a mount read-only=%v: %v", tc.readOnly, err)
			}
			for range 2 {
				if _, err := node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: vol, TargetPath: target}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := os.Lstat(target); !os.IsNotExist(err) {
				t.Fatalf("target after unpublishing: %v", err)
			}
		})
	}
	if got := readFile(t, filepath.Join(c.plugin.VolumeDir(vol), "new")); got != "x" {
		t.Fatalf("the read-write mount's write is not in the volume: %q", got)
	}
}
