package longhorn

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

//go:embed testdata/crds.yaml
var crdsYAML []byte

// CRDs returns minimal CustomResourceDefinitions for Longhorn's volumes, replicas and nodes, for
// tests that need an API server to serve them (envtest, a kind cluster without Longhorn). They are
// not Longhorn's schema: spec and status take any field. Each call returns new objects.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(crdsYAML), 4096)
	var out []*apiextensionsv1.CustomResourceDefinition
	for {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		err := dec.Decode(crd)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading the Longhorn test CRDs (document %d): %w", len(out)+1, err)
		}
		if crd.Name == "" {
			continue // an empty document
		}
		out = append(out, crd)
	}
}
