package resources

import "testing"

// FuzzParse: an object file of a backup decodes into an object with a kind and a name, or an
// error naming the file; never a panic.
func FuzzParse(f *testing.F) {
	f.Add("ConfigMap/cfg.json", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg","namespace":"shop"},"data":{"k":"v"}}`))
	f.Add("Pod/x.json", []byte(`{"kind":"Pod"}`))
	f.Add("x", []byte(`[1,2`))
	f.Fuzz(func(t *testing.T, path string, data []byte) {
		obj, err := Parse(path, data)
		if err == nil && (obj.GetKind() == "" || obj.GetName() == "") {
			t.Fatalf("object without kind or name accepted: %v", obj.Object)
		}
	})
}
