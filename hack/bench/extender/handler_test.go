package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	"stork.dev/stork/placement"
)

// BenchmarkHandler is the extender's HTTP handler without the network, for profiling:
// go test -run '^$' -bench Handler -cpuprofile cpu.out ./hack/bench/extender/
func BenchmarkHandler(b *testing.B) {
	o := options{nodes: 5000, volumes: 20000, replicas: 3, downFraction: 0.02}
	w := build(o)
	h := w.ext.Handler()
	rng := rand.New(rand.NewPCG(3, 3))
	var bodies [][]byte
	for i := range 100 {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: fmt.Sprint(i)}}
		for range 2 {
			claim := fmt.Sprintf("claim-%05d", rng.IntN(o.volumes))
			pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: claim, VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}})
		}
		data, _ := json.Marshal(&extenderv1.ExtenderArgs{Pod: pod, NodeNames: &w.names})
		bodies = append(bodies, data)
	}
	_ = context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, path := range []string{placement.FilterPath, placement.PrioritizePath} {
			req := httptest.NewRequest("POST", path, bytes.NewReader(bodies[i%len(bodies)]))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Fatal(rec.Code, rec.Body.String())
			}
		}
	}
}
