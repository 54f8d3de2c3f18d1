package drivers_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
	"stork.dev/stork/drivers/fake"
)

// placementOnly is a driver with the core interface and no capability.
type placementOnly struct{ name string }

func (p placementOnly) Name() string { return p.name }
func (p placementOnly) Owns(v drivers.Volume) bool {
	return v.PV != nil && v.PV.Spec.HostPath != nil
}
func (p placementOnly) StorageNodes(context.Context) ([]drivers.StorageNode, error) { return nil, nil }
func (p placementOnly) Locate(context.Context, drivers.Volume) (drivers.Location, error) {
	return drivers.Location{}, nil
}

func init() {
	drivers.Register("test-specific", 10, func(drivers.Options) (drivers.Driver, error) { return placementOnly{"test-specific"}, nil })
	drivers.Register("test-catchall", 100, func(drivers.Options) (drivers.Driver, error) { return placementOnly{"test-catchall"}, nil })
	drivers.Register("test-misnamed", 50, func(drivers.Options) (drivers.Driver, error) { return placementOnly{"other"}, nil })
	drivers.Register("test-broken", 50, func(drivers.Options) (drivers.Driver, error) { return nil, errors.New("no config") })
}

func TestRegisterTwicePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("registering a name twice did not panic")
		}
	}()
	drivers.Register("test-specific", 1, nil)
}

func TestNew(t *testing.T) {
	cases := []struct {
		name    string
		drivers []string
		want    []string // names in ask order
		wantErr string
	}{
		{"priority orders", []string{"test-catchall", "test-specific"}, []string{"test-specific", "test-catchall"}, ""},
		{"unknown driver", []string{"nope"}, nil, `unknown driver "nope": registered drivers are`},
		{"factory error", []string{"test-broken"}, nil, `making driver "test-broken": no config`},
		{"name mismatch", []string{"test-misnamed"}, nil, `registered as "test-misnamed" calls itself "other"`},
		{"none", nil, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			set, err := drivers.New(tc.drivers, drivers.Options{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range set.All() {
				got = append(got, d.Name())
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("drivers %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSetForAndCapabilities(t *testing.T) {
	f := fake.New(1)
	set := drivers.NewSet(placementOnly{"hostpath"}, f)
	hostPV := &corev1.PersistentVolume{Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/x"}}}}
	claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "data"}}
	cases := []struct {
		name     string
		vol      drivers.Volume
		want     string
		wantErr  string
		snapshot bool
	}{
		{"host path", drivers.Volume{PV: hostPV}, "hostpath", "", false},
		{"fake bound", drivers.Volume{Claim: claim, PV: fake.PV("pv1", 1<<20)}, fake.Name, "", true},
		{"fake unbound by class", drivers.Volume{Claim: claim, StorageClass: &storagev1.StorageClass{Provisioner: fake.Name}}, fake.Name, "", true},
		{"nobody", drivers.Volume{Claim: claim, StorageClass: &storagev1.StorageClass{Provisioner: "ebs.csi.aws.com"}}, "",
			"PersistentVolumeClaim app/data is not owned by any enabled driver (asked: hostpath, fake.stork.dev)", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := set.For(tc.vol)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Name() != tc.want {
				t.Errorf("driver %s, want %s", d.Name(), tc.want)
			}
			if _, ok := drivers.As[drivers.Snapshotter](d); ok != tc.snapshot {
				t.Errorf("Snapshotter capability %v, want %v", ok, tc.snapshot)
			}
		})
	}
	if d, ok := set.Get(fake.Name); !ok || d != f {
		t.Errorf("Get(%q) = %v, %v", fake.Name, d, ok)
	}
	if _, ok := set.Get("missing"); ok {
		t.Error("Get of a missing driver succeeded")
	}
}

func TestVolumeStatusFinal(t *testing.T) {
	for phase, final := range map[storkv1.VolumePhase]bool{
		storkv1.VolumePending: false, storkv1.VolumeInProgress: false, storkv1.VolumeSucceeded: true, storkv1.VolumeFailed: true,
	} {
		if got := (drivers.VolumeStatus{Phase: phase}).Final(); got != final {
			t.Errorf("Final() for %s = %v, want %v", phase, got, final)
		}
	}
}
