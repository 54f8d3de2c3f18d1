package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/madmin-go/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/controllers"
	"stork.dev/stork/backup/engine/archive"
	"stork.dev/stork/backup/engine/catalog"
	"stork.dev/stork/backup/engine/repo"
	"stork.dev/stork/drivers/csi"
	"stork.dev/stork/drivers/local/agent"
	"stork.dev/stork/drivers/taskstatus"
	"stork.dev/stork/internal/crashpoint"
	"stork.dev/stork/internal/harness"
	"stork.dev/stork/internal/treesum"
	"stork.dev/stork/restore"
)

// The fault campaign. Every fault is injected into a backup or a restore of namespace app, whose
// two claims are a local volume (copied by the node's agent) and a CSI volume (copied by mover
// pods): kill -9 of the controller, the agent or a mover at a named point of the work
// (internal/crashpoint), MinIO killed and restarted mid-upload, the bucket made read-only
// mid-upload, the restore target's disk full, kube-apiserver killed and restarted. Then the
// killed process is started again and the campaign checks that:
//   - the work ended, Completed or failed with a reason, within minutes (nothing hangs);
//   - a Completed backup restores to exactly the data captured, a Completed restore holds exactly
//     the backed-up data (nothing reported Completed while partial);
//   - a failed backup left no record in the bucket (no half-written backup is visible);
//   - the baseline backup and every backup completed before are still in the bucket and whole;
//   - no orphan is left: no VolumeTask, access Secret, mover pod, CSI temporary, agent work
//     directory, node snapshot without its Snapshot, or PersistentVolume without its claim.
//
// `make faults` runs every fault (STORK_FAULTS=full) and writes docs/reliability.md
// (STORK_FAULTS_REPORT); `make test` runs the short form, one fault of each kind.

// fault is one row of the campaign.
type fault struct {
	// op is what the fault hits: "backup" or "restore".
	op string
	// process and point: kill -9 of process ("controller", "agent", "mover") at point.
	process, point string
	// name and inject describe any other fault; inject runs once the operation's first data
	// task (Upload or Download) exists, and returns a function that undoes it (or nil).
	name   string
	inject func(ctx context.Context, t *testing.T, cp *campaign) (undo func())
	// short: part of the short form that `make test` runs.
	short bool
}

func (f fault) String() string {
	if f.name != "" {
		return f.name
	}
	return fmt.Sprintf("kill -9 of the %s at %s", f.process, f.point)
}

func campaignFaults() []fault {
	kill := func(op, process, point string, short bool) fault {
		return fault{op: op, process: process, point: point, short: short}
	}
	return []fault{
		// A backup: the Snapshot captures, makes its Backup, which uploads each volume, saves
		// the objects, and writes its record.
		kill("backup", "controller", controllers.CrashCaptureRequested, false),
		kill("backup", "controller", controllers.CrashBackupCreated, false),
		kill("backup", "controller", controllers.CrashResourcesSaved, false),
		kill("backup", "controller", controllers.CrashExportRequested, false),
		kill("backup", "controller", controllers.CrashVolumesExported, false),
		kill("backup", "controller", controllers.CrashRecordWritten, true),
		kill("backup", "agent", taskstatus.CrashStarted+string(storkv1.TaskSnapshot), false),
		kill("backup", "agent", taskstatus.CrashFinishing+string(storkv1.TaskSnapshot), false),
		kill("backup", "agent", taskstatus.CrashStarted+string(storkv1.TaskUpload), false),
		kill("backup", "agent", repo.CrashPackStored, true),
		kill("backup", "agent", taskstatus.CrashFinishing+string(storkv1.TaskUpload), false),
		kill("backup", "mover", taskstatus.CrashStarted+string(storkv1.TaskUpload), false),
		kill("backup", "mover", repo.CrashPackStored, false),
		kill("backup", "mover", taskstatus.CrashFinishing+string(storkv1.TaskUpload), false),
		// A restore: objects that come first, each volume's download, the remaining objects.
		kill("restore", "controller", restore.CrashFirstObjectsRestored, false),
		kill("restore", "controller", restore.CrashImportRequested, false),
		kill("restore", "controller", restore.CrashVolumesImported, false),
		kill("restore", "controller", restore.CrashObjectsRestored, true),
		kill("restore", "agent", taskstatus.CrashStarted+string(storkv1.TaskDownload), false),
		kill("restore", "agent", archive.CrashRestoreMidway, false),
		kill("restore", "agent", taskstatus.CrashFinishing+string(storkv1.TaskDownload), false),
		kill("restore", "mover", taskstatus.CrashStarted+string(storkv1.TaskDownload), false),
		kill("restore", "mover", archive.CrashRestoreMidway, true),
		kill("restore", "mover", taskstatus.CrashFinishing+string(storkv1.TaskDownload), false),
		{op: "backup", name: "MinIO killed mid-upload, restarted 3s later", inject: restartMinIO, short: true},
		{op: "backup", name: "bucket made read-only mid-upload (writes denied); a restore while read-only", inject: readOnlyBucket, short: true},
		{op: "backup", name: "kube-apiserver killed mid-upload, restarted 3s later", inject: restartAPIServer, short: true},
		{op: "restore", name: "MinIO killed mid-download, restarted 3s later", inject: restartMinIO},
		{op: "restore", name: "kube-apiserver killed mid-download, restarted 3s later", inject: restartAPIServer},
		{op: "restore", name: "restore target's disk full mid-download", inject: fillDisk, short: true},
	}
}

// campaign is the cluster the faults are injected into, and what was found.
type campaign struct {
	env   *harness.Env
	c     *harness.Cluster
	m     *harness.MinIO
	admin *madmin.AdminClient
	plane *harness.CSI
	node  string
	// rootMounted: the node's storage root is a tmpfs of its own (for the full disk).
	rootMounted bool

	stork, agent *harness.Process
	storkArgs    []string
	agentArgs    []string

	moverMu    sync.Mutex
	moverPoint string // armed: the next mover pod gets STORK_CRASH_AT
	moverPod   string // the pod that got it

	localDir, csiDir string
	baseline         *storkv1.Backup
	baselineSums     map[string]treesum.Sum // claim → content
	completed        []string               // UIDs of backups completed during the campaign
	n                int
	results          []result
}

// result is one run of a fault.
type result struct {
	fault fault
	// outcome is the class of the end (how it ended, with the reason); detail its message.
	outcome, detail string
	problems        []string
	took            time.Duration
}

const (
	faultsBucketUser = "stork-writer"
	faultsPassphrase = "passphrase of the fault campaign"
)

// TestFaults runs the fault campaign: the short form by default, every fault with
// STORK_FAULTS=full, STORK_FAULTS_ROUNDS times; STORK_FAULTS_ONLY=TEXT runs only the faults whose
// names contain TEXT; STORK_FAULTS_REPORT=PATH writes the results as docs/reliability.md.
func TestFaults(t *testing.T) {
	full := os.Getenv("STORK_FAULTS") == "full"
	if !full {
		t.Parallel()
	}
	harness.RequireCSIBinaries(t)
	ctx := context.Background()
	cp := startCampaign(ctx, t)
	rounds := 1
	if n, err := strconv.Atoi(os.Getenv("STORK_FAULTS_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	var faults []fault
	only := os.Getenv("STORK_FAULTS_ONLY") // a part of the faults' names, to run those alone
	for range rounds {
		for _, f := range campaignFaults() {
			if (full || f.short) && strings.Contains(f.String(), only) {
				faults = append(faults, f)
			}
		}
	}
	for _, f := range faults {
		cp.n++
		start := time.Now()
		var res result
		t.Run(fmt.Sprintf("%02d %s %s", cp.n, f.op, f), func(t *testing.T) {
			defer func() {
				switch {
				case t.Skipped():
					res.outcome = "not run: needs root"
				case t.Failed() && res.outcome == "":
					res.outcome, res.problems = "the run stopped", append(res.problems, "the run stopped: see the test log")
				}
			}()
			res = cp.run(ctx, t, f)
			for _, p := range res.problems {
				t.Error(p)
			}
			t.Logf("outcome: %s %s", res.outcome, res.detail)
		})
		res.fault, res.took = f, time.Since(start)
		cp.results = append(cp.results, res)
	}
	if path := os.Getenv("STORK_FAULTS_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(cp.report(full, rounds)), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
}

func startCampaign(ctx context.Context, t *testing.T) *campaign {
	env := harness.New(t)
	cp := &campaign{env: env, node: "n-zone-a-1"}
	var err error
	if cp.m, err = env.StartMinIO(ctx, "minio-faults"); err != nil {
		t.Fatal(err)
	}
	// Stork writes as a user of its own, whose policy the read-only fault changes (the root
	// user is above bucket policies).
	if cp.admin, err = madmin.New(cp.m.Host, cp.m.AccessKey, cp.m.SecretKey, false); err != nil {
		t.Fatal(err)
	}
	if err := cp.admin.AddUser(ctx, faultsBucketUser, faultsBucketUser+"-secret"); err != nil {
		t.Fatal(err)
	}
	// MinIO's own "readonly" policy cannot list; a read-only bucket for backups can.
	readOnly := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:Get*","s3:List*"],"Resource":["arn:aws:s3:::*"]}]}`
	if err := cp.admin.AddCannedPolicy(ctx, "stork-read", []byte(readOnly)); err != nil {
		t.Fatal(err)
	}
	cp.setBucketPolicy(ctx, t, "readwrite")

	if cp.c, err = env.StartCluster(ctx, harness.ClusterOptions{Name: "faults", Nodes: harness.Nodes("n", "region-1", []string{"zone-a"}, 1)}); err != nil {
		t.Fatal(err)
	}
	c := cp.c
	if err := c.ApplyManifests(ctx, harness.RBACOnly); err != nil {
		t.Fatal(err)
	}
	// The node's storage root on a tmpfs of its own, so that the disk-full fault fills it and
	// nothing else (root only: elsewhere that fault is reported as not run).
	if os.Geteuid() == 0 {
		root := c.NodeRoot(cp.node)
		if err := os.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4g", "stork-faults", root).CombinedOutput(); err != nil {
			t.Fatalf("mounting a tmpfs on %s: %v\n%s", root, err, out)
		}
		cp.rootMounted = true
		t.Cleanup(func() {
			if out, err := exec.Command("umount", "-l", root).CombinedOutput(); err != nil {
				t.Errorf("unmounting %s: %v\n%s", root, err, out)
			}
		})
	}
	if cp.plane, err = c.StartCSI(ctx, harness.CSIOptions{}); err != nil {
		t.Fatal(err)
	}
	// A failing step is given up after a minute, not fifteen: a fault that cannot be waited out
	// (a bucket refusing writes) ends within its run.
	cp.storkArgs = []string{"--retry-limit=1m", "--retry-max=10s", "--restore-storage-wait=1m", "--drivers=local,csi", "--driver-config=csi.sweepInterval=2s", "--driver-config=csi.moverImage=stork:e2e"}
	cp.agentArgs = []string{"--sweep-interval=1s", "--sweep-grace=2s"}
	cp.restart(ctx, t, "controller", "")
	cp.restart(ctx, t, "agent", "")
	movers := &harness.MoverPods{Cluster: c,
		VolumeDir: func(pv *corev1.PersistentVolume) string { return cp.plane.VolumeDir(pv.Spec.CSI.VolumeHandle) },
		Env: func(p *corev1.Pod) []string {
			cp.moverMu.Lock()
			defer cp.moverMu.Unlock()
			if cp.moverPoint == "" {
				return nil
			}
			point := cp.moverPoint
			cp.moverPoint, cp.moverPod = "", p.Name
			return []string{crashpoint.EnvVar + "=" + point}
		}}
	mctx, stopMovers := context.WithCancel(ctx)
	t.Cleanup(stopMovers)
	movers.Run(mctx)

	// Namespace app: a local volume, a CSI volume, a ConfigMap and a Deployment (objects that
	// a restore applies before and after the volumes).
	mustCreate(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}})
	backed := map[string]string{"backup": "yes"}
	cp.localDir = makeLocalVolume(t, c, "app", "data", cp.node, backed)
	writeTree(t, cp.localDir, 31, 8<<20)
	pvc := csiClaim("cdata", cp.plane.ImmediateClass, nil)
	pvc.Labels = backed
	mustCreate(t, c, pvc)
	cp.csiDir = cp.plane.VolumeDir(waitClaimBound(t, c, pvc).Spec.CSI.VolumeHandle)
	writeTree(t, cp.csiDir, 32, 8<<20)
	cp.churn(t)
	mustCreate(t, c, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "settings", Labels: backed}, Data: map[string]string{"mode": "primary"}})
	app := testApp("app")
	app.Labels["backup"] = "yes"
	mustCreate(t, c, app)
	mustCreate(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "loc-creds"},
		StringData: map[string]string{"accessKeyID": faultsBucketUser, "secretAccessKey": faultsBucketUser + "-secret"}})
	mustCreate(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "loc-key"},
		StringData: map[string]string{"passphrase": faultsPassphrase}})
	mustCreate(t, c, &storkv1.BackupLocation{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "loc"},
		Spec: storkv1.BackupLocationSpec{URL: "s3://" + cp.m.Bucket + "/" + c.Name,
			S3:                     &storkv1.S3Options{Endpoint: cp.m.Endpoint, Region: "us-east-1", ForcePathStyle: true},
			CredentialsSecretRef:   &storkv1.SecretReference{Name: "loc-creds"},
			EncryptionKeySecretRef: storkv1.SecretKeyReference{Name: "loc-key", Key: "passphrase"}}})

	// The baseline: the backup every restore fault restores, and that must survive them all.
	cp.baselineSums = cp.sums(t)
	mustCreate(t, c, cp.snapshot("base"))
	cp.baseline = &storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "base"}}
	waitBackup(t, c, cp.baseline)
	cp.completed = append(cp.completed, string(cp.baseline.UID))
	return cp
}

func (cp *campaign) setBucketPolicy(ctx context.Context, t *testing.T, policy string) {
	t.Helper()
	//nolint:staticcheck // SetPolicy replaces the user's policies in one call, which is the point.
	if err := cp.admin.SetPolicy(ctx, policy, faultsBucketUser, false); err != nil {
		t.Fatalf("setting policy %s on MinIO user %s: %v", policy, faultsBucketUser, err)
	}
}

// churn rewrites a large file in both volumes, so that each backup has new data to read and
// upload (a backup of unchanged files reads nothing, and its midway points would not come).
func (cp *campaign) churn(t *testing.T) {
	t.Helper()
	for _, dir := range []string{cp.localDir, cp.csiDir} {
		f, err := os.Create(filepath.Join(dir, "churn.bin"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(f, rand.Reader, 24<<20); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func (cp *campaign) sums(t *testing.T) map[string]treesum.Sum {
	t.Helper()
	out := map[string]treesum.Sum{}
	for claim, dir := range map[string]string{"data": cp.localDir, "cdata": cp.csiDir} {
		s, err := treesum.Of(dir)
		if err != nil {
			t.Fatal(err)
		}
		out[claim] = s
	}
	return out
}

func (cp *campaign) snapshot(name string) *storkv1.Snapshot {
	return &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name},
		Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"backup": "yes"}}},
			BackupLocation: "loc", IncludeResources: true}}
}

// restart stops process ("controller" or "agent") if it runs and starts it again, with the
// crash point armed if point is set.
func (cp *campaign) restart(ctx context.Context, t *testing.T, process, point string) {
	t.Helper()
	var env []string
	if point != "" {
		env = []string{crashpoint.EnvVar + "=" + point}
	}
	var err error
	switch process {
	case "controller":
		if cp.stork != nil {
			_ = cp.stork.Stop(10 * time.Second)
		}
		cp.stork, err = cp.c.StartStorkEnv(ctx, env, cp.storkArgs...)
	case "agent":
		if cp.agent != nil {
			_ = cp.agent.Stop(10 * time.Second)
		}
		cp.agent, err = cp.c.StartAgentEnv(ctx, cp.node, env, cp.agentArgs...)
	default:
		t.Fatalf("no process %q to restart", process)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// arm makes the fault's process die at its point.
func (cp *campaign) arm(ctx context.Context, t *testing.T, f fault) {
	if f.process == "mover" {
		cp.moverMu.Lock()
		cp.moverPoint, cp.moverPod = f.point, ""
		cp.moverMu.Unlock()
		return
	}
	cp.restart(ctx, t, f.process, f.point)
}

// waitCrash waits for the armed process to kill itself at its point, then starts it again
// (a mover pod is started again by the driver, as a new attempt). It returns a problem if the
// point was never reached.
func (cp *campaign) waitCrash(ctx context.Context, t *testing.T, f fault) string {
	var log func() string
	var exited <-chan struct{}
	switch f.process {
	case "controller":
		exited, log = cp.stork.Exited(), func() string { return cp.stork.LogPath }
	case "agent":
		exited, log = cp.agent.Exited(), func() string { return cp.agent.LogPath }
	case "mover":
		log = func() string {
			cp.moverMu.Lock()
			defer cp.moverMu.Unlock()
			if cp.moverPod == "" {
				return ""
			}
			return filepath.Join(cp.env.Root, "logs", cp.c.Name+"-"+cp.moverPod+".log")
		}
	}
	said := func() bool {
		p := log()
		if p == "" {
			return false
		}
		data, _ := os.ReadFile(p)
		return strings.Contains(string(data), crashpoint.Message(f.point))
	}
	deadline := time.After(2 * time.Minute)
	for !said() {
		select {
		case <-exited:
			if !said() {
				return fmt.Sprintf("the %s exited without reaching %s: %s", f.process, f.point, tailOf(log()))
			}
		case <-deadline:
			cp.disarm()
			return fmt.Sprintf("crash point %s was not reached within 2 minutes", f.point)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if exited != nil {
		<-exited
		cp.restart(ctx, t, f.process, "")
	}
	return ""
}

func (cp *campaign) disarm() {
	cp.moverMu.Lock()
	cp.moverPoint = ""
	cp.moverMu.Unlock()
}

func tailOf(path string) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, "\n")
}

// run injects f into a new backup or restore and checks how it ended.
func (cp *campaign) run(ctx context.Context, t *testing.T, f fault) result {
	var res result
	if f.name == "" {
		cp.arm(ctx, t, f)
	}
	var undo func()
	// The Backup (of the Snapshot of that name) or the Restore the fault hits.
	name := fmt.Sprintf("%s-%02d", map[string]string{"backup": "bk", "restore": "rs"}[f.op], cp.n)
	injected := func() {
		if f.inject == nil {
			if p := cp.waitCrash(ctx, t, f); p != "" {
				res.problems = append(res.problems, p)
			}
			return
		}
		typ := storkv1.TaskUpload
		if f.op == "restore" {
			typ = storkv1.TaskDownload
		}
		cp.waitLocalTask(ctx, t, typ, name)
		undo = f.inject(ctx, t, cp)
	}
	if f.op == "backup" {
		cp.runBackup(ctx, t, name, injected, &res)
	} else {
		cp.runRestore(ctx, t, name, injected, &res)
	}
	if undo != nil {
		undo()
	}
	cp.disarm()
	res.problems = append(res.problems, cp.orphans(ctx)...)
	res.problems = append(res.problems, cp.safe(ctx)...)
	return res
}

func (cp *campaign) runBackup(ctx context.Context, t *testing.T, name string, injected func(), res *result) {
	c := cp.c
	cp.churn(t)
	want := cp.sums(t)
	snap := cp.snapshot(name)
	mustCreate(t, c, snap)
	injected()
	b := &storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name}}
	phase, reason, msg := cp.waitBackupFinal(ctx, b)
	switch phase {
	case "":
		res.outcome = "did not finish within 5 minutes"
		res.problems = append(res.problems, fmt.Sprintf("Backup %s did not finish: %s %s", name, reason, msg))
	case storkv1.BackupCompleted:
		res.outcome = "resumed: Completed, data identical"
		// Nothing reported Completed while partial: the backup restores to what was captured.
		rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "vf-" + name},
			Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{BackupName: name}, VolumesOnly: true,
				ClaimNameMapping: map[string]string{"data": "vf-" + name + "-data", "cdata": "vf-" + name + "-cdata"}}}
		mustCreate(t, c, rs)
		if p := cp.waitRestoreFinal(ctx, rs); p != storkv1.RestoreCompleted {
			res.problems = append(res.problems, fmt.Sprintf("restoring the Completed Backup %s: %s %+v", name, p, rs.Status.Conditions))
		} else {
			res.problems = append(res.problems, cp.compare(ctx, "app", map[string]string{"data": "vf-" + name + "-data", "cdata": "vf-" + name + "-cdata"}, want)...)
		}
		cp.completed = append(cp.completed, string(b.UID))
	default:
		res.outcome, res.detail = fmt.Sprintf("failed cleanly: %s, reason %s", phase, reason), shorten(msg)
		if reason == "" || msg == "" {
			res.problems = append(res.problems, fmt.Sprintf("Backup %s is %s without a reason", name, phase))
		}
		if phase == storkv1.BackupFailed {
			if id, err := cp.find(ctx, catalog.KindRecord, string(b.UID)); err != nil || id != "" {
				res.problems = append(res.problems, fmt.Sprintf("the Failed Backup %s has a record in the bucket: %q (%v)", name, id, err))
			}
		}
	}
	// The Snapshot goes (its node and CSI snapshots with it); the Backup stays.
	if err := c.Client.Delete(ctx, snap); err != nil {
		t.Fatal(err)
	}
	err := c.WaitFor(ctx, 2*time.Minute, "Snapshot "+name+" to be deleted", func(ctx context.Context) (bool, error) {
		err := c.Client.Get(ctx, client.ObjectKeyFromObject(snap), &storkv1.Snapshot{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	if err != nil {
		res.problems = append(res.problems, err.Error())
	}
}

func (cp *campaign) runRestore(ctx context.Context, t *testing.T, name string, injected func(), res *result) {
	rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: harness.StorkNamespace, Name: name},
		Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{BackupName: "base", Namespace: "app"},
			NamespaceMapping: map[string]string{"app": name}}}
	mustCreate(t, cp.c, rs)
	injected()
	phase := cp.waitRestoreFinal(ctx, rs)
	ready := meta.FindStatusCondition(rs.Status.Conditions, storkv1.ConditionReady)
	switch {
	case phase == "":
		res.outcome = "did not finish within 5 minutes"
		res.problems = append(res.problems, fmt.Sprintf("Restore %s did not finish: %+v", name, rs.Status.Conditions))
	case phase == storkv1.RestoreCompleted:
		res.outcome = "resumed: Completed, data identical"
		res.problems = append(res.problems, cp.compare(ctx, name, map[string]string{"data": "data", "cdata": "cdata"}, cp.baselineSums)...)
		if err := cp.c.Client.Get(ctx, client.ObjectKey{Namespace: name, Name: "settings"}, &corev1.ConfigMap{}); err != nil {
			res.problems = append(res.problems, fmt.Sprintf("ConfigMap settings of the Completed Restore %s: %v", name, err))
		}
	default:
		reason, msg := "", ""
		if ready != nil {
			reason, msg = ready.Reason, ready.Message
		}
		res.outcome, res.detail = fmt.Sprintf("failed cleanly: %s, reason %s", phase, reason), shorten(msg)
		if reason == "" || msg == "" {
			res.problems = append(res.problems, fmt.Sprintf("Restore %s is %s without a reason", name, phase))
		}
		// The volumes that did restore hold the whole backup.
		done := map[string]string{}
		for _, v := range rs.Status.Volumes {
			if v.Phase == storkv1.VolumeSucceeded {
				done[v.SourceClaim] = v.TargetClaim
			}
		}
		res.problems = append(res.problems, cp.compare(ctx, name, done, cp.baselineSums)...)
	}
}

// waitBackupFinal waits up to 5 minutes for b to be final; it returns "" if it is not.
func (cp *campaign) waitBackupFinal(ctx context.Context, b *storkv1.Backup) (storkv1.BackupPhase, string, string) {
	_ = cp.c.WaitFor(ctx, 5*time.Minute, "Backup "+b.Name+" to finish", func(ctx context.Context) (bool, error) {
		if err := cp.c.Client.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
			return false, nil
		}
		switch b.Status.Phase {
		case storkv1.BackupCompleted, storkv1.BackupFailed, storkv1.BackupPartiallyFailed:
			return true, nil
		}
		return false, nil
	})
	ready := meta.FindStatusCondition(b.Status.Conditions, storkv1.ConditionReady)
	switch b.Status.Phase {
	case storkv1.BackupCompleted, storkv1.BackupFailed, storkv1.BackupPartiallyFailed:
		if ready == nil {
			return b.Status.Phase, "", ""
		}
		return b.Status.Phase, ready.Reason, ready.Message
	}
	return "", string(b.Status.Phase), fmt.Sprint(b.Status.Conditions)
}

func (cp *campaign) waitRestoreFinal(ctx context.Context, rs *storkv1.Restore) storkv1.RestorePhase {
	_ = cp.c.WaitFor(ctx, 5*time.Minute, "Restore "+rs.Name+" to finish", func(ctx context.Context) (bool, error) {
		if err := cp.c.Client.Get(ctx, client.ObjectKeyFromObject(rs), rs); err != nil {
			return false, nil
		}
		return final(rs.Status.Phase), nil
	})
	if final(rs.Status.Phase) {
		return rs.Status.Phase
	}
	return ""
}

func final(p storkv1.RestorePhase) bool {
	return p == storkv1.RestoreCompleted || p == storkv1.RestoreFailed || p == storkv1.RestorePartiallyFailed
}

// compare checks that each restored claim (source claim → claim in ns) holds want's content.
func (cp *campaign) compare(ctx context.Context, ns string, claims map[string]string, want map[string]treesum.Sum) []string {
	var problems []string
	for src, claim := range claims {
		pvc := &corev1.PersistentVolumeClaim{}
		pv := &corev1.PersistentVolume{}
		if err := cp.c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: claim}, pvc); err != nil {
			problems = append(problems, fmt.Sprintf("restored claim %s/%s: %v", ns, claim, err))
			continue
		}
		if err := cp.c.Client.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, pv); err != nil {
			problems = append(problems, fmt.Sprintf("volume of restored claim %s/%s: %v", ns, claim, err))
			continue
		}
		dir := ""
		switch {
		case pv.Spec.Local != nil:
			dir = pv.Spec.Local.Path
		case pv.Spec.CSI != nil:
			dir = cp.plane.VolumeDir(pv.Spec.CSI.VolumeHandle)
		}
		got, err := treesum.Of(dir)
		if err != nil {
			problems = append(problems, fmt.Sprintf("reading restored claim %s/%s at %s: %v", ns, claim, dir, err))
		} else if got != want[src] {
			problems = append(problems, fmt.Sprintf("restored claim %s/%s (from %s) differs from the backed-up data: %s, want %s", ns, claim, src, got, want[src]))
		}
	}
	return problems
}

// find looks a snapshot of kind for a backup UID up in the bucket, as a user's storkctl would.
func (cp *campaign) find(ctx context.Context, kind, uid string) (string, error) {
	rp, closeRepo, err := openRepository(ctx, cp.m, cp.c.Name, faultsPassphrase)
	if err != nil {
		return "", err
	}
	defer closeRepo()
	return findID(ctx, rp, kind, uid)
}

// findID is the ID of the snapshot of kind for a backup UID, "" when there is none.
func findID(ctx context.Context, rp *repo.Repository, kind, uid string) (string, error) {
	s, err := catalog.Find(ctx, rp, kind, uid)
	if err != nil || s == nil {
		return "", err
	}
	return s.ID.String(), nil
}

// safe checks that nothing already safe was lost: the baseline Backup is Completed and every
// backup completed so far still has its record in the bucket.
func (cp *campaign) safe(ctx context.Context) []string {
	var problems []string
	b := &storkv1.Backup{}
	if err := cp.c.Client.Get(ctx, client.ObjectKeyFromObject(cp.baseline), b); err != nil || b.Status.Phase != storkv1.BackupCompleted {
		problems = append(problems, fmt.Sprintf("the baseline Backup: %v, phase %s", err, b.Status.Phase))
	}
	rp, closeRepo, err := openRepository(ctx, cp.m, cp.c.Name, faultsPassphrase)
	if err != nil {
		return append(problems, err.Error())
	}
	defer closeRepo()
	for _, uid := range cp.completed {
		if id, err := findID(ctx, rp, catalog.KindRecord, uid); err != nil || id == "" {
			problems = append(problems, fmt.Sprintf("the record of completed backup %s is not in the bucket (%v)", uid, err))
		}
	}
	return problems
}

// orphans waits up to 90s for every leftover of the run to be gone, and lists those that stay.
func (cp *campaign) orphans(ctx context.Context) []string {
	var left []string
	_ = cp.c.WaitFor(ctx, 90*time.Second, "no orphans", func(ctx context.Context) (bool, error) {
		left = cp.leftovers(ctx)
		return len(left) == 0, nil
	})
	for i := range left {
		left[i] = "orphan: " + left[i]
	}
	return left
}

func (cp *campaign) leftovers(ctx context.Context) []string {
	c := cp.c
	var left []string
	var tasks storkv1.VolumeTaskList
	var secrets corev1.SecretList
	var pods corev1.PodList
	var pvcs corev1.PersistentVolumeClaimList
	var pvs corev1.PersistentVolumeList
	var snaps storkv1.SnapshotList
	for _, l := range []struct {
		list client.ObjectList
		opts []client.ListOption
	}{
		{&tasks, nil}, {&secrets, []client.ListOption{client.InNamespace(harness.StorkNamespace)}},
		{&pods, []client.ListOption{client.InNamespace(harness.StorkNamespace), client.MatchingLabels{"stork.dev/mover": "true"}}},
		{&pvcs, nil}, {&pvs, nil}, {&snaps, nil},
	} {
		if err := c.Client.List(ctx, l.list, l.opts...); err != nil {
			return []string{"listing: " + err.Error()}
		}
	}
	// A task stays while its owner does (its result is part of the owner's status); one that
	// is still running once the work ended, or whose owner is gone, is an orphan.
	for _, tk := range tasks.Items {
		if tk.Status.Phase != storkv1.TaskSucceeded && tk.Status.Phase != storkv1.TaskFailed {
			left = append(left, fmt.Sprintf("VolumeTask %s/%s (%s) still %q", tk.Namespace, tk.Name, tk.Spec.Type, tk.Status.Phase))
		}
		for _, o := range tk.OwnerReferences {
			owner := map[string]client.Object{"Snapshot": &storkv1.Snapshot{}, "Backup": &storkv1.Backup{}, "Restore": &storkv1.Restore{}}[o.Kind]
			if owner == nil {
				continue
			}
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: tk.Namespace, Name: o.Name}, owner); apierrors.IsNotFound(err) || (err == nil && owner.GetUID() != o.UID) {
				left = append(left, fmt.Sprintf("VolumeTask %s/%s (%s) of %s %s, which is gone", tk.Namespace, tk.Name, tk.Spec.Type, o.Kind, o.Name))
			}
		}
	}
	for _, s := range secrets.Items {
		if strings.HasPrefix(s.Name, "stork-access-") {
			left = append(left, "access Secret "+s.Name)
		}
	}
	for _, p := range pods.Items {
		left = append(left, "mover pod "+p.Name)
	}
	claims := map[string]bool{}
	for _, pvc := range pvcs.Items {
		claims[pvc.Namespace+"/"+pvc.Name+"/"+string(pvc.UID)] = true
		if pvc.Labels[csi.LabelTemporary] == "true" {
			left = append(left, "temporary claim "+pvc.Namespace+"/"+pvc.Name)
		}
	}
	for _, pv := range pvs.Items {
		if ref := pv.Spec.ClaimRef; ref == nil || !claims[ref.Namespace+"/"+ref.Name+"/"+string(ref.UID)] {
			left = append(left, fmt.Sprintf("PersistentVolume %s without its claim (%s)", pv.Name, pv.Status.Phase))
		}
	}
	// The node: no work directory, and no snapshot that no Snapshot holds.
	root := filepath.Join(c.NodeRoot(cp.node), ".stork")
	work, _ := os.ReadDir(filepath.Join(root, "work"))
	for _, e := range work {
		left = append(left, "agent work directory "+e.Name())
	}
	held := map[string]bool{}
	for _, s := range snaps.Items {
		for _, v := range s.Status.Volumes {
			held[v.SnapshotID] = true
		}
	}
	nodeSnaps, _ := os.ReadDir(filepath.Join(root, "snapshots"))
	for _, e := range nodeSnaps {
		if !held[e.Name()] {
			left = append(left, "node snapshot "+e.Name()+" of no Snapshot")
		}
	}
	sort.Strings(left)
	return left
}

// shorten keeps a message's start (what was being done) and end (the root cause: errors are
// wrapped outside in).
func shorten(s string) string {
	if len(s) > 200 {
		return s[:70] + " … " + s[len(s)-120:]
	}
	return s
}

// waitLocalTask waits for the task of type typ of the local driver (the agent's) that the Backup
// or Restore named owner made, polling often: a small volume's copy takes well under a second.
func (cp *campaign) waitLocalTask(ctx context.Context, t *testing.T, typ storkv1.VolumeTaskType, owner string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var list storkv1.VolumeTaskList
		if err := cp.c.Client.List(ctx, &list); err != nil {
			t.Fatal(err)
		}
		for _, tk := range list.Items {
			if tk.Spec.Type == typ && tk.Spec.Driver == agent.DriverName && len(tk.OwnerReferences) > 0 && tk.OwnerReferences[0].Name == owner {
				if tk.Status.Phase == storkv1.TaskSucceeded {
					t.Logf("task %s/%s had succeeded before the fault: it hits the rest of the %s", tk.Namespace, tk.Name, owner)
				}
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no local %s task of %s within 2 minutes", typ, owner)
}

// restartMinIO kills MinIO while the upload or download runs (paused first, so that requests
// are in flight) and starts it again 3s later on the same data.
func restartMinIO(ctx context.Context, t *testing.T, cp *campaign) func() {
	pauseMinIO(t, cp.m)
	time.Sleep(500 * time.Millisecond)
	if err := cp.m.Restart(ctx, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	return nil
}

// readOnlyBucket takes write access away from Stork's MinIO user mid-upload; while it lasts, the
// baseline must still restore (reading needs no writes). The undo gives write access back.
func readOnlyBucket(ctx context.Context, t *testing.T, cp *campaign) func() {
	cp.setBucketPolicy(ctx, t, "stork-read")
	return func() {
		rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: harness.StorkNamespace, Name: fmt.Sprintf("ro-%02d", cp.n)},
			Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{BackupName: "base", Namespace: "app"},
				NamespaceMapping: map[string]string{"app": fmt.Sprintf("ro-%02d", cp.n)}}}
		mustCreate(t, cp.c, rs)
		if p := cp.waitRestoreFinal(ctx, rs); p != storkv1.RestoreCompleted {
			t.Errorf("restoring the baseline from the read-only bucket: %s %+v", p, rs.Status.Conditions)
		} else {
			for _, p := range cp.compare(ctx, rs.Name, map[string]string{"data": "data", "cdata": "cdata"}, cp.baselineSums) {
				t.Error(p)
			}
		}
		cp.setBucketPolicy(ctx, t, "readwrite")
	}
}

// restartAPIServer kills kube-apiserver mid-upload or mid-download and starts it again 3s later.
func restartAPIServer(ctx context.Context, t *testing.T, cp *campaign) func() {
	if err := cp.c.RestartAPIServer(ctx, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	return nil
}

// fillDisk fills the node's storage root (a tmpfs of its own) while the download waits on a
// paused MinIO, then lets MinIO run: the download meets a full disk. The undo frees the space.
func fillDisk(ctx context.Context, t *testing.T, cp *campaign) func() {
	if !cp.rootMounted {
		t.Skip("not root: the node's storage root is not a tmpfs of its own, and filling this machine's disk is not done")
	}
	resume := pauseMinIO(t, cp.m)
	defer resume()
	filler := filepath.Join(cp.c.NodeRoot(cp.node), "filler")
	// dd stops at ENOSPC: the file takes every free block.
	out, _ := exec.CommandContext(ctx, "dd", "if=/dev/zero", "of="+filler, "bs=1M").CombinedOutput()
	if !strings.Contains(string(out), "No space left") {
		t.Fatalf("filling %s: %s", filler, out)
	}
	return func() {
		if err := os.Remove(filler); err != nil {
			t.Error(err)
		}
	}
}

// report is docs/reliability.md: a row per fault, its runs counted by how they ended.
func (cp *campaign) report(full bool, rounds int) string {
	var b strings.Builder
	form := "the short form (`make test`)"
	if full {
		form = "every fault (`make faults`)"
	}
	fmt.Fprintf(&b, `# Reliability: the fault campaign

Generated by `+"`make faults`"+` (e2e TestFaults, STORK_FAULTS=full, STORK_FAULTS_ROUNDS=%d) on %s:
%s, %d round(s). Do not edit by hand; run the command again.

Each fault is injected into a backup or a restore of namespace app, whose claims are a local volume
(copied by the node's stork-agent) and a CSI volume (copied by mover pods), on a real control plane
(etcd, kube-apiserver, kube-scheduler, kube-controller-manager) and a real MinIO. A kill is SIGKILL
at a named point of the work (internal/crashpoint: the process kills itself there, so the instant
is the same every run); the killed controller or agent is then started again, as its Deployment or
DaemonSet would, and a killed mover pod is replaced by the driver's next attempt. After each fault
the campaign checks that the work ended (Completed, or failed with a reason) within five minutes;
that a Completed backup restores to exactly the captured data and a Completed restore holds exactly
the backed-up data (tree checksums of content, modes, owners, times); that a failed backup left no
record in the bucket; that the baseline backup and every backup completed before still have their
records in the bucket; and that no orphan is left (a VolumeTask still running or of a gone owner,
an access Secret, a mover pod, a CSI temporary claim, an agent work directory, a node snapshot of
no Snapshot, a PersistentVolume without its claim).

The points: snapshot/* and backup/* in the controller (backup/controllers), restore/* in the
controller (restore), started/TYPE and finishing/TYPE when a task is marked Running and just before
its result is written (drivers/taskstatus), pack-stored right after the first pack of an upload
is in the bucket (backup/engine/repo), restore-midway once half the bytes of a download are
written (backup/engine/archive).

| Fault | Operation | Count | Outcome | Nothing lost, no orphans | Median time |
|---|---|---|---|---|---|
`, rounds, time.Now().UTC().Format("2006-01-02"), form, rounds)
	type row struct {
		fault    fault
		runs     int
		outcomes map[string]int
		order    []string
		problems []string
		took     []time.Duration
		detail   string
	}
	var rows []*row
	byName := map[string]*row{}
	survived := 0
	for _, r := range cp.results {
		key := r.fault.op + " " + r.fault.String()
		w := byName[key]
		if w == nil {
			w = &row{fault: r.fault, outcomes: map[string]int{}}
			byName[key] = w
			rows = append(rows, w)
		}
		w.runs++
		if w.outcomes[r.outcome] == 0 {
			w.order = append(w.order, r.outcome)
		}
		w.outcomes[r.outcome]++
		w.took = append(w.took, r.took)
		w.problems = append(w.problems, r.problems...)
		if r.detail != "" && w.detail == "" {
			w.detail = r.detail
		}
		if len(r.problems) == 0 {
			survived++
		}
	}
	cell := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", "/"), "\n", " ") }
	for _, w := range rows {
		var outs []string
		for _, o := range w.order {
			outs = append(outs, fmt.Sprintf("%s (%d)", o, w.outcomes[o]))
		}
		if w.detail != "" {
			outs = append(outs, "e.g. _"+w.detail+"_")
		}
		check := fmt.Sprintf("yes (%d of %d)", w.runs, w.runs)
		if len(w.problems) > 0 {
			check = "**no**: " + strings.Join(w.problems, "; ")
		}
		slices.Sort(w.took)
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s |\n", cell(w.fault.String()), w.fault.op, w.runs,
			cell(strings.Join(outs, "; ")), cell(check), w.took[len(w.took)/2].Round(time.Second))
	}
	fmt.Fprintf(&b, "\n%d of %d runs (%d faults) ended cleanly with nothing lost and no orphans.\n", survived, len(cp.results), len(rows))
	return b.String()
}
