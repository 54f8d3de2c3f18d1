package main

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"stork.dev/stork/drivers/csi"
)

func TestMoverImageFromPod(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "stork-system", Name: "stork-abc"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "sidecar", Image: "other:1"},
			{Name: "stork", Image: "registry.example/team/stork:v1.2"},
		}},
	}
	for _, tc := range []struct {
		name    string
		podName string
		config  map[string]string
		want    string // csi.moverImage afterwards; "" = not set
		wantErr string
	}{
		{name: "own pod's image", podName: "stork-abc", config: map[string]string{}, want: "registry.example/team/stork:v1.2"},
		{name: "explicit setting wins", podName: "stork-abc", config: map[string]string{csi.ConfigMoverImage: "mine:2"}, want: "mine:2"},
		{name: "outside a pod", podName: "", config: map[string]string{}, want: ""},
		{name: "pod missing", podName: "gone", config: map[string]string{}, wantErr: "reading this controller's pod stork-system/gone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("POD_NAME", tc.podName)
			o := options{namespace: "stork-system", driverConfig: tc.config}
			err := moverImageFromPod(context.Background(), fake.NewClientset(pod), o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), csi.ConfigMoverImage) {
					t.Fatalf("error %v, want one containing %q and naming %s", err, tc.wantErr, csi.ConfigMoverImage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := o.driverConfig[csi.ConfigMoverImage]; got != tc.want {
				t.Fatalf("csi.moverImage = %q, want %q", got, tc.want)
			}
		})
	}
}
