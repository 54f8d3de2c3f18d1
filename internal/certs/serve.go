package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// ServerTLS is the TLS configuration of a server whose certificate a Rotator keeps in dir: it
// serves tls.crt and tls.key, reloaded when they change (until ctx ends). With verifyClients, it
// requires a client certificate that chains to dir's ca.crt (a Rotator with a ClientCommonName
// writes it), read again when it changes, so that a rotated CA is trusted at once.
func ServerTLS(ctx context.Context, dir string, verifyClients bool, log logr.Logger) (*tls.Config, error) {
	w, err := certwatcher.New(filepath.Join(dir, KeyTLSCert), filepath.Join(dir, KeyTLSKey))
	if err != nil {
		return nil, fmt.Errorf("loading the serving certificate from %s: %w", dir, err)
	}
	go func() {
		if err := w.Start(ctx); err != nil {
			log.Error(err, "watching the serving certificate", "dir", dir)
		}
	}()
	base := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: w.GetCertificate}
	if !verifyClients {
		return base, nil
	}
	cas := &caFile{path: filepath.Join(dir, KeyCACert)}
	if _, err := cas.pool(); err != nil {
		return nil, err
	}
	base.ClientAuth = tls.RequireAndVerifyClientCert
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
		return nil, fmt.Errorf("reading the client CA bundle: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.p != nil && fi.ModTime().Equal(c.mod) {
		return c.p, nil
	}
	data, err := os.ReadFile(c.path)
	if err != nil {
		return nil, fmt.Errorf("reading the client CA bundle: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("the client CA bundle %s holds no certificate", c.path)
	}
	c.p, c.mod = p, fi.ModTime()
	return p, nil
}

// ServerErrorLog is the ErrorLog of an http.Server using ServerTLS: what net/http reports goes to
// the component's structured log rather than to stderr. TLS handshake errors (a client that
// hangs up, a scanner, a client without the certificate ServerTLS asks for) are routine there and
// logged at V(1); anything else (a handler's panic) at the default level.
func ServerErrorLog(log logr.Logger) *stdlog.Logger {
	return stdlog.New(serverLogWriter{log.WithName("http")}, "", 0)
}

type serverLogWriter struct{ log logr.Logger }

func (w serverLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if strings.Contains(msg, "TLS handshake error") {
		w.log.V(1).Info(msg)
	} else {
		w.log.Info(msg)
	}
	return len(p), nil
}

// Endpoint says where and how Serve serves.
type Endpoint struct {
	// Name is what is served, in the log and in errors ("the dashboard").
	Name string
	Addr string
	// CertDir is ServerTLS's dir; empty serves plain HTTP (an explicit opt-in).
	CertDir       string
	VerifyClients bool
	Log           logr.Logger
	// Ready, if not nil, is sent the listener's address once it is open (tests wait on it).
	Ready chan<- net.Addr
}

// Serve listens on e.Addr and serves srv there, over TLS from e.CertDir, until ctx ends, then
// shuts srv down, giving requests in flight 5 seconds. srv.ErrorLog defaults to ServerErrorLog.
func Serve(ctx context.Context, srv *http.Server, e Endpoint) error {
	ln, err := net.Listen("tcp", e.Addr)
	if err != nil {
		return fmt.Errorf("%s: listening on %s: %w", e.Name, e.Addr, err)
	}
	if e.CertDir != "" {
		cfg, err := ServerTLS(ctx, e.CertDir, e.VerifyClients, e.Log)
		if err != nil {
			ln.Close()
			return fmt.Errorf("%s: %w", e.Name, err)
		}
		ln = tls.NewListener(ln, cfg)
	}
	if srv.ErrorLog == nil {
		srv.ErrorLog = ServerErrorLog(e.Log)
	}
	if e.Ready != nil {
		e.Ready <- ln.Addr()
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	e.Log.Info("serving "+e.Name, "address", ln.Addr().String(), "tls", e.CertDir != "")
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving %s: %w", e.Name, err)
	}
	return nil
}
