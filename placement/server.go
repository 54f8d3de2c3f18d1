package placement

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// Server serves the extender, as a manager.Runnable on every replica: over TLS, answering only
// clients with a certificate of its CA (the stork scheduler's, kept by internal/certs beside the
// serving one), since answers say where a namespace's data is; plain HTTP only when CertDir is
// empty (an explicit opt-in). deploy/base/manifests/60-scheduler.yaml also has a NetworkPolicy
// that admits only the stork scheduler's pods to the port.
type Server struct {
	Addr    string
	Handler http.Handler
	// CertDir holds tls.crt and tls.key (served) and ca.crt (the CAs client certificates must
	// chain to), reloaded when they change. Empty serves plain HTTP.
	CertDir string
	Log     logr.Logger
	// Ready is closed once the listener is open (tests wait on it); may be nil.
	Ready chan<- net.Addr
}

// NeedLeaderElection is false: every replica answers the scheduler.
func (s *Server) NeedLeaderElection() bool { return false }

// Start listens on Addr until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("listening for the scheduler extender on %s: %w", s.Addr, err)
	}
	if s.CertDir != "" {
		cfg, err := s.tlsConfig(ctx)
		if err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, cfg)
	}
	if s.Ready != nil {
		s.Ready <- ln.Addr()
	}
	// Bounded reads and writes: a slow or stalled client must not hold the controller's memory.
	srv := &http.Server{Handler: s.Handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	s.Log.Info("serving the scheduler extender", "address", ln.Addr().String(), "tls", s.CertDir != "")
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving the scheduler extender: %w", err)
	}
	return nil
}

// tlsConfig serves the certificate in CertDir and requires a client certificate that chains to
// CertDir's ca.crt (read again when it changes, so that a rotated CA is trusted at once).
func (s *Server) tlsConfig(ctx context.Context) (*tls.Config, error) {
	w, err := certwatcher.New(filepath.Join(s.CertDir, "tls.crt"), filepath.Join(s.CertDir, "tls.key"))
	if err != nil {
		return nil, fmt.Errorf("loading the extender's serving certificate from %s: %w", s.CertDir, err)
	}
	go func() {
		if err := w.Start(ctx); err != nil {
			s.Log.Error(err, "watching the extender's serving certificate")
		}
	}()
	cas := &caFile{path: filepath.Join(s.CertDir, "ca.crt")}
	if _, err := cas.pool(); err != nil {
		return nil, err
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: w.GetCertificate, ClientAuth: tls.RequireAndVerifyClientCert}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		pool, err := cas.pool()
		if err != nil {
			return nil, err
		}
		cfg := base.Clone()
		cfg.ClientCAs, cfg.GetConfigForClient = pool, nil
		return cfg, nil
	}
	return base, nil
}

// caFile is a CA bundle file, parsed again when its modification time changes.
type caFile struct {
	path string
	mu   sync.Mutex
	mod  time.Time
	p    *x509.CertPool
}

func (c *caFile) pool() (*x509.CertPool, error) {
	fi, err := os.Stat(c.path)
	if err != nil {
		return nil, fmt.Errorf("reading the extender's client CA bundle: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.p != nil && fi.ModTime().Equal(c.mod) {
		return c.p, nil
	}
	data, err := os.ReadFile(c.path)
	if err != nil {
		return nil, fmt.Errorf("reading the extender's client CA bundle: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("the extender's client CA bundle %s holds no certificate", c.path)
	}
	c.p, c.mod = p, fi.ModTime()
	return p, nil
}
