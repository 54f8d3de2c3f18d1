package v1alpha1_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/internal/harness"
)

// These tests install the generated CRDs in a real kube-apiserver and check that the schema and
// CEL rules reject bad objects with messages that name the field, and accept good ones.

const ns = "validation"

func key() storkv1.SecretKeyReference {
	return storkv1.SecretKeyReference{Name: "key", Key: "passphrase"}
}

func location(name string, mut func(*storkv1.BackupLocation)) *storkv1.BackupLocation {
	l := &storkv1.BackupLocation{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       storkv1.BackupLocationSpec{URL: "s3://bucket-1/prefix", EncryptionKeySecretRef: key()},
	}
	if mut != nil {
		mut(l)
	}
	return l
}

func snapshot(name string, mut func(*storkv1.Snapshot)) *storkv1.Snapshot {
	s := &storkv1.Snapshot{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "data"}},
	}
	if mut != nil {
		mut(s)
	}
	return s
}

func schedule(name, cron string, mut func(*storkv1.SnapshotSchedule)) *storkv1.SnapshotSchedule {
	s := &storkv1.SnapshotSchedule{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: storkv1.SnapshotScheduleSpec{
			Schedule: cron,
			Template: storkv1.SnapshotTemplate{Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{WholeNamespace: true}}},
		},
	}
	if mut != nil {
		mut(s)
	}
	return s
}

func restore(name string, mut func(*storkv1.Restore)) *storkv1.Restore {
	r := &storkv1.Restore{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       storkv1.RestoreSpec{Source: storkv1.RestoreSource{BackupName: "b1"}},
	}
	if mut != nil {
		mut(r)
	}
	return r
}

func drill(name string, spec storkv1.RestoreDrillSpec) *storkv1.RestoreDrill {
	return &storkv1.RestoreDrill{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
}

func task(name string, mut func(*storkv1.VolumeTask)) *storkv1.VolumeTask {
	v := &storkv1.VolumeTask{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       storkv1.VolumeTaskSpec{Type: storkv1.TaskSnapshot, Driver: "local", NodeName: "n1", VolumeName: "pv-1"},
	}
	if mut != nil {
		mut(v)
	}
	return v
}

func hook(name string, command ...string) storkv1.Hook {
	return storkv1.Hook{Name: name, PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, Command: command}
}

func TestCRDValidation(t *testing.T) {
	env := harness.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := env.StartCluster(ctx, harness.ClusterOptions{Name: "validation", ControlPlaneOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}

	t.Run("create", func(t *testing.T) {
		cases := []struct {
			name string
			obj  client.Object
			// want lists substrings of the error; none means the object must be accepted.
			want []string
		}{
			{"location ok", location("ok", nil), nil},
			{"location file url ok", location("file", func(l *storkv1.BackupLocation) { l.Spec.URL = "file:///var/backups" }), nil},
			{"location missing url", location("no-url", func(l *storkv1.BackupLocation) { l.Spec.URL = "" }),
				[]string{"spec.url", "must be s3://BUCKET"}},
			{"location bad scheme", location("ftp", func(l *storkv1.BackupLocation) { l.Spec.URL = "ftp://host/x" }),
				[]string{"spec.url", "must be s3://BUCKET"}},
			// Each store's own bucket rule: GCS takes underscores, S3 and Azure do not; Azure takes no dots.
			{"location gs bucket with underscore ok", location("gs-underscore", func(l *storkv1.BackupLocation) { l.Spec.URL = "gs://my_backups/p" }), nil},
			{"location s3 bucket with underscore", location("s3-underscore", func(l *storkv1.BackupLocation) { l.Spec.URL = "s3://my_backups/p" }),
				[]string{"spec.url", "must be s3://BUCKET"}},
			{"location azure container with dot", location("az-dot", func(l *storkv1.BackupLocation) { l.Spec.URL = "azblob://my.backups" }),
				[]string{"spec.url", "must be s3://BUCKET"}},
			{"location s3 bucket too short", location("s3-short", func(l *storkv1.BackupLocation) { l.Spec.URL = "s3://bk/p" }),
				[]string{"spec.url", "must be s3://BUCKET"}},
			{"location missing key", location("no-key", func(l *storkv1.BackupLocation) { l.Spec.EncryptionKeySecretRef = storkv1.SecretKeyReference{} }),
				[]string{"spec.encryptionKeySecretRef.name", "spec.encryptionKeySecretRef.key"}},
			{"location bad access mode", location("mode", func(l *storkv1.BackupLocation) { l.Spec.AccessMode = "Sometimes" }),
				[]string{"spec.accessMode", `Unsupported value: "Sometimes"`}},
			{"location bad compression", location("codec", func(l *storkv1.BackupLocation) { l.Spec.Compression = "lz4" }),
				[]string{"spec.compression", `Unsupported value: "lz4"`}},
			{"location short sync period", location("sync", func(l *storkv1.BackupLocation) { l.Spec.SyncPeriod = &metav1.Duration{Duration: time.Second} }),
				[]string{"spec.syncPeriod", "at least 10s"}},
			{"location s3 options on gs url", location("gs", func(l *storkv1.BackupLocation) {
				l.Spec.URL = "gs://bucket-1"
				l.Spec.S3 = &storkv1.S3Options{Region: "x"}
			}), []string{"s3 options are only valid with an s3:// url"}},
			{"location bad endpoint", location("endpoint", func(l *storkv1.BackupLocation) { l.Spec.S3 = &storkv1.S3Options{Endpoint: "minio:9000"} }),
				[]string{"spec.s3.endpoint"}},

			{"snapshot ok", snapshot("ok", nil), nil},
			{"snapshot selector ok", snapshot("selector", func(s *storkv1.Snapshot) {
				s.Spec.Source = storkv1.SnapshotSource{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}
			}), nil},
			{"snapshot no source", snapshot("none", func(s *storkv1.Snapshot) { s.Spec.Source = storkv1.SnapshotSource{} }),
				[]string{"spec.source", "exactly one of source.claimName, source.selector or source.wholeNamespace"}},
			{"snapshot two sources", snapshot("two", func(s *storkv1.Snapshot) { s.Spec.Source.WholeNamespace = true }),
				[]string{"spec.source", "exactly one of"}},
			{"snapshot hook without command", snapshot("hook", func(s *storkv1.Snapshot) { s.Spec.PreHooks = []storkv1.Hook{hook("freeze")} }),
				[]string{"spec.preHooks[0].command"}},
			{"snapshot hook bad policy", snapshot("policy", func(s *storkv1.Snapshot) {
				h := hook("freeze", "fsfreeze", "-f", "/data")
				h.OnError = "Maybe"
				s.Spec.PostHooks = []storkv1.Hook{h}
			}), []string{"spec.postHooks[0].onError", `Unsupported value: "Maybe"`}},
			{"snapshot hook long timeout", snapshot("timeout", func(s *storkv1.Snapshot) {
				h := hook("freeze", "sync")
				h.Timeout = &metav1.Duration{Duration: 2 * time.Hour}
				s.Spec.PreHooks = []storkv1.Hook{h}
			}), []string{"spec.preHooks[0].timeout", "at most 1h"}},
			{"snapshot resources without location", snapshot("res", func(s *storkv1.Snapshot) { s.Spec.IncludeResources = true }),
				[]string{"spec.includeResources needs spec.backupLocation"}},
			{"snapshot bad deletion policy", snapshot("dp", func(s *storkv1.Snapshot) { s.Spec.DeletionPolicy = "Shred" }),
				[]string{"spec.deletionPolicy", "Unsupported value"}},

			{"backup missing location", &storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "b"}},
				[]string{"spec.backupLocation"}},

			{"schedule cron ok", schedule("cron", "*/5 * * * *", nil), nil},
			{"schedule name too long", schedule(strings.Repeat("n", 53), "*/5 * * * *", nil), []string{"metadata.name must be at most 52 characters"}},
			{"schedule seconds ok", schedule("seconds", "*/10 * * * * *", nil), nil},
			{"schedule every ok", schedule("every", "@every 90s", nil), nil},
			{"schedule words", schedule("words", "every day", nil), []string{"spec.schedule", "cron expression of 5 or 6 fields"}},
			{"schedule three fields", schedule("three", "* * *", nil), []string{"spec.schedule"}},
			{"schedule negative retention", schedule("ret", "@hourly", func(s *storkv1.SnapshotSchedule) { s.Spec.Retention.KeepLast = -1 }),
				[]string{"spec.retention.keepLast"}},
			{"schedule bad time zone", schedule("tz", "@daily", func(s *storkv1.SnapshotSchedule) { s.Spec.TimeZone = "../etc/passwd" }),
				[]string{"spec.timeZone"}},
			{"schedule bad template", schedule("tmpl", "@daily", func(s *storkv1.SnapshotSchedule) { s.Spec.Template.Spec.Source = storkv1.SnapshotSource{} }),
				[]string{"spec.template.spec.source", "exactly one of"}},
			{"schedule objectives ok", schedule("obj", "@every 5m", func(s *storkv1.SnapshotSchedule) {
				s.Spec.Template.Spec.BackupLocation = "loc"
				s.Spec.Objectives = &storkv1.Objectives{RPO: &metav1.Duration{Duration: 10 * time.Minute}, RTO: &metav1.Duration{Duration: time.Hour}}
			}), nil},
			{"schedule rpo without a location", schedule("rpo-noloc", "@every 5m", func(s *storkv1.SnapshotSchedule) {
				s.Spec.Objectives = &storkv1.Objectives{RPO: &metav1.Duration{Duration: 10 * time.Minute}}
			}), []string{"objectives.rpo needs template.spec.backupLocation"}},
			{"schedule rpo too short", schedule("rpo-short", "@every 5m", func(s *storkv1.SnapshotSchedule) {
				s.Spec.Template.Spec.BackupLocation = "loc"
				s.Spec.Objectives = &storkv1.Objectives{RPO: &metav1.Duration{Duration: 30 * time.Second}}
			}), []string{"spec.objectives.rpo", "objectives.rpo must be at least 1m"}},
			{"schedule empty objectives", schedule("obj-empty", "@every 5m", func(s *storkv1.SnapshotSchedule) {
				s.Spec.Objectives = &storkv1.Objectives{}
			}), []string{"spec.objectives", "set rpo, rto or both"}},
			{"schedule bad concurrency", schedule("conc", "@daily", func(s *storkv1.SnapshotSchedule) { s.Spec.ConcurrencyPolicy = "Replace" }),
				[]string{"spec.concurrencyPolicy", "Unsupported value"}},

			{"restore ok", restore("ok", func(r *storkv1.Restore) {
				r.Spec.ZoneMapping = &storkv1.ZoneMapping{Mode: storkv1.ZoneMap, Zones: map[string]string{"a": "b"}}
			}), nil},
			{"restore verified from a backup", restore("verified", func(r *storkv1.Restore) { r.Spec.Verify = true }), nil},
			{"restore verified from a snapshot", restore("verifysnap", func(r *storkv1.Restore) {
				r.Spec.Source, r.Spec.Verify = storkv1.RestoreSource{SnapshotName: "s1"}, true
			}), []string{"spec.verify needs spec.source.backupName"}},
			{"restore paths", restore("paths", func(r *storkv1.Restore) { r.Spec.Paths = []string{"db/pg_wal", "conf/app.yaml", "..data"} }), nil},
			{"restore paths escaping", restore("pathsup", func(r *storkv1.Restore) { r.Spec.Paths = []string{"db/../../etc"} }),
				[]string{"spec.paths", "no '..' segments"}},
			{"restore paths verified", restore("pathsverify", func(r *storkv1.Restore) { r.Spec.Paths, r.Spec.Verify = []string{"db"}, true }),
				[]string{"spec.verify compares whole volumes"}},
			{"restore paths of a snapshot", restore("pathssnap", func(r *storkv1.Restore) {
				r.Spec.Source, r.Spec.Paths = storkv1.RestoreSource{SnapshotName: "s1"}, []string{"db"}
			}), []string{"spec.paths needs spec.source.backupName"}},
			{"restore transforms", restore("transforms", func(r *storkv1.Restore) {
				r.Spec.Transforms = []storkv1.ResourceTransform{{Kind: "Deployment", Patch: []storkv1.JSONPatchOperation{
					{Op: "replace", Path: "/spec/replicas", Value: &apiextensionsv1.JSON{Raw: []byte("0")}}, {Op: "remove", Path: "/spec/paused"},
					{Op: "copy", From: "/metadata/labels", Path: "/spec/template/metadata/labels"}}}}
			}), nil},
			{"restore transform move without from", restore("tfrom", func(r *storkv1.Restore) {
				r.Spec.Transforms = []storkv1.ResourceTransform{{Kind: "Deployment", Patch: []storkv1.JSONPatchOperation{{Op: "move", Path: "/spec/x"}}}}
			}), []string{"spec.transforms[0].patch[0]", "from is required with op move or copy"}},
			{"restore transform bad op", restore("top", func(r *storkv1.Restore) {
				r.Spec.Transforms = []storkv1.ResourceTransform{{Kind: "Deployment", Patch: []storkv1.JSONPatchOperation{{Op: "merge", Path: "/spec"}}}}
			}), []string{"spec.transforms[0].patch[0].op", "Unsupported value"}},
			{"restore transform empty patch", restore("tempty", func(r *storkv1.Restore) {
				r.Spec.Transforms = []storkv1.ResourceTransform{{Kind: "Deployment", Patch: []storkv1.JSONPatchOperation{}}}
			}), []string{"spec.transforms[0].patch"}},
			{"restore hooks", restore("hooks", func(r *storkv1.Restore) {
				r.Spec.Hooks = []storkv1.RestoreHook{{Hook: storkv1.Hook{Name: "check", Command: []string{"pg_isready"}}}}
			}), nil},
			{"restore hooks of a snapshot", restore("hookssnap", func(r *storkv1.Restore) {
				r.Spec.Source = storkv1.RestoreSource{SnapshotName: "s1"}
				r.Spec.Hooks = []storkv1.RestoreHook{{Hook: storkv1.Hook{Name: "check", Command: []string{"pg_isready"}}}}
			}), []string{"spec.hooks needs spec.source.backupName"}},
			{"restore two sources", restore("two", func(r *storkv1.Restore) { r.Spec.Source.SnapshotName = "s1" }),
				[]string{"spec.source", "exactly one of source.snapshotName or source.backupName"}},
			{"restore no source", restore("none", func(r *storkv1.Restore) { r.Spec.Source = storkv1.RestoreSource{} }),
				[]string{"spec.source", "exactly one of"}},
			{"restore map without zones", restore("zones", func(r *storkv1.Restore) { r.Spec.ZoneMapping = &storkv1.ZoneMapping{Mode: storkv1.ZoneMap} }),
				[]string{"spec.zoneMapping", "zones is required with mode Map"}},
			{"restore bad policy", restore("policy", func(r *storkv1.Restore) { r.Spec.ExistingObjectPolicy = "Overwrite" }),
				[]string{"spec.existingObjectPolicy", "Unsupported value"}},
			{"restore duplicate claims", restore("dupclaims", func(r *storkv1.Restore) { r.Spec.Claims = []string{"a", "a"} }),
				[]string{"spec.claims[1]", "Duplicate value"}},
			{"restore empty claim", restore("emptyclaim", func(r *storkv1.Restore) { r.Spec.Claims = []string{""} }),
				[]string{"spec.claims[0]", "at least 1 chars"}},

			{"drill ok", drill("ok", storkv1.RestoreDrillSpec{ScheduleName: "nightly", Schedule: "0 3 * * 0", TimeZone: "Europe/Paris", KeepSandbox: storkv1.KeepOnFailure}), nil},
			{"drill probes without pods", drill("probes", storkv1.RestoreDrillSpec{BackupName: "b1", VolumesOnly: true,
				Hooks: []storkv1.RestoreHook{{Hook: storkv1.Hook{Name: "probe", Command: []string{"true"}}}}}),
				[]string{"spec.hooks run in restored pods: with spec.volumesOnly no pod is restored"}},
			{"drill schedule and backup", drill("both", storkv1.RestoreDrillSpec{ScheduleName: "nightly", BackupName: "b1"}),
				[]string{"spec", "set exactly one of spec.scheduleName"}},
			{"drill nothing to drill", drill("none", storkv1.RestoreDrillSpec{}), []string{"set exactly one of spec.scheduleName"}},
			{"drill bad cron", drill("cron", storkv1.RestoreDrillSpec{BackupName: "b1", Schedule: "every night"}),
				[]string{"spec.schedule", "cron expression of 5 or 6 fields"}},
			{"drill bad keep", drill("keep", storkv1.RestoreDrillSpec{BackupName: "b1", KeepSandbox: "Sometimes"}),
				[]string{"spec.keepSandbox", "Unsupported value"}},
			{"drill history too long", drill("hist", storkv1.RestoreDrillSpec{BackupName: "b1", HistoryLimit: 51}),
				[]string{"spec.historyLimit", "less than or equal to 50"}},

			{"storagenode missing fields", &storkv1.StorageNode{ObjectMeta: metav1.ObjectMeta{Name: "n0"}},
				[]string{"spec.nodeName", "spec.driver"}},
			{"task ok", task("ok", nil), nil},
			{"task bad type", task("type", func(v *storkv1.VolumeTask) { v.Spec.Type = "Defrag" }),
				[]string{"spec.type", "Unsupported value"}},
			{"task upload without location", task("upload", func(v *storkv1.VolumeTask) {
				v.Spec.Type, v.Spec.SnapshotID = storkv1.TaskUpload, "snap-1"
			}), []string{"backupLocation is required for Upload and Download"}},
			{"task restore without snapshot", task("restore", func(v *storkv1.VolumeTask) { v.Spec.Type = storkv1.TaskRestore }),
				[]string{"snapshotID is required"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				err := c.Client.Create(ctx, tc.obj)
				checkErr(t, err, tc.want)
			})
		}
	})

	t.Run("defaults", func(t *testing.T) {
		s := &storkv1.Snapshot{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ok"}, s); err != nil {
			t.Fatal(err)
		}
		if s.Spec.DeletionPolicy != storkv1.DeletionDelete {
			t.Errorf("snapshot deletionPolicy defaulted to %q, want Delete", s.Spec.DeletionPolicy)
		}
		sched := &storkv1.SnapshotSchedule{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cron"}, sched); err != nil {
			t.Fatal(err)
		}
		if sched.Spec.ConcurrencyPolicy != storkv1.ConcurrencyForbid {
			t.Errorf("schedule concurrencyPolicy defaulted to %q, want Forbid", sched.Spec.ConcurrencyPolicy)
		}
	})

	t.Run("update", func(t *testing.T) {
		sn := &storkv1.StorageNode{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Spec: storkv1.StorageNodeSpec{NodeName: "n1", Driver: "local"}}
		if err := c.Client.Create(ctx, sn); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name string
			obj  client.Object
			mut  func(client.Object)
			want []string
		}{
			{"location url", &storkv1.BackupLocation{}, func(o client.Object) {
				o.(*storkv1.BackupLocation).Spec.URL = "s3://other-bucket"
			}, []string{"spec.url", "url is immutable"}},
			{"location default flag", &storkv1.BackupLocation{}, func(o client.Object) {
				o.(*storkv1.BackupLocation).Spec.Default = true
			}, nil},
			{"snapshot source", &storkv1.Snapshot{}, func(o client.Object) {
				o.(*storkv1.Snapshot).Spec.Source.ClaimName = "other"
			}, []string{"spec.source is immutable"}},
			{"snapshot gains location", &storkv1.Snapshot{}, func(o client.Object) {
				o.(*storkv1.Snapshot).Spec.BackupLocation = "ok"
			}, []string{"spec.backupLocation is immutable"}},
			{"snapshot deletion policy", &storkv1.Snapshot{}, func(o client.Object) {
				o.(*storkv1.Snapshot).Spec.DeletionPolicy = storkv1.DeletionRetain
			}, nil},
			{"schedule template source", &storkv1.SnapshotSchedule{}, func(o client.Object) {
				o.(*storkv1.SnapshotSchedule).Spec.Template.Spec.Source = storkv1.SnapshotSource{ClaimName: "data"}
			}, nil},
			{"restore spec", &storkv1.Restore{}, func(o client.Object) {
				o.(*storkv1.Restore).Spec.NamespaceMapping = map[string]string{"a": "b"}
			}, []string{"spec is immutable"}},
			{"storagenode spec", &storkv1.StorageNode{}, func(o client.Object) {
				o.(*storkv1.StorageNode).Spec.Driver = "csi"
			}, []string{"spec", "immutable"}},
			{"task spec", &storkv1.VolumeTask{}, func(o client.Object) {
				o.(*storkv1.VolumeTask).Spec.NodeName = "n2"
			}, []string{"spec", "immutable"}},
		}
		names := map[string]client.ObjectKey{
			"location": {Namespace: ns, Name: "ok"}, "snapshot": {Namespace: ns, Name: "ok"},
			"schedule": {Namespace: ns, Name: "cron"}, "restore": {Namespace: ns, Name: "ok"},
			"storagenode": {Name: "n1"}, "task": {Namespace: ns, Name: "ok"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				if err := c.Client.Get(ctx, names[strings.Fields(tc.name)[0]], tc.obj); err != nil {
					t.Fatal(err)
				}
				tc.mut(tc.obj)
				checkErr(t, c.Client.Update(ctx, tc.obj), tc.want)
			})
		}
	})

	t.Run("status is a subresource", func(t *testing.T) {
		s := &storkv1.Snapshot{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ok"}, s); err != nil {
			t.Fatal(err)
		}
		s.Status.Phase = storkv1.SnapshotReady
		if err := c.Client.Update(ctx, s); err != nil {
			t.Fatal(err)
		}
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
			t.Fatal(err)
		}
		if s.Status.Phase != "" {
			t.Errorf("an update of the main resource changed status.phase to %q", s.Status.Phase)
		}
		s.Status.Phase = "Exploded"
		checkErr(t, c.Client.Status().Update(ctx, s), []string{"status.phase", "Unsupported value"})
	})
}

func checkErr(t *testing.T, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("rejected: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("accepted; want an error mentioning %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if testing.Verbose() {
		fmt.Println("    rejected as expected:", err)
	}
}
