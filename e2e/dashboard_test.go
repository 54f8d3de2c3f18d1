package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/internal/certs"
	"stork.dev/stork/internal/harness"
	"stork.dev/stork/internal/units"
)

// chromium is Debian's Chromium, which hack/node-deps.sh installs for `make test`.
const chromium = "/usr/bin/chromium"

// dashboardArgs turn the controller's dashboard on at a free loopback port, with its certificate
// in a directory of the test's; it returns the arguments and the dashboard's address.
func dashboardArgs(t *testing.T, env *harness.Env) ([]string, string) {
	t.Helper()
	port, err := env.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// In the harness's directory, which outlives the controller (a t.TempDir would be removed
	// before the controller stops).
	return []string{"--dashboard-bind-address=" + addr, "--dashboard-cert-dir=" + filepath.Join(env.Root, fmt.Sprintf("dashboard-certs-%d", port))}, addr
}

// checkDashboard opens the controller's dashboard in headless Chromium, as three users made
// here: a viewer bound to a Role that lists Stork's objects in namespace app, an outsider with
// no permissions, and nobody (a forged token). The viewer's pages must show what the API holds
// (the schedule's objectives and conditions, every Backup with its size, the plots' values,
// every drill run with its result and RTO) and nothing of namespace hidden; the outsider sees
// no application and gets "not found" for app/db; the forged token stays on the sign-in page.
// The dashboard's certificate must verify against the CA in Secret stork-dashboard-certs.
func checkDashboard(ctx context.Context, t *testing.T, c *harness.Cluster, addr string) {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s: %v (hack/node-deps.sh installs Debian's chromium; make test runs it)", chromium, err)
	}
	checkDashboardTLS(ctx, t, c, addr)

	// A second application, in a namespace the viewer may not read.
	mustCreate(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "hidden"}})
	mustCreate(t, c, &storkv1.SnapshotSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: "hidden", Name: "secret-app"},
		Spec: storkv1.SnapshotScheduleSpec{Schedule: "@daily", Suspend: true,
			Template: storkv1.SnapshotTemplate{Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "data"}}}}})
	viewer := userToken(ctx, t, c, "app", "dashboard-viewer", true)
	outsider := userToken(ctx, t, c, "app", "dashboard-outsider", false)

	// What the API says, to compare the pages with.
	sched := &storkv1.SnapshotSchedule{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: "db"}, sched); err != nil {
		t.Fatal(err)
	}
	var backups storkv1.BackupList
	if err := c.Client.List(ctx, &backups, client.InNamespace("app"), client.MatchingLabels{storkv1.LabelScheduleUID: string(sched.UID)}); err != nil {
		t.Fatal(err)
	}
	var drills storkv1.RestoreDrillList
	if err := c.Client.List(ctx, &drills, client.InNamespace("app")); err != nil {
		t.Fatal(err)
	}

	browser := newBrowser(ctx, t)
	base := "https://" + addr

	// Viewer: signs in, sees app/db as the API has it and not hidden/secret-app.
	tab := browserTab(t, browser)
	signIn(t, tab, base, viewer)
	row := `tr[data-app="app/db"] `
	if got, want := text(t, tab, "#user"), "system:serviceaccount:app:dashboard-viewer"; got != want {
		t.Errorf("signed in as %q, want %q", got, want)
	}
	for sel, want := range map[string]string{
		row + ".rpo":         sched.Spec.Objectives.RPO.Duration.String(),
		row + ".rto":         sched.Spec.Objectives.RTO.Duration.String(),
		row + ".last-backup": sched.Status.Protection.LastBackupName,
		row + ".rpo-met":     badgeText(sched.Status.Conditions, storkv1.ConditionRPOMet),
		row + ".rto-met":     badgeText(sched.Status.Conditions, storkv1.ConditionRTOMet),
	} {
		if got := text(t, tab, sel); got != want {
			t.Errorf("overview %s: %q, the API has %q", sel, got, want)
		}
	}
	if n := count(t, tab, `tr[data-app^="hidden/"]`); n != 0 {
		t.Errorf("the viewer sees %d applications of namespace hidden", n)
	}

	// The application's page: one row per Backup with the API's size, and plot bars carrying
	// the same numbers; each drill's newest run with its result and RTO.
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/apps/app/db"), chromedp.WaitVisible(chromedp.CSS("#backups"))); err != nil {
		t.Fatalf("opening the application page: %v", err)
	}
	if n := count(t, tab, "#backups tbody tr"); n != len(backups.Items) {
		t.Errorf("the page lists %d backups, the API has %d", n, len(backups.Items))
	}
	for _, b := range backups.Items {
		if got, want := text(t, tab, fmt.Sprintf(`tr[data-backup=%q] .size`, b.Name)), units.Bytes(b.Status.Progress.BytesTotal); got != want {
			t.Errorf("backup %s: size %q on the page, %s in the API", b.Name, got, want)
		}
		bar, err := chromedp.Run(tab, chromedp.AttributeValue(chromedp.CSS(fmt.Sprintf(`rect[data-backup=%q]`, b.Name)), "data-value"))
		if want := strconv.FormatInt(b.Status.Progress.BytesTotal, 10); err != nil || bar.Value != want {
			t.Errorf("backup %s: size plot bar %q (%v), the API has %s bytes", b.Name, bar.Value, err, want)
		}
	}
	for _, d := range drills.Items {
		if len(d.Status.History) == 0 {
			t.Fatalf("RestoreDrill %s has no finished run", d.Name)
		}
		run, sel := d.Status.History[0], fmt.Sprintf(`#drills tr[data-drill="app/%s"] `, d.Name)
		if got := text(t, tab, sel+".result"); !strings.HasPrefix(got, string(run.Result)) {
			t.Errorf("drill %s: result %q on the page, %s in the API", d.Name, got, run.Result)
		}
		if got := text(t, tab, sel+".rto"); run.RTO != nil && got != run.RTO.Duration.Round(time.Millisecond).String() {
			t.Errorf("drill %s: RTO %q on the page, %s in the API", d.Name, got, run.RTO.Duration)
		}
	}

	// Outsider: a valid token that may list nothing.
	tab = browserTab(t, browser)
	signIn(t, tab, base, outsider)
	if err := chromedp.Do(tab, chromedp.WaitVisible(chromedp.CSS("#no-apps"))); err != nil {
		t.Fatalf("the outsider's overview: %v", err)
	}
	if n := count(t, tab, "tr[data-app]"); n != 0 {
		t.Errorf("the outsider sees %d applications", n)
	}
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/apps/app/db")); err != nil {
		t.Fatal(err)
	}
	if got := text(t, tab, "#error"); !strings.Contains(got, "no such application") {
		t.Errorf("the outsider's page for app/db: %q", got)
	}

	// Nobody: a forged token is refused and nothing is shown.
	tab = browserTab(t, browser)
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/"), chromedp.SetValue(chromedp.CSS("#token"), "forged.token.value"),
		chromedp.Submit(chromedp.CSS("#login"))); err != nil {
		t.Fatalf("signing in with a forged token: %v", err)
	}
	if got := text(t, tab, "#error"); !strings.Contains(got, "did not accept this token") {
		t.Errorf("a forged token: %q", got)
	}
	t.Logf("dashboard in %s: the viewer's pages matched the API (schedule app/db, %d backups with sizes and plot bars, %d drills); the outsider saw no application; a forged token was refused",
		chromium, len(backups.Items), len(drills.Items))
}

// text is the text of the first element sel selects, waiting for it.
func text(t *testing.T, tab context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("reading %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// count is how many elements sel selects now.
func count(t *testing.T, tab context.Context, sel string) int {
	t.Helper()
	nodes, err := chromedp.Run(tab, chromedp.Nodes(chromedp.CSSAll(sel), chromedp.AtLeast(0)))
	if err != nil {
		t.Fatalf("selecting %s: %v", sel, err)
	}
	return len(nodes)
}

// checkDashboardTLS: the dashboard's serving certificate verifies, for its Service's name,
// against the CA the controller keeps in Secret stork-dashboard-certs.
func checkDashboardTLS(ctx context.Context, t *testing.T, c *harness.Cluster, addr string) {
	t.Helper()
	sec := &corev1.Secret{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: harness.StorkNamespace, Name: "stork-dashboard-certs"}, sec); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(sec.Data[certs.KeyCACert]) {
		t.Fatal("Secret stork-dashboard-certs holds no CA certificate")
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool,
		ServerName: "stork-dashboard." + harness.StorkNamespace + ".svc"}}}
	resp, err := hc.Get("https://" + addr + "/login")
	if err != nil {
		t.Fatalf("the dashboard's certificate against its CA: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /login: %s", resp.Status)
	}
}

// userToken makes a ServiceAccount in ns and returns a token of it (TokenRequest); canRead binds
// it to a Role that may list Stork's objects in ns.
func userToken(ctx context.Context, t *testing.T, c *harness.Cluster, ns, name string, canRead bool) string {
	t.Helper()
	mustCreate(t, c, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
	if canRead {
		mustCreate(t, c, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{storkv1.GroupVersion.Group}, Verbs: []string{"get", "list", "watch"},
				Resources: []string{"snapshotschedules", "backups", "restores", "restoredrills", "backuplocations"}}}})
		mustCreate(t, c, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}}})
	}
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("making a token for service account %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
}

// newBrowser starts headless Chromium with a fresh profile and without the background
// connections this machine's closed network refuses; the dashboard's certificate comes from a
// private CA (checkDashboardTLS verifies it), so the browser is told not to check it.
func newBrowser(ctx context.Context, t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.IgnoreCertErrors, chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true))
	actx, cancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancel)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	return bctx
}

// browserTab opens a tab in a new browser context (its own cookies), with a time limit.
func browserTab(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	tab, cancelTimeout := context.WithTimeout(tab, time.Minute)
	t.Cleanup(cancelTimeout)
	return tab
}

// signIn opens the dashboard, is sent to the sign-in page, signs in with token and waits for
// the overview.
func signIn(t *testing.T, tab context.Context, base, token string) {
	t.Helper()
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#token"))); err != nil {
		t.Fatalf("opening the dashboard: %v", err)
	}
	if loc, err := chromedp.Run(tab, chromedp.Location()); err != nil || !strings.HasSuffix(loc, "/login") {
		t.Errorf("without a token the dashboard showed %s (%v), want the sign-in page", loc, err)
	}
	if err := chromedp.Do(tab, chromedp.SetValue(chromedp.CSS("#token"), token), chromedp.Submit(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#user"))); err != nil {
		t.Fatalf("signing in: %v", err)
	}
}

// badgeText is what the dashboard writes for a condition (dashboard.condition).
func badgeText(conds []metav1.Condition, typ string) string {
	for _, c := range conds {
		if c.Type != typ {
			continue
		}
		switch c.Status {
		case metav1.ConditionTrue:
			return "yes"
		case metav1.ConditionFalse:
			return "NO (" + c.Reason + ")"
		default:
			return "unknown (" + c.Reason + ")"
		}
	}
	return "-"
}
