package placement

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	extenderv1 "k8s.io/kube-scheduler/extender/v1"
)

// FuzzDecodeArgs: the extender's own decoder of scheduler requests never panics, and whatever it
// accepts, it reads as encoding/json does (node names, and whether there is a pod).
func FuzzDecodeArgs(f *testing.F) {
	f.Add([]byte(`{"Pod":{"metadata":{"name":"p","namespace":"app"}},"NodeNames":["n1","n2"]}`))
	f.Add([]byte(`{"pod":null,"nodenames":["a\"b","c\\u0041"]}`))
	f.Add([]byte(`{"NodeNames":[1]}`))
	f.Add([]byte(`{"Nodes":{"items":[{"metadata":{"name":"n1"}}]}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var got extenderv1.ExtenderArgs
		if err := decodeArgs(bytes.NewReader(body), &got, &scratch{}); err != nil {
			return
		}
		var want extenderv1.ExtenderArgs
		if err := json.Unmarshal(body, &want); err != nil {
			return // the fast decoder is laxer about what follows the object; never stricter
		}
		if (got.Pod == nil) != (want.Pod == nil) || (got.NodeNames == nil) != (want.NodeNames == nil) ||
			!slices.Equal(deref(got.NodeNames), deref(want.NodeNames)) {
			t.Fatalf("decodeArgs read pod %v, names %v; encoding/json reads pod %v, names %v",
				got.Pod != nil, deref(got.NodeNames), want.Pod != nil, deref(want.NodeNames))
		}
	})
}

func deref(p *[]string) []string {
	if p == nil {
		return nil
	}
	return *p
}
