package deploy_test

import (
	"slices"
	"testing"

	"stork.dev/stork/deploy"
)

// TestCRDs checks that every CRD decodes strictly and that each kind is served with a status
// subresource and printer columns, as `kubectl get` users expect.
func TestCRDs(t *testing.T) {
	crds, err := deploy.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, crd := range crds {
		kinds = append(kinds, crd.Spec.Names.Kind)
		if crd.Spec.Group != "stork.dev" || len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Name != "v1alpha1" {
			t.Errorf("%s: group %s versions %d", crd.Name, crd.Spec.Group, len(crd.Spec.Versions))
			continue
		}
		v := crd.Spec.Versions[0]
		if v.Subresources == nil || v.Subresources.Status == nil {
			t.Errorf("%s has no status subresource", crd.Name)
		}
		if len(v.AdditionalPrinterColumns) < 3 {
			t.Errorf("%s has %d printer columns", crd.Name, len(v.AdditionalPrinterColumns))
		}
		if !slices.Contains(crd.Spec.Names.Categories, "stork") {
			t.Errorf("%s is not in the stork category (kubectl get stork)", crd.Name)
		}
	}
	slices.Sort(kinds)
	want := []string{"Backup", "BackupLocation", "Restore", "RestoreDrill", "Snapshot", "SnapshotSchedule", "StorageNode", "VolumeTask"}
	if !slices.Equal(kinds, want) {
		t.Errorf("kinds %v, want %v", kinds, want)
	}
}
