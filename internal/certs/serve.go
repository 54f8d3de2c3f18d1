package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	stdlog "log"
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
