package placement

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"stork.dev/stork/internal/certs"
)

// TestServerRequiresTheSchedulersCertificate: over TLS, the extender answers a client with the
// client certificate of its CA, and refuses one with none or with another CA's.
func TestServerRequiresTheSchedulersCertificate(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	// Two CAs: the extender's, and another one's with the same client name.
	rotator := func(name string) (*certs.Rotator, map[string][]byte) {
		c := fake.NewClientBuilder().WithScheme(s).Build()
		r := &certs.Rotator{Client: c, SecretNamespace: "stork-system", SecretName: name, DNSNames: []string{"stork-extender.stork-system.svc"},
			CertDir: t.TempDir(), ClientCommonName: "stork-scheduler", Log: logr.Discard()}
		if err := r.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		sec := &corev1.Secret{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "stork-system", Name: name}, sec); err != nil {
			t.Fatal(err)
		}
		return r, sec.Data
	}
	own, ownData := rotator("stork-extender-certs")
	_, otherData := rotator("someone-elses")

	ready := make(chan net.Addr, 1)
	srv := &Server{Addr: "127.0.0.1:0", CertDir: own.CertDir, Log: logr.Discard(), Ready: ready,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })}
	go func() {
		if err := srv.Start(ctx); err != nil {
			t.Error(err)
		}
	}()
	var addr net.Addr
	select {
	case addr = <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("the extender did not listen")
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ownData[certs.KeyCACert])
	get := func(clientCert []tls.Certificate) error {
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots,
			ServerName: "stork-extender.stork-system.svc", Certificates: clientCert}}}
		resp, err := hc.Get("https://" + addr.String() + "/filter")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTeapot {
			t.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	pair := func(data map[string][]byte) []tls.Certificate {
		c, err := tls.X509KeyPair(data[certs.KeyClientCert], data[certs.KeyClientKey])
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{c}
	}
	if err := get(pair(ownData)); err != nil {
		t.Errorf("the scheduler's certificate: %v, want an answer", err)
	}
	if err := get(nil); err == nil {
		t.Error("a client without a certificate was answered")
	}
	if err := get(pair(otherData)); err == nil {
		t.Error("a client with another CA's certificate was answered")
	}
}
