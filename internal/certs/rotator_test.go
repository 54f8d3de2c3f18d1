package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

const (
	testNS     = "stork-system"
	testSecret = "stork-webhook-certs"
	testConfig = "stork-pods"
	testDNS    = "stork-webhook.stork-system.svc"
)

var (
	day   = 24 * time.Hour
	epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
)

func testScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	return s
}

func webhookConfig() *admissionregistrationv1.MutatingWebhookConfiguration {
	hook := func(name string) admissionregistrationv1.MutatingWebhook {
		return admissionregistrationv1.MutatingWebhook{Name: name, ClientConfig: admissionregistrationv1.WebhookClientConfig{
			Service: &admissionregistrationv1.ServiceReference{Namespace: testNS, Name: "stork-webhook"}}}
	}
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: testConfig},
		Webhooks:   []admissionregistrationv1.MutatingWebhook{hook("pods.stork.dev"), hook("other.stork.dev")},
	}
}

// clock is a settable Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// logSink collects every log line, to check that none has key material.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, prefix+" "+args)
	}, funcr.Options{Verbosity: 10})
}

func (l *logSink) check(t *testing.T, secrets ...[]byte) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, "PRIVATE KEY") {
			t.Errorf("log line with key material: %s", line)
		}
		for _, s := range secrets {
			if len(s) > 0 && strings.Contains(line, strings.TrimSpace(string(s))) {
				t.Errorf("log line with key material: %s", line)
			}
		}
	}
}

func newRotator(t *testing.T, c client.Client, clk *clock, log logr.Logger) *Rotator {
	return &Rotator{
		Client: c, Reader: c,
		SecretNamespace: testNS, SecretName: testSecret,
		DNSNames:       []string{testDNS},
		CertDir:        filepath.Join(t.TempDir(), "certs"),
		WebhookConfigs: []string{testConfig},
		Now:            clk.Now,
		Log:            log,
	}
}

// observed is everything a round writes.
type observed struct {
	secret *corev1.Secret
	config *admissionregistrationv1.MutatingWebhookConfiguration
	files  map[string][]byte
}

func observe(t *testing.T, c client.Client, r *Rotator) observed {
	t.Helper()
	ctx := context.Background()
	o := observed{secret: &corev1.Secret{}, config: &admissionregistrationv1.MutatingWebhookConfiguration{}, files: map[string][]byte{}}
	if err := c.Get(ctx, client.ObjectKey{Namespace: testNS, Name: testSecret}, o.secret); err != nil {
		t.Fatalf("reading the Secret: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: testConfig}, o.config); err != nil {
		if !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		o.config = nil
	}
	for _, name := range []string{KeyTLSCert, KeyTLSKey} {
		b, err := os.ReadFile(filepath.Join(r.CertDir, name))
		if err != nil {
			t.Fatalf("reading the served file: %v", err)
		}
		o.files[name] = b
	}
	return o
}

// consistent checks what every round must leave: files = Secret, caBundles = ca.crt, and the
// served certificate verifies for the DNS name against the bundle at now.
func (o observed) consistent(t *testing.T, now time.Time) (served *x509.Certificate, bundle []*x509.Certificate) {
	t.Helper()
	for _, k := range []string{KeyCACert, KeyCAKey, KeyTLSCert, KeyTLSKey} {
		if len(o.secret.Data[k]) == 0 {
			t.Fatalf("Secret has no %s", k)
		}
	}
	for name, b := range o.files {
		if !bytes.Equal(b, o.secret.Data[name]) {
			t.Errorf("file %s differs from the Secret", name)
		}
	}
	if o.config != nil {
		for _, w := range o.config.Webhooks {
			if !bytes.Equal(w.ClientConfig.CABundle, o.secret.Data[KeyCACert]) {
				t.Errorf("webhook %s: caBundle differs from the Secret's ca.crt", w.Name)
			}
		}
	}
	pair, err := tls.X509KeyPair(o.files[KeyTLSCert], o.files[KeyTLSKey])
	if err != nil {
		t.Fatalf("served files are not a key pair: %v", err)
	}
	served, err = x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	bundle = parseCerts(o.secret.Data[KeyCACert])
	if _, err := served.Verify(verifyOpts(bundle, now)); err != nil {
		t.Errorf("served certificate does not verify for %s against the bundle: %v", testDNS, err)
	}
	return served, bundle
}

func verifyOpts(bundle []*x509.Certificate, now time.Time) x509.VerifyOptions {
	pool := x509.NewCertPool()
	for _, c := range bundle {
		pool.AddCert(c)
	}
	return x509.VerifyOptions{Roots: pool, DNSName: testDNS, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
}

func TestFirstEnsureCreatesEverything(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(testScheme()).WithObjects(webhookConfig()).Build()
	clk := &clock{t: epoch}
	var logs logSink
	r := newRotator(t, c, clk, logs.logger())
	if r.Ready(nil) == nil {
		t.Fatal("Ready before the first Ensure")
	}
	if err := r.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Ready(nil); err != nil {
		t.Fatalf("Ready after Ensure: %v", err)
	}
	o := observe(t, c, r)
	if o.secret.Type != corev1.SecretTypeTLS {
		t.Errorf("Secret type %q, want %q", o.secret.Type, corev1.SecretTypeTLS)
	}
	served, bundle := o.consistent(t, epoch)
	if len(bundle) != 1 || !bundle[0].IsCA {
		t.Fatalf("bundle has %d certificates, want one CA", len(bundle))
	}
	if cn, want := bundle[0].Subject.CommonName, fmt.Sprintf("stork-webhook-ca@%d", epoch.Unix()); cn != want {
		t.Errorf("CA named %q, want %q (after Secret %s)", cn, want, testSecret)
	}
	if got, want := bundle[0].NotAfter, epoch.Add(DefaultCAValidity); !got.Equal(want) {
		t.Errorf("CA valid until %v, want %v", got, want)
	}
	if got, want := served.NotAfter, epoch.Add(DefaultCertValidity); !got.Equal(want) {
		t.Errorf("serving certificate valid until %v, want %v", got, want)
	}
	fi, err := os.Stat(filepath.Join(r.CertDir, KeyTLSKey))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	logs.check(t, o.secret.Data[KeyCAKey], o.secret.Data[KeyTLSKey])
}

func TestSecondEnsureChangesNothing(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(testScheme()).WithObjects(webhookConfig()).Build()
	clk := &clock{t: epoch}
	r := newRotator(t, c, clk, logr.Discard())
	ctx := context.Background()
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	before := observe(t, c, r)
	info := func() os.FileInfo {
		fi, err := os.Stat(filepath.Join(r.CertDir, KeyTLSCert))
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	fiBefore := info()
	clk.Set(epoch.Add(time.Hour))
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	after := observe(t, c, r)
	if before.secret.ResourceVersion != after.secret.ResourceVersion {
		t.Error("second Ensure wrote the Secret")
	}
	if before.config.ResourceVersion != after.config.ResourceVersion {
		t.Error("second Ensure wrote the webhook configuration")
	}
	for k, v := range before.secret.Data {
		if !bytes.Equal(v, after.secret.Data[k]) {
			t.Errorf("%s changed", k)
		}
	}
	if !os.SameFile(fiBefore, info()) {
		t.Error("second Ensure rewrote tls.crt")
	}
}

// step is one round of a timeline: the day it runs and what it should have done.
type step struct {
	day          float64
	newCA        bool
	newServing   bool
	bundle       int
	signedByPrev bool // the served certificate chains to the previous CA, not the current one
}

func TestRotation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{
			// Past the CA's refresh point with an expired serving certificate: both renew,
			// the bundle keeps the old CA and the new serving certificate is the new CA's.
			name: "jump past the CA refresh",
			steps: []step{
				{day: 0, newCA: true, newServing: true, bundle: 1},
				{day: 250, newCA: true, newServing: true, bundle: 2},
			},
		},
		{
			name: "a year of hourly rounds, sampled",
			steps: []step{
				{day: 0, newCA: true, newServing: true, bundle: 1},
				{day: 30, bundle: 1},
				// 90-day certificate, renewed with a third (30 days) left.
				{day: 61, newServing: true, bundle: 1},
				{day: 90, bundle: 1},
				{day: 122, newServing: true, bundle: 1},
				{day: 200, newServing: true, bundle: 1},
				// The CA is renewed with a third of its year left; the serving certificate
				// issued on day 200 is not due and still chains to the old CA, which stays in
				// the bundle.
				{day: 250, newCA: true, bundle: 2, signedByPrev: true},
				// The next serving certificate is the new CA's.
				{day: 265, newServing: true, bundle: 2},
				{day: 330, newServing: true, bundle: 2},
				// The old CA expired: out of the bundle.
				{day: 366, bundle: 1},
				{day: 380, bundle: 1},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(testScheme()).WithObjects(webhookConfig()).Build()
			clk := &clock{t: epoch}
			var logs logSink
			r := newRotator(t, c, clk, logs.logger())
			var prevCA, prevServed *x509.Certificate
			var keys [][]byte
			for _, s := range tc.steps {
				now := epoch.Add(time.Duration(s.day * float64(day)))
				clk.Set(now)
				if err := r.Ensure(context.Background()); err != nil {
					t.Fatalf("day %v: %v", s.day, err)
				}
				o := observe(t, c, r)
				served, bundle := o.consistent(t, now)
				keys = append(keys, o.secret.Data[KeyCAKey], o.secret.Data[KeyTLSKey])
				ca := bundle[0]
				if got := prevCA == nil || !prevCA.Equal(ca); got != s.newCA {
					t.Errorf("day %v: new CA %v, want %v", s.day, got, s.newCA)
				}
				if got := prevServed == nil || !prevServed.Equal(served); got != s.newServing {
					t.Errorf("day %v: new serving certificate %v, want %v", s.day, got, s.newServing)
				}
				if len(bundle) != s.bundle {
					t.Errorf("day %v: bundle of %d CAs, want %d", s.day, len(bundle), s.bundle)
				}
				wantIssuer := ca
				if s.signedByPrev && len(bundle) > 1 {
					wantIssuer = bundle[1]
				}
				if err := served.CheckSignatureFrom(wantIssuer); err != nil {
					t.Errorf("day %v: served certificate not signed by the expected CA: %v", s.day, err)
				}
				// Rotation never breaks a replica still serving the previous certificate.
				if prevServed != nil && now.Before(prevServed.NotAfter) {
					if _, err := prevServed.Verify(verifyOpts(bundle, now)); err != nil {
						t.Errorf("day %v: the previous serving certificate no longer verifies: %v", s.day, err)
					}
				}
				prevCA, prevServed = ca, served
			}
			logs.check(t, keys...)
		})
	}
}

func TestNamesChangedRenewsServingOnly(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(testScheme()).WithObjects(webhookConfig()).Build()
	clk := &clock{t: epoch}
	r := newRotator(t, c, clk, logr.Discard())
	ctx := context.Background()
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	before := observe(t, c, r)
	r.DNSNames = append(r.DNSNames, "stork-webhook.stork-system.svc.cluster.local")
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	after := observe(t, c, r)
	served, _ := after.consistent(t, epoch)
	if !bytes.Equal(before.secret.Data[KeyCACert], after.secret.Data[KeyCACert]) {
		t.Error("the CA changed with the names")
	}
	if bytes.Equal(before.secret.Data[KeyTLSCert], after.secret.Data[KeyTLSCert]) {
		t.Fatal("the serving certificate was not renewed")
	}
	if !sameNames(served, r.DNSNames, nil) {
		t.Errorf("serving certificate names %v, want %v", served.DNSNames, r.DNSNames)
	}
}

func TestMissingWebhookConfigurationIsNotFatal(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(testScheme()).Build()
	clk := &clock{t: epoch}
	r := newRotator(t, c, clk, logr.Discard())
	ctx := context.Background()
	pending, err := r.ensure(ctx)
	if err != nil {
		t.Fatalf("missing configuration: %v", err)
	}
	if !pending {
		t.Error("a missing configuration should make the round pending, to be retried soon")
	}
	if err := r.Ready(nil); err != nil {
		t.Errorf("files not written when the configuration is missing: %v", err)
	}
	// It appears: the next round fills it in.
	if err := c.Create(ctx, webhookConfig()); err != nil {
		t.Fatal(err)
	}
	if pending, err = r.ensure(ctx); err != nil || pending {
		t.Fatalf("second round: pending %v, error %v", pending, err)
	}
	observe(t, c, r).consistent(t, epoch)
}

func TestAdoptsExistingSecret(t *testing.T) {
	for _, tc := range []struct {
		name string
		data map[string][]byte
	}{
		{"empty Opaque", map[string][]byte{"other": []byte("kept")}},
		{"malformed keys", map[string][]byte{"other": []byte("kept"), KeyCACert: []byte("junk"), KeyCAKey: []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), KeyTLSCert: []byte("junk")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: testSecret}, Type: corev1.SecretTypeOpaque, Data: tc.data}
			c := fake.NewClientBuilder().WithScheme(testScheme()).WithObjects(webhookConfig(), sec).Build()
			r := newRotator(t, c, &clock{t: epoch}, logr.Discard())
			if err := r.Ensure(context.Background()); err != nil {
				t.Fatal(err)
			}
			o := observe(t, c, r)
			o.consistent(t, epoch)
			if o.secret.Type != corev1.SecretTypeOpaque {
				t.Errorf("Secret type changed to %q", o.secret.Type)
			}
			if string(o.secret.Data["other"]) != "kept" {
				t.Error("other data of the Secret lost")
			}
		})
	}
}

// Two replicas start at once: both find no Secret, one creates it, the other reads it again
// and uses it.
func TestCreateRace(t *testing.T) {
	var winner *Rotator
	secretGets := 0
	base := fake.NewClientBuilder().WithScheme(testScheme()).WithObjects(webhookConfig()).Build()
	c := interceptor.NewClient(base.(client.WithWatch), interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*corev1.Secret); ok {
				secretGets++
				if secretGets == 1 {
					// The other replica creates the Secret between this Get and the Create.
					if err := winner.Ensure(ctx); err != nil {
						return err
					}
					return apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, key.Name)
				}
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	clk := &clock{t: epoch}
	winner = newRotator(t, base, clk, logr.Discard())
	loser := newRotator(t, c, clk, logr.Discard())
	if err := loser.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	o := observe(t, base, loser)
	o.consistent(t, epoch)
	if w := observe(t, base, winner); !bytes.Equal(w.files[KeyTLSCert], o.files[KeyTLSCert]) {
		t.Error("the replicas serve different certificates")
	}
}

func TestErrorsNameTheObject(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{}, "", errors.New("no"))
	for _, tc := range []struct {
		name  string
		funcs interceptor.Funcs
		want  string
	}{
		{"creating the Secret", interceptor.Funcs{
			Create: func(context.Context, client.WithWatch, client.Object, ...client.CreateOption) error { return forbidden },
		}, "Secret stork-system/stork-webhook-certs"},
		{"reading the Secret", interceptor.Funcs{
			Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if _, ok := obj.(*corev1.Secret); ok {
					return forbidden
				}
				return c.Get(ctx, key, obj, opts...)
			},
		}, "Secret stork-system/stork-webhook-certs"},
		{"patching the configuration", interceptor.Funcs{
			Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
				if _, ok := obj.(*admissionregistrationv1.MutatingWebhookConfiguration); ok {
					return forbidden
				}
				return c.Patch(ctx, obj, p, opts...)
			},
		}, "MutatingWebhookConfiguration stork-pods"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := fake.NewClientBuilder().WithScheme(testScheme()).WithObjects(webhookConfig()).Build()
			c := interceptor.NewClient(base.(client.WithWatch), tc.funcs)
			r := newRotator(t, c, &clock{t: epoch}, logr.Discard())
			err := r.Ensure(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestStartRunsUntilCancelled(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(testScheme()).WithObjects(webhookConfig()).Build()
	r := newRotator(t, c, &clock{t: epoch}, logr.Discard())
	if r.NeedLeaderElection() {
		t.Error("every replica needs the certificates")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Start(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for r.Ready(nil) != nil {
		if time.Now().After(deadline) {
			t.Fatal("Start wrote no certificate")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Start: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Start did not return after cancel")
	}
}

func TestValidate(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(testScheme()).Build()
	for _, tc := range []struct {
		name   string
		modify func(*Rotator)
	}{
		{"no client", func(r *Rotator) { r.Client = nil }},
		{"no secret name", func(r *Rotator) { r.SecretName = "" }},
		{"no cert dir", func(r *Rotator) { r.CertDir = "" }},
		{"no names", func(r *Rotator) { r.DNSNames = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRotator(t, c, &clock{t: epoch}, logr.Discard())
			tc.modify(r)
			if err := r.Ensure(context.Background()); err == nil {
				t.Error("no error")
			}
		})
	}
}

// TestClientCertificate: with a ClientCommonName, the Secret also holds a client certificate of
// that name, for client authentication, verifying against the bundle that is written beside
// the serving files; it is kept while valid and renewed with the CA.
func TestClientCertificate(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(testScheme()).WithObjects(webhookConfig()).Build()
	clk := &clock{t: epoch}
	r := newRotator(t, c, clk, logr.Discard())
	r.ClientCommonName = "stork-scheduler"
	ctx := context.Background()
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	clientOf := func() *x509.Certificate {
		t.Helper()
		o := observe(t, c, r)
		pair, err := tls.X509KeyPair(o.secret.Data[KeyClientCert], o.secret.Data[KeyClientKey])
		if err != nil {
			t.Fatalf("client certificate and key: %v", err)
		}
		cert, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		caFile, err := os.ReadFile(filepath.Join(r.CertDir, KeyCACert))
		if err != nil || !bytes.Equal(caFile, o.secret.Data[KeyCACert]) {
			t.Fatalf("ca.crt in the certificate directory: %v (equal to the Secret's: %v)", err, bytes.Equal(caFile, o.secret.Data[KeyCACert]))
		}
		opts := verifyOpts(parseCerts(caFile), clk.t)
		opts.DNSName, opts.KeyUsages = "", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		if _, err := cert.Verify(opts); err != nil || cert.Subject.CommonName != "stork-scheduler" {
			t.Fatalf("client certificate %q does not verify for client auth: %v", cert.Subject.CommonName, err)
		}
		return cert
	}
	first := clientOf()
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if !clientOf().Equal(first) {
		t.Error("a second Ensure replaced a valid client certificate")
	}
	clk.t = epoch.Add(DefaultCAValidity * 2 / 3)
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if clientOf().Equal(first) {
		t.Error("the client certificate was kept past its renewal time")
	}
}
