package webhook

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzSetScheduler: whatever pod JSON the API server sends, the webhook either refuses it or
// returns JSON whose spec.schedulerName and annotation are what it set; never a panic.
func FuzzSetScheduler(f *testing.F) {
	f.Add([]byte(`{"metadata":{"name":"p","annotations":{"a":"b"}},"spec":{"containers":[{"name":"c"}],"priority":12345678901234567890}}`), "stork")
	f.Add([]byte(`{"metadata":null,"spec":null}`), "")
	f.Add([]byte(`{"spec":[]}`), "x")
	f.Add([]byte(`nul`), "x")
	f.Fuzz(func(t *testing.T, raw []byte, scheduler string) {
		if !utf8.ValidString(scheduler) {
			return // the scheduler's name is Stork's own flag, not request data
		}
		out, err := setScheduler(raw, scheduler, "local")
		if err != nil {
			return
		}
		var pod struct {
			Metadata struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
			Spec struct {
				SchedulerName string `json:"schedulerName"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(out, &pod); err != nil {
			t.Fatalf("setScheduler returned JSON that does not decode: %v\n%s", err, out)
		}
		if pod.Spec.SchedulerName != scheduler || pod.Metadata.Annotations[AnnotationSchedulerSet] != "local" {
			t.Fatalf("schedulerName %q, annotation %q; want %q and local", pod.Spec.SchedulerName, pod.Metadata.Annotations[AnnotationSchedulerSet], scheduler)
		}
	})
}
