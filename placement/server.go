package placement

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/go-logr/logr"

	"stork.dev/stork/internal/certs"
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
	// Bounded reads and writes: a slow or stalled client must not hold the controller's memory.
	srv := &http.Server{Handler: s.Handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	return certs.Serve(ctx, srv, certs.Endpoint{Name: "the scheduler extender", Addr: s.Addr, CertDir: s.CertDir, VerifyClients: true, Log: s.Log, Ready: s.Ready})
}
