package csi

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

func TestVolumeTopology(t *testing.T) {
	const (
		gkeZone   = "topology.gke.io/zone"
		betaZone  = "failure-domain.beta.kubernetes.io/zone"
		ebsRegion = "topology.ebs.csi.aws.com/region"
	)
	for _, tc := range []struct {
		name  string
		terms []corev1.NodeSelectorTerm
		topo  storkv1.Topology
		host  string
	}{
		{"no affinity", nil, storkv1.Topology{}, ""},
		{"standard keys", []corev1.NodeSelectorTerm{term(in(storkv1.LabelZone, zoneA), in(storkv1.LabelRegion, "us-east-1"))},
			storkv1.Topology{Zone: zoneA, Region: "us-east-1"}, ""},
		{"driver-specific zone key", []corev1.NodeSelectorTerm{term(in(ebsZone, zoneA))}, storkv1.Topology{Zone: zoneA}, ""},
		{"driver-specific zone and region keys", []corev1.NodeSelectorTerm{term(in(gkeZone, "europe-west1-b"), in(ebsRegion, "eu"))},
			storkv1.Topology{Zone: "europe-west1-b", Region: "eu"}, ""},
		{"beta zone key", []corev1.NodeSelectorTerm{term(in(betaZone, zoneB))}, storkv1.Topology{Zone: zoneB}, ""},
		{"the standard key wins over a driver's", []corev1.NodeSelectorTerm{term(in(ebsZone, "ebs-says"), in(storkv1.LabelZone, zoneA))},
			storkv1.Topology{Zone: zoneA}, ""},
		{"a key that only contains zone", []corev1.NodeSelectorTerm{term(in("example.com/zoned", zoneA), in("zone", zoneA))}, storkv1.Topology{}, ""},
		{"several values", []corev1.NodeSelectorTerm{term(in(storkv1.LabelZone, zoneA, zoneB))}, storkv1.Topology{}, ""},
		{"NotIn does not place", []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: storkv1.LabelZone, Operator: corev1.NodeSelectorOpNotIn, Values: []string{zoneA}}}}}, storkv1.Topology{}, ""},
		{"terms that agree", []corev1.NodeSelectorTerm{term(in(ebsZone, zoneA), in("topology.kubernetes.io/region", "r")), term(in(ebsZone, zoneA))},
			storkv1.Topology{Zone: zoneA}, ""},
		{"terms that agree through different keys", []corev1.NodeSelectorTerm{term(in(storkv1.LabelZone, zoneA)), term(in(ebsZone, zoneA))},
			storkv1.Topology{Zone: zoneA}, ""},
		{"terms that disagree", []corev1.NodeSelectorTerm{term(in(ebsZone, zoneA)), term(in(ebsZone, zoneB))}, storkv1.Topology{}, ""},
		{"a term without a zone", []corev1.NodeSelectorTerm{term(in(ebsZone, zoneA)), term(in("other", "x"))}, storkv1.Topology{}, ""},
		{"hostname-pinned", []corev1.NodeSelectorTerm{term(in(corev1.LabelHostname, "n1"), in(storkv1.LabelZone, zoneA))},
			storkv1.Topology{Zone: zoneA}, "n1"},
		{"two hostnames", []corev1.NodeSelectorTerm{term(in(corev1.LabelHostname, "n1", "n2"))}, storkv1.Topology{}, ""},
		{"hostname terms that disagree", []corev1.NodeSelectorTerm{term(in(corev1.LabelHostname, "n1")), term(in(corev1.LabelHostname, "n2"))},
			storkv1.Topology{}, ""},
		{"only the standard hostname key pins", []corev1.NodeSelectorTerm{term(in("topology.hostpath.csi/node", "n1"))}, storkv1.Topology{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo, host := volumeTopology(csiPV("pv", ebs, "data", tc.terms...))
			if topo != tc.topo || host != tc.host {
				t.Errorf("volumeTopology = %+v, %q; want %+v, %q", topo, host, tc.topo, tc.host)
			}
		})
	}
	if topo, host := volumeTopology(nil); topo != (storkv1.Topology{}) || host != "" {
		t.Errorf("volumeTopology(nil) = %+v, %q", topo, host)
	}
}
