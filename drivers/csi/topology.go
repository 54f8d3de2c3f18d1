package csi

import (
	"strings"

	corev1 "k8s.io/api/core/v1"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// volumeTopology reads a PersistentVolume's required node affinity: the zone and region it
// names (one value each), and the node when it names exactly one by hostname. CSI drivers write
// their own topology keys (topology.ebs.csi.aws.com/zone, topology.gke.io/zone, …), so any key
// whose last segment is "zone" or "region" counts, the standard keys first.
func volumeTopology(pv *corev1.PersistentVolume) (topo storkv1.Topology, host string) {
	if pv == nil || pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
		return topo, ""
	}
	terms := pv.Spec.NodeAffinity.Required.NodeSelectorTerms
	// Terms are ORed: a value counts only when every term agrees on it.
	zone, region, hostname := agreed(terms, "zone", storkv1.LabelZone), agreed(terms, "region", storkv1.LabelRegion), agreed(terms, "", corev1.LabelHostname)
	return storkv1.Topology{Zone: zone, Region: region}, hostname
}

// agreed returns the single value that every term requires for the standard key, or else for a
// key ending in "/"+suffix (suffix "" matches only the standard key); "" when the terms disagree
// or name several values.
func agreed(terms []corev1.NodeSelectorTerm, suffix, standard string) string {
	if len(terms) == 0 {
		return ""
	}
	for _, match := range []func(string) bool{
		func(k string) bool { return k == standard },
		func(k string) bool { return suffix != "" && strings.HasSuffix(k, "/"+suffix) },
	} {
		value, all := "", true
		for _, t := range terms {
			v := termValue(t, match)
			if v == "" || (value != "" && v != value) {
				all = false
				break
			}
			value = v
		}
		if all {
			return value
		}
	}
	return ""
}

// termValue is the one value a term's In expression on a matching key requires.
func termValue(t corev1.NodeSelectorTerm, match func(string) bool) string {
	for _, e := range t.MatchExpressions {
		if match(e.Key) && e.Operator == corev1.NodeSelectorOpIn && len(e.Values) == 1 {
			return e.Values[0]
		}
	}
	return ""
}
