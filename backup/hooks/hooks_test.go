package hooks

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilexec "k8s.io/client-go/util/exec"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// fakeExec records calls and answers from a table keyed by pod name.
type fakeExec struct {
	mu    sync.Mutex
	calls []string
	reply map[string]func(ctx context.Context) ([]byte, []byte, error)
}

func (f *fakeExec) Exec(ctx context.Context, ns, pod, container string, cmd []string) ([]byte, []byte, error) {
	f.mu.Lock()
	f.calls = append(f.calls, ns+"/"+pod+"/"+container+":"+strings.Join(cmd, " "))
	r := f.reply[pod]
	f.mu.Unlock()
	if r == nil {
		return []byte("ok\n"), nil, nil
	}
	return r(ctx)
}

func pod(name, phase string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name, Labels: map[string]string{"app": "db"}},
		Status: corev1.PodStatus{Phase: corev1.PodPhase(phase)}}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: c})
	}
	return p
}

func TestRunner(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	hook := storkv1.Hook{Name: "freeze", PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
		Command: []string{"sync"}, Timeout: &metav1.Duration{Duration: 200 * time.Millisecond}}
	exitErr := utilexec.CodeExitError{Err: errors.New("exit 3"), Code: 3}
	cases := []struct {
		name      string
		pods      []client.Object
		container string
		reply     map[string]func(context.Context) ([]byte, []byte, error)
		wantCalls []string
		want      []string // per result: pod, ok|fail, message fragment
	}{
		{name: "no running pod matches", pods: []client.Object{pod("db-0", "Pending", "db")},
			want: []string{"|ok|no running pod"}},
		{name: "only running pods, first container by default", pods: []client.Object{pod("db-1", "Running", "db", "sidecar"), pod("db-0", "Running", "db"), pod("db-2", "Pending", "db")},
			wantCalls: []string{"app/db-0/db:sync", "app/db-1/db:sync"}, want: []string{"db-0|ok|ok", "db-1|ok|ok"}},
		{name: "named container missing", pods: []client.Object{pod("db-0", "Running", "db")}, container: "sidecar",
			want: []string{"db-0|fail|no container \"sidecar\""}},
		{name: "non-zero exit", pods: []client.Object{pod("db-0", "Running", "db")},
			reply: map[string]func(context.Context) ([]byte, []byte, error){"db-0": func(context.Context) ([]byte, []byte, error) {
				return nil, []byte("disk busy\n"), exitErr
			}},
			want: []string{"db-0|fail|exited with status 3: disk busy"}},
		{name: "transport error", pods: []client.Object{pod("db-0", "Running", "db")},
			reply: map[string]func(context.Context) ([]byte, []byte, error){"db-0": func(context.Context) ([]byte, []byte, error) {
				return nil, nil, errors.New("error dialing backend: connection refused")
			}},
			want: []string{"db-0|fail|error dialing backend"}},
		{name: "timeout", pods: []client.Object{pod("db-0", "Running", "db")},
			reply: map[string]func(context.Context) ([]byte, []byte, error){"db-0": func(ctx context.Context) ([]byte, []byte, error) {
				<-ctx.Done()
				return nil, nil, ctx.Err()
			}},
			want: []string{"db-0|fail|timed out after 200ms"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ex := &fakeExec{reply: tc.reply}
			r := &Runner{Client: fake.NewClientBuilder().WithScheme(scheme).WithObjects(tc.pods...).Build(), Exec: ex}
			h := hook
			h.Container = tc.container
			results := r.Run(context.Background(), "app", h, storkv1.HookPre)
			if len(results) != len(tc.want) {
				t.Fatalf("results %+v, want %d", results, len(tc.want))
			}
			for i, w := range tc.want {
				parts := strings.SplitN(w, "|", 3)
				got := results[i]
				if got.Pod != parts[0] || got.Succeeded != (parts[1] == "ok") || !strings.Contains(got.Message, parts[2]) ||
					got.Name != "freeze" || got.Stage != storkv1.HookPre || got.Time.IsZero() {
					t.Errorf("result %d = %+v, want %s", i, got, w)
				}
			}
			if tc.wantCalls != nil && strings.Join(ex.calls, ",") != strings.Join(tc.wantCalls, ",") {
				t.Errorf("calls %v, want %v", ex.calls, tc.wantCalls)
			}
		})
	}
}

func TestFailed(t *testing.T) {
	bad := []storkv1.HookResult{{Succeeded: true}, {Succeeded: false}}
	good := []storkv1.HookResult{{Succeeded: true}}
	for _, tc := range []struct {
		policy  storkv1.HookErrorPolicy
		results []storkv1.HookResult
		want    bool
	}{
		{storkv1.HookFail, bad, true},
		{"", bad, true}, // the default is Fail
		{storkv1.HookContinue, bad, false},
		{storkv1.HookFail, good, false},
	} {
		if got := Failed(storkv1.Hook{OnError: tc.policy}, tc.results); got != tc.want {
			t.Errorf("Failed(%q, %v) = %v, want %v", tc.policy, tc.results, got, tc.want)
		}
	}
}

func TestMessagesAreBounded(t *testing.T) {
	long := strings.Repeat("x", 5000)
	if got := truncate(long); len(got) > maxMessage+4 {
		t.Errorf("truncate kept %d bytes", len(got))
	}
	if got := lastLine([]byte("a\nb\nlast\n")); got != "last" {
		t.Errorf("lastLine = %q", got)
	}
}
