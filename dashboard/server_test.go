package dashboard

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// reviews answers TokenReviews from tokens (token → user name) and SubjectAccessReviews from
// grants (user → namespaces where every listed kind is allowed; "" means cluster-wide), and
// counts the reviews.
type reviews struct {
	tokens       map[string]string
	grants       map[string][]string
	tokenReviews atomic.Int32
	sars         atomic.Int32
}

func (rv *reviews) clientset() *kubefake.Clientset {
	cs := kubefake.NewClientset()
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		rv.tokenReviews.Add(1)
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		if name, ok := rv.tokens[tr.Spec.Token]; ok {
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: name, UID: name + "-uid"}}
		}
		return true, tr, nil
	})
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		rv.sars.Add(1)
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		ra := sar.Spec.ResourceAttributes
		for _, ns := range rv.grants[sar.Spec.User] {
			if ra.Verb == "list" && ra.Group == storkv1.GroupVersion.Group && (ns == "" || ns == ra.Namespace) {
				sar.Status.Allowed = true
			}
		}
		return true, sar, nil
	})
	return cs
}

var now = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(d)); return &t }

// objects are two namespaces' applications: a/db with two backups (one in progress) and a
// failed drill, b/web with a location.
func objects() []client.Object {
	sched := func(ns, name, uid string) *storkv1.SnapshotSchedule {
		return &storkv1.SnapshotSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)},
			Spec: storkv1.SnapshotScheduleSpec{Schedule: "@hourly", Objectives: &storkv1.Objectives{RPO: &metav1.Duration{Duration: time.Hour}}},
			Status: storkv1.SnapshotScheduleStatus{
				Conditions: []metav1.Condition{{Type: storkv1.ConditionRPOMet, Status: metav1.ConditionFalse, Reason: "RPOMissed", Message: "newest backup is 2h old"}},
				Protection: &storkv1.Protection{LastBackupName: name + "-1", LastBackupCaptureTime: at(-2 * time.Hour)}}}
	}
	backup := func(name string, phase storkv1.BackupPhase, start, took time.Duration, bytes int64) *storkv1.Backup {
		b := &storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: name, Labels: map[string]string{storkv1.LabelScheduleUID: "uid-db"}},
			Status: storkv1.BackupStatus{Phase: phase, Progress: storkv1.Progress{BytesTotal: bytes, BytesDone: bytes / 2, ItemsTotal: 3}}}
		b.Status.StartTime = at(start)
		if took > 0 {
			b.Status.CompletionTime = at(start + took)
		}
		return b
	}
	return []client.Object{
		sched("a", "db", "uid-db"), sched("b", "web", "uid-web"),
		backup("db-1", storkv1.BackupCompleted, -3*time.Hour, 90*time.Second, 4<<20),
		backup("db-2", storkv1.BackupCompleted, -2*time.Hour, 30*time.Second, 1<<20),
		retrying(backup("db-3", storkv1.BackupInProgress, -time.Minute, 0, 8<<20)),
		&storkv1.RestoreDrill{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "nightly"}, Spec: storkv1.RestoreDrillSpec{ScheduleName: "db"},
			Status: storkv1.RestoreDrillStatus{History: []storkv1.DrillRun{{BackupName: "db-2", StartTime: *at(-time.Hour), CompletionTime: at(-50 * time.Minute),
				Result: storkv1.DrillFailed, Reason: "VerificationFailed", Message: "damaged object data/ab12"}}}},
		&storkv1.BackupLocation{ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "s3"}, Status: storkv1.BackupLocationStatus{
			Phase: storkv1.BackupLocationUnavailable, Backups: 7,
			Conditions: []metav1.Condition{{Type: storkv1.ConditionAvailable, Status: metav1.ConditionFalse, Reason: "AccessDenied", Message: "bucket refused the credentials"}}}},
	}
}

// retrying marks a Backup as retrying its record.
func retrying(b *storkv1.Backup) *storkv1.Backup {
	b.Status.Retry = &storkv1.Retry{Reason: "SavingRecord", Message: "the bucket refuses writes", Attempts: 3, Since: *at(-time.Minute), GiveUpTime: *at(14 * time.Minute)}
	return b
}

func newServer(t *testing.T, rv *reviews) *httptest.Server {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := storkv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	objs := objects()
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(objs...).Build()
	s := &Server{Reader: c, Auth: &Auth{Client: rv.clientset()}, Log: zap.New(zap.UseDevMode(true)), Now: func() time.Time { return now }}
	h, err := s.Handler()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// get fetches path with token as a bearer token (none when empty), following no redirects.
func get(t *testing.T, srv *httptest.Server, path, token string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func TestPagesShowOnlyWhatTheUserMayList(t *testing.T) {
	rv := &reviews{tokens: map[string]string{"t-alice": "alice", "t-admin": "admin", "t-nobody": "nobody"},
		grants: map[string][]string{"alice": {"a"}, "admin": {""}}}
	srv := newServer(t, rv)
	for _, tc := range []struct {
		name, path, token string
		status            int
		want, notWant     []string
	}{
		{name: "alice sees namespace a only", path: "/", token: "t-alice", status: http.StatusOK,
			want: []string{`data-app="a/db"`, `NO (RPOMissed)`, `data-work="Backup/a/db-3"`, `<progress max="100" value="50">`, `4.0 MiB`,
				`data-drill="a/nightly"`, `Failed (VerificationFailed)`,
				`SavingRecord failed 3 times (the bucket refuses writes); tried until 2026-12-06 12:14:00`, `title="damaged object data/ab12"`, `signed in as <b id="user">alice</b>`},
			notWant: []string{`data-app="b/web"`, `data-location="b/s3"`}},
		{name: "cluster-wide reader sees both", path: "/", token: "t-admin", status: http.StatusOK,
			want: []string{`data-app="a/db"`, `data-app="b/web"`, `data-location="b/s3"`, `title="bucket refused the credentials"`, `<td class="backups">7</td>`}},
		{name: "a user without grants sees nothing", path: "/", token: "t-nobody", status: http.StatusOK,
			want: []string{`id="no-apps"`, "Nothing running", "No restore drills yet", "No backup locations you may see"}, notWant: []string{"data-app=", "db-3"}},
		{name: "application page", path: "/apps/a/db", token: "t-alice", status: http.StatusOK,
			want: []string{`<tr data-backup="db-1">`, `<td class="duration">1m30s</td>`, `<td class="size">1.0 MiB</td>`,
				`data-backup="db-1" data-value="4194304"`, `data-backup="db-2" data-value="30"`, "Backup size", "Backup duration"}},
		{name: "another namespace's application is not found", path: "/apps/b/web", token: "t-alice", status: http.StatusNotFound,
			want: []string{"no such application, or you may not see it"}, notWant: []string{"web-1"}},
		{name: "a missing application is not found either", path: "/apps/a/nope", token: "t-alice", status: http.StatusNotFound},
		{name: "a bad token is refused", path: "/", token: "forged", status: http.StatusUnauthorized, notWant: []string{"data-app="}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, hdr := get(t, srv, tc.path, tc.token)
			if status != tc.status {
				t.Fatalf("status %d, want %d; body:\n%s", status, tc.status, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q; body:\n%s", w, body)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(body, w) {
					t.Errorf("page shows %q, which the user may not see", w)
				}
			}
			if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("Content-Security-Policy %q allows more than the pages need", csp)
			}
		})
	}
}

func TestPlotsRunOldestToNewest(t *testing.T) {
	srv := newServer(t, &reviews{tokens: map[string]string{"t": "u"}, grants: map[string][]string{"u": {""}}})
	_, body, _ := get(t, srv, "/apps/a/db", "t")
	// db-3 is still running: it has a size but no duration.
	bars := regexp.MustCompile(`<rect class="bar [a-z]*" x="([0-9.]+)" y="[0-9.]+" width="[0-9.]+" height="([0-9.]+)" data-backup="([a-z0-9-]+)"`).FindAllStringSubmatch(body, -1)
	var order []string
	for _, b := range bars {
		order = append(order, b[3])
	}
	if got, want := strings.Join(order, ","), "db-1,db-2,db-3,db-1,db-2"; got != want {
		t.Fatalf("bars %s, want %s (sizes oldest first, then durations of the finished backups)", got, want)
	}
	// The largest value fills the plot's height; db-1's size is half of db-3's.
	if bars[2][2] != "150" || bars[0][2] != "75" {
		t.Errorf("bar heights %s (db-3) and %s (db-1), want 150 and 75", bars[2][2], bars[0][2])
	}
}

func TestSignInSetsAStrictCookieAndRemembersTheReview(t *testing.T) {
	rv := &reviews{tokens: map[string]string{"good": "alice"}, grants: map[string][]string{"alice": {"a"}}}
	srv := newServer(t, rv)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	resp, err := noFollow.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("no token: %d to %q, want a redirect to /login", resp.StatusCode, resp.Header.Get("Location"))
	}

	resp, err = noFollow.PostForm(srv.URL+"/login", url.Values{"token": {"bad"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "did not accept this token") || len(resp.Cookies()) != 0 {
		t.Fatalf("bad token: %d, cookies %v, body %s", resp.StatusCode, resp.Cookies(), body)
	}

	resp, err = noFollow.PostForm(srv.URL+"/login", url.Values{"token": {" good\n"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != http.StatusSeeOther || len(cookies) != 1 {
		t.Fatalf("good token: %d, cookies %v", resp.StatusCode, cookies)
	}
	ck := cookies[0]
	if ck.Name != CookieName || ck.Value != "good" || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.MaxAge <= 0 {
		t.Fatalf("cookie %+v: want HttpOnly, SameSite=Strict, the token, an expiry", ck)
	}

	reviewsBefore := rv.tokenReviews.Load()
	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
		req.AddCookie(ck)
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `data-app="a/db"`) {
			t.Fatalf("with the cookie: %d\n%s", resp.StatusCode, body)
		}
	}
	if n := rv.tokenReviews.Load() - reviewsBefore; n != 0 {
		t.Errorf("%d more TokenReviews for three page loads within the TTL, want 0", n)
	}
	sars := rv.sars.Load()
	get(t, srv, "/", "good")
	if n := rv.sars.Load() - sars; n != 0 {
		t.Errorf("%d more SubjectAccessReviews for a page load within the TTL, want 0", n)
	}
}
