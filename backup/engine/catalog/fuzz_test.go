package catalog

import (
	"bytes"
	"testing"

	"stork.dev/stork/backup/engine/repo"
)

// FuzzDecodeRecord: whatever a record file and its signature hold, decoding returns a record
// that names its Backup, or an error; a record only counts as signed when verify said so.
func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte(`{"version":1,"name":"n","namespace":"ns","uid":"u","cluster":"c","phase":"Completed","volumes":[{"claimName":"d"}]}`), []byte("00ff"))
	f.Add([]byte(`{"version":2}`), []byte(nil))
	f.Add([]byte(`[]`), []byte("zz"))
	key := []byte("the signature the verifier accepts")
	f.Fuzz(func(t *testing.T, data, sig []byte) {
		rec, err := decodeRecord(repo.ID{}, data, sig, func(_, raw []byte) (bool, error) { return bytes.Equal(raw, key), nil })
		if err != nil {
			return
		}
		if rec.Name == "" || rec.Namespace == "" || rec.UID == "" || rec.Version != RecordVersion {
			t.Fatalf("record %+v accepted without its Backup's name, namespace, UID or version", rec)
		}
		if rec.Signed && sig == nil {
			t.Fatal("a record without a signature counted as signed")
		}
	})
}
