package archive

import (
	"encoding/json"
	"testing"

	"stork.dev/stork/backup/engine/repo"
)

// FuzzDecodeTree: a tree blob from a damaged or hostile repository never yields a name that
// could leave the restore target, an unsorted listing, or a directory without a subtree.
func FuzzDecodeTree(f *testing.F) {
	sub := repo.ID{1}
	good, _ := json.Marshal(Tree{Nodes: []Node{{Name: "a", Type: TypeFile}, {Name: "b", Type: TypeDir, Subtree: &sub}}})
	f.Add(good)
	f.Add([]byte(`{"nodes":[{"name":"..","type":"file"}]}`))
	f.Add([]byte(`{"nodes":[{"name":"b","type":"file"},{"name":"a","type":"file"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tree, err := decodeTree(b)
		if err != nil {
			return
		}
		for i, n := range tree.Nodes {
			if validName(n.Name) != nil || (n.Type == TypeDir && n.Subtree == nil) || (i > 0 && tree.Nodes[i-1].Name >= n.Name) {
				t.Fatalf("accepted a bad tree: %+v", tree.Nodes)
			}
		}
	})
}
