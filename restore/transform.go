package restore

import (
	"encoding/json"
	"fmt"
	"slices"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/resources"
)

// checkTransforms says what is wrong with a Restore's spec.transforms ("" if nothing): a kind
// backups do not hold, or a patch that does not decode. Checked when the restore is planned, so
// that a typo fails the Restore before anything is made.
func checkTransforms(ts []storkv1.ResourceTransform) string {
	for i, t := range ts {
		if _, ok := resources.KindNamed(t.Kind); !ok {
			return fmt.Sprintf("spec.transforms[%d].kind: %q is not a kind backups hold", i, t.Kind)
		}
		for j, op := range t.Patch {
			if needsValue := op.Op == "add" || op.Op == "replace" || op.Op == "test"; needsValue != (op.Value != nil) {
				return fmt.Sprintf("spec.transforms[%d].patch[%d].value is required with op add, replace or test, and only then", i, j)
			}
		}
		if _, err := decodePatch(t.Patch); err != nil {
			return fmt.Sprintf("spec.transforms[%d].patch: %v", i, err)
		}
	}
	return ""
}

func decodePatch(ops []storkv1.JSONPatchOperation) (jsonpatch.Patch, error) {
	raw, err := json.Marshal(ops)
	if err != nil {
		return nil, err
	}
	return jsonpatch.DecodePatch(raw)
}

// transform applies to obj, in order, the transforms for its kind and name. A patch that cannot
// apply, or that would change what the object is (kind, namespace, name), is an error naming the
// transform; obj is then left as it was.
func transform(obj *unstructured.Unstructured, ts []storkv1.ResourceTransform) error {
	doc := []byte(nil)
	for i, t := range ts {
		if t.Kind != obj.GetKind() || (len(t.Names) > 0 && !slices.Contains(t.Names, obj.GetName())) {
			continue
		}
		p, err := decodePatch(t.Patch)
		if err != nil {
			return fmt.Errorf("spec.transforms[%d]: %w", i, err)
		}
		if doc == nil {
			if doc, err = obj.MarshalJSON(); err != nil {
				return err
			}
		}
		if doc, err = p.Apply(doc); err != nil {
			return fmt.Errorf("spec.transforms[%d] (%s): %w", i, t.Kind, err)
		}
	}
	if doc == nil {
		return nil
	}
	out := &unstructured.Unstructured{}
	if err := out.UnmarshalJSON(doc); err != nil {
		return fmt.Errorf("spec.transforms: the patched %s is not an object: %w", obj.GetKind(), err)
	}
	if out.GetKind() != obj.GetKind() || out.GetAPIVersion() != obj.GetAPIVersion() || out.GetNamespace() != obj.GetNamespace() || out.GetName() != obj.GetName() {
		return fmt.Errorf("spec.transforms: a patch may not change a %s's apiVersion, kind, namespace or name (use namespaceMapping and claimNameMapping)", obj.GetKind())
	}
	obj.Object = out.Object
	return nil
}
