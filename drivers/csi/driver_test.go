package csi

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
)

func TestNewNeedsAClient(t *testing.T) {
	if _, err := New(drivers.Options{Log: logr.Discard()}); err == nil {
		t.Fatal("New without a client succeeded")
	}
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   map[string]string
		check func(t *testing.T, c config)
	}{
		{"defaults", nil, func(t *testing.T, c config) {
			if c.include != nil || c.exclude != nil || !c.groupSnapshots || c.namespace != storkNS || c.serviceAccount != "stork-mover" ||
				c.maxPerNode != 1 || c.maxTotal != 8 || c.attempts != 3 || c.startTimeout != 10*time.Minute || c.sweepInterval != time.Minute ||
				!strings.HasPrefix(c.image, "stork:") {
				t.Errorf("defaults: %+v", c)
			}
			if q := c.requests[corev1.ResourceMemory]; q.Cmp(resource.MustParse("256Mi")) != 0 {
				t.Errorf("default memory request %s", q.String())
			}
		}},
		{"lists and pairs are trimmed", map[string]string{
			ConfigDrivers: " ebs.csi.aws.com, ,rbd.csi.ceph.com ", ConfigExclude: "driver.longhorn.io",
			ConfigSnapshotClasses: "ebs.csi.aws.com = fast , rbd.csi.ceph.com=rbd-snap", ConfigGroupSnapshotClasses: "ebs.csi.aws.com=grp",
		}, func(t *testing.T, c config) {
			if !slices.Equal(c.include, []string{ebs, rbd}) || !slices.Equal(c.exclude, []string{"driver.longhorn.io"}) {
				t.Errorf("include %q exclude %q", c.include, c.exclude)
			}
			if c.snapshotClasses[ebs] != "fast" || c.snapshotClasses[rbd] != "rbd-snap" || c.groupClasses[ebs] != "grp" {
				t.Errorf("classes %v %v", c.snapshotClasses, c.groupClasses)
			}
		}},
		{"mover settings", map[string]string{
			ConfigGroupSnapshots: "off", ConfigMoverImage: "registry/stork:1", ConfigMoverServiceAccount: "sa",
			ConfigMoverMaxPerNode: "2", ConfigMoverMax: "5", ConfigMoverAttempts: "7", ConfigMoverStartTimeout: "90s", ConfigSweepInterval: "2s",
			ConfigMoverRequests: "cpu=250m", ConfigMoverLimits: "memory=2Gi,ephemeral-storage=1Gi",
		}, func(t *testing.T, c config) {
			if c.groupSnapshots || c.image != "registry/stork:1" || c.serviceAccount != "sa" || c.maxPerNode != 2 || c.maxTotal != 5 ||
				c.attempts != 7 || c.startTimeout != 90*time.Second || c.sweepInterval != 2*time.Second {
				t.Errorf("settings: %+v", c)
			}
			cpu, mem := c.requests[corev1.ResourceCPU], c.requests[corev1.ResourceMemory]
			if cpu.Cmp(resource.MustParse("250m")) != 0 || mem.Cmp(resource.MustParse("256Mi")) != 0 {
				t.Errorf("requests %v: want cpu set, memory default", c.requests)
			}
			lmem, eph, lcpu := c.limits[corev1.ResourceMemory], c.limits[corev1.ResourceEphemeralStorage], c.limits[corev1.ResourceCPU]
			if lmem.Cmp(resource.MustParse("2Gi")) != 0 || eph.Cmp(resource.MustParse("1Gi")) != 0 || lcpu.Cmp(resource.MustParse("2")) != 0 {
				t.Errorf("limits %v", c.limits)
			}
		}},
		{"groupSnapshots auto", map[string]string{ConfigGroupSnapshots: "auto"}, func(t *testing.T, c config) {
			if !c.groupSnapshots {
				t.Error("auto turned group snapshots off")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.cfg, "")
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

// Two drivers' default resource lists are not shared: one driver's settings never leak into
// another's.
func TestParseConfigDoesNotShareDefaults(t *testing.T) {
	a, err := parseConfig(map[string]string{ConfigMoverRequests: "cpu=3"}, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseConfig(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if q := b.requests[corev1.ResourceCPU]; q.Cmp(resource.MustParse("100m")) != 0 {
		t.Errorf("default cpu request became %s after another driver set %s", q.String(), a.requests.Cpu().String())
	}
}

func TestParseConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ key, value string }{
		{ConfigSnapshotClasses, "ebs.csi.aws.com"},
		{ConfigSnapshotClasses, "=fast"},
		{ConfigGroupSnapshotClasses, "ebs.csi.aws.com="},
		{ConfigGroupSnapshots, "on"},
		{ConfigMoverMaxPerNode, "0"},
		{ConfigMoverMaxPerNode, "two"},
		{ConfigMoverMax, "-1"},
		{ConfigMoverAttempts, "0"},
		{ConfigMoverAttempts, "101"},
		{ConfigMoverAttempts, "x"},
		{ConfigMoverStartTimeout, "10"},
		{ConfigMoverStartTimeout, "-1m"},
		{ConfigMoverStartTimeout, "0s"},
		{ConfigSweepInterval, "soon"},
		{ConfigSweepInterval, "-5s"},
		{ConfigMoverRequests, "cpu"},
		{ConfigMoverRequests, "cpu=lots"},
		{ConfigMoverLimits, "memory=1Gx"},
	} {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			_, err := New(drivers.Options{Client: newEnv(t, nil, nil).c, Config: map[string]string{tc.key: tc.value}, Log: logr.Discard()})
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.key) {
				t.Errorf("error %q does not name %s", err, tc.key)
			}
		})
	}
}

func TestOwns(t *testing.T) {
	nonCSI := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "nfs"},
		Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{NFS: &corev1.NFSVolumeSource{Server: "s", Path: "/"}}}}
	unbound := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "new"}}
	class := func(p string) *storagev1.StorageClass {
		return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Provisioner: p}
	}
	for _, tc := range []struct {
		name string
		cfg  map[string]string
		v    drivers.Volume
		want bool
	}{
		{"any CSI driver by default", nil, drivers.Volume{PV: csiPV("pv", ebs, "data")}, true},
		{"excluded driver", map[string]string{ConfigExclude: "driver.longhorn.io," + ebs}, drivers.Volume{PV: csiPV("pv", ebs, "data")}, false},
		{"other driver than excluded", map[string]string{ConfigExclude: "driver.longhorn.io"}, drivers.Volume{PV: csiPV("pv", ebs, "data")}, true},
		{"included driver", map[string]string{ConfigDrivers: rbd + "," + ebs}, drivers.Volume{PV: csiPV("pv", ebs, "data")}, true},
		{"driver not included", map[string]string{ConfigDrivers: rbd}, drivers.Volume{PV: csiPV("pv", ebs, "data")}, false},
		{"included and excluded", map[string]string{ConfigDrivers: ebs, ConfigExclude: ebs}, drivers.Volume{PV: csiPV("pv", ebs, "data")}, false},
		{"non-CSI volume", nil, drivers.Volume{PV: nonCSI}, false},
		{"bound PV wins over the class", map[string]string{ConfigDrivers: ebs}, drivers.Volume{Claim: unbound, PV: nonCSI, StorageClass: class(ebs)}, false},
		{"unbound claim of an included provisioner", map[string]string{ConfigDrivers: ebs}, drivers.Volume{Claim: unbound, StorageClass: class(ebs)}, true},
		{"unbound claim of another provisioner", map[string]string{ConfigDrivers: ebs}, drivers.Volume{Claim: unbound, StorageClass: class(rbd)}, false},
		{"unbound claim with csi.drivers empty", nil, drivers.Volume{Claim: unbound, StorageClass: class(ebs)}, false},
		{"unbound claim of an included but excluded provisioner", map[string]string{ConfigDrivers: ebs, ConfigExclude: ebs}, drivers.Volume{Claim: unbound, StorageClass: class(ebs)}, false},
		{"unbound claim without a class", map[string]string{ConfigDrivers: ebs}, drivers.Volume{Claim: unbound}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.cfg, nil)
			if got := e.d.Owns(tc.v); got != tc.want {
				t.Errorf("Owns = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStorageNodes(t *testing.T) {
	cfg := map[string]string{ConfigExclude: "driver.longhorn.io"}
	e := newEnv(t, cfg, nil,
		testNode("ready", zoneA, corev1.ConditionTrue), testCSINode("ready", "driver.longhorn.io", ebs),
		testNode("notready", zoneA, corev1.ConditionFalse), testCSINode("notready", ebs),
		testNode("unknown", zoneB, corev1.ConditionUnknown), testCSINode("unknown", ebs),
		testNode("nocondition", zoneB, ""), testCSINode("nocondition", ebs),
		testNode("excludedonly", zoneB, corev1.ConditionTrue), testCSINode("excludedonly", "driver.longhorn.io"),
		testNode("nodrivers", zoneB, corev1.ConditionTrue), testCSINode("nodrivers"),
		testCSINode("gone", ebs), // a CSINode whose Node was deleted
		testNode("nocsinode", zoneA, corev1.ConditionTrue),
	)
	nodes, err := e.d.StorageNodes(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]drivers.StorageNode{}
	for _, n := range nodes {
		got[n.Node] = n
	}
	for _, tc := range []struct {
		node   string
		health storkv1.StorageHealth
		reason string
		zone   string
	}{
		{"ready", storkv1.StorageHealthy, "", zoneA},
		{"notready", storkv1.StorageDown, "kubelet says False", zoneA},
		{"unknown", storkv1.StorageUnknown, "Unknown", zoneB},
		{"nocondition", storkv1.StorageUnknown, "stopped reporting", zoneB},
		{"excludedonly", storkv1.StorageDown, "no handled CSI driver", zoneB},
		{"nodrivers", storkv1.StorageDown, "no handled CSI driver", zoneB},
	} {
		t.Run(tc.node, func(t *testing.T) {
			n, ok := got[tc.node]
			if !ok {
				t.Fatalf("node %s not listed", tc.node)
			}
			if n.Health != tc.health || !strings.Contains(n.Reason, tc.reason) || (tc.reason == "" && n.Reason != "") {
				t.Errorf("health %s (%q), want %s (%q)", n.Health, n.Reason, tc.health, tc.reason)
			}
			if n.Topology.Zone != tc.zone || n.Topology.Region != "us-east-1" {
				t.Errorf("topology %+v", n.Topology)
			}
		})
	}
	for _, n := range []string{"gone", "nocsinode"} {
		if _, ok := got[n]; ok {
			t.Errorf("node %s is listed", n)
		}
	}
	if len(nodes) != 6 {
		t.Errorf("%d nodes listed, want 6", len(nodes))
	}
}

func TestLocate(t *testing.T) {
	pinned := func(driver, host string) *corev1.PersistentVolume {
		return csiPV("pv-local", driver, "data", term(in(corev1.LabelHostname, host)))
	}
	for _, tc := range []struct {
		name     string
		pv       *corev1.PersistentVolume
		objs     []client.Object
		replicas []drivers.Replica
		topo     storkv1.Topology
	}{
		{"zonal volume", csiPV("pv", ebs, "data", term(in(ebsZone, zoneA))), nil, nil, storkv1.Topology{Zone: zoneA}},
		{"volume without affinity", csiPV("pv", ebs, "data"), nil, nil, storkv1.Topology{}},
		{"pinned to a healthy node", pinned(rbd, "n1"),
			[]client.Object{testNode("n1", zoneA, corev1.ConditionTrue), testCSINode("n1", rbd)},
			[]drivers.Replica{{Node: "n1", Topology: storkv1.Topology{Zone: zoneA, Region: "us-east-1"}, Healthy: true}}, storkv1.Topology{Zone: zoneA, Region: "us-east-1"}},
		{"pinned to a NotReady node", pinned(rbd, "n1"),
			[]client.Object{testNode("n1", zoneA, corev1.ConditionFalse), testCSINode("n1", rbd)},
			[]drivers.Replica{{Node: "n1", Topology: storkv1.Topology{Zone: zoneA, Region: "us-east-1"}}}, storkv1.Topology{Zone: zoneA, Region: "us-east-1"}},
		{"pinned to a node without its CSI driver", pinned(rbd, "n1"),
			[]client.Object{testNode("n1", zoneA, corev1.ConditionTrue), testCSINode("n1", ebs)},
			[]drivers.Replica{{Node: "n1", Topology: storkv1.Topology{Zone: zoneA, Region: "us-east-1"}}}, storkv1.Topology{Zone: zoneA, Region: "us-east-1"}},
		{"pinned to a node without a CSINode", pinned(rbd, "n1"),
			[]client.Object{testNode("n1", zoneA, corev1.ConditionTrue)},
			[]drivers.Replica{{Node: "n1", Topology: storkv1.Topology{Zone: zoneA, Region: "us-east-1"}}}, storkv1.Topology{Zone: zoneA, Region: "us-east-1"}},
		{"pinned to a deleted node", csiPV("pv-local", rbd, "data", term(in(corev1.LabelHostname, "n1"), in(storkv1.LabelZone, zoneB))),
			nil, []drivers.Replica{{Node: "n1", Topology: storkv1.Topology{Zone: zoneB}}}, storkv1.Topology{Zone: zoneB}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil, nil, tc.objs...)
			loc, err := e.d.Locate(e.ctx, drivers.Volume{PV: tc.pv})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(loc.Replicas, tc.replicas) || loc.Topology != tc.topo {
				t.Errorf("Locate = %+v, want replicas %+v topology %+v", loc, tc.replicas, tc.topo)
			}
		})
	}
	e := newEnv(t, map[string]string{ConfigExclude: ebs}, nil)
	for _, v := range []drivers.Volume{{PV: csiPV("pv", ebs, "data")}, {Claim: boundClaim("c", "")}} {
		if _, err := e.d.Locate(e.ctx, v); !errors.Is(err, drivers.ErrNotOwned) {
			t.Errorf("Locate(%s) = %v, want ErrNotOwned", drivers.Describe(v), err)
		}
	}
}
