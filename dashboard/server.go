package dashboard

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"stork.dev/stork/internal/certs"
)

//go:embed templates
var files embed.FS

// CookieName is the cookie that carries the user's token between pages. It is HttpOnly (no
// script can read it), SameSite=Strict (no other site's page can send it) and Secure when
// served over TLS.
const CookieName = "stork-dashboard-token"

// cookieLife is how long a browser keeps the token: a working day. The token's own expiry
// still applies: an expired token sends the user back to the sign-in page.
const cookieLife = 8 * time.Hour

// Server serves the dashboard. It is a manager.Runnable that runs on every replica (it only
// reads from the cache).
type Server struct {
	// Reader reads Stork's objects: the manager's cached client.
	Reader client.Reader
	Auth   *Auth
	// Addr is the address to listen on, e.g. ":8443".
	Addr string
	// CertDir holds tls.crt and tls.key (kept current by a certs.Rotator, reloaded when they
	// change); empty serves plain HTTP, which only an explicit flag asks for.
	CertDir string
	Log     logr.Logger
	// Now is the clock: time.Now when nil.
	Now func() time.Time

	pages map[string]*template.Template
}

var (
	_ manager.Runnable               = (*Server)(nil)
	_ manager.LeaderElectionRunnable = (*Server)(nil)
)

// NeedLeaderElection is false: every replica can answer from its cache.
func (s *Server) NeedLeaderElection() bool { return false }

// Start serves until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	h, err := s.Handler()
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: time.Minute,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	return certs.Serve(ctx, srv, certs.Endpoint{Name: "the dashboard", Addr: s.Addr, CertDir: s.CertDir, Log: s.Log})
}

// Handler is the dashboard's HTTP handler.
func (s *Server) Handler() (http.Handler, error) {
	if err := s.parse(); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /static/style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		http.ServeFileFS(w, r, files, "templates/style.css")
	})
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		s.render(w, http.StatusOK, "login", page{Title: "Sign in"})
	})
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, s.cookie(r, "", -1))
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /{$}", s.authed(func(w http.ResponseWriter, r *http.Request, rd *reader, p page) {
		o, err := rd.overview(r.Context())
		if err != nil {
			s.fail(w, p, err)
			return
		}
		p.Title, p.Data, p.Refresh = "Overview", o, 15
		s.render(w, http.StatusOK, "overview", p)
	}))
	mux.HandleFunc("GET /apps/{namespace}/{name}", s.authed(func(w http.ResponseWriter, r *http.Request, rd *reader, p page) {
		ns, name := r.PathValue("namespace"), r.PathValue("name")
		a, err := rd.appPage(r.Context(), ns, name)
		if err != nil {
			s.fail(w, p, err)
			return
		}
		p.Title, p.Data, p.Refresh = "Application "+ns+"/"+name, a, 30
		s.render(w, http.StatusOK, "app", p)
	}))
	return secureHeaders(mux), nil
}

// page is what every template gets.
type page struct {
	Title, User, Now, Error string
	Refresh                 int
	Data                    any
}

// authed runs h for a request with a valid token (the Authorization header's bearer token, or
// the cookie); a browser without one is sent to the sign-in page, a client that sent a header
// gets 401.
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, *reader, page)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, fromHeader := bearer(r)
		if !fromHeader {
			if c, err := r.Cookie(CookieName); err == nil {
				token = c.Value
			}
		}
		u, err := s.Auth.Authenticate(r.Context(), token)
		switch {
		case errors.Is(err, errUnauthenticated) && fromHeader:
			w.Header().Set("WWW-Authenticate", `Bearer realm="stork-dashboard"`)
			s.render(w, http.StatusUnauthorized, "error", page{Title: "Not signed in", Error: err.Error()})
			return
		case errors.Is(err, errUnauthenticated):
			if token != "" {
				http.SetCookie(w, s.cookie(r, "", -1))
			}
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		case err != nil:
			s.Log.Error(err, "authenticating a dashboard request")
			s.render(w, http.StatusServiceUnavailable, "error", page{Title: "Unavailable", Error: "The API server could not be asked who you are; try again shortly."})
			return
		}
		now := s.now()
		h(w, r, &reader{c: s.Reader, auth: s.Auth, user: u, now: now}, page{User: u.Name, Now: now.UTC().Format(time.DateTime + " MST")})
	}
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	token := strings.TrimSpace(r.PostFormValue("token"))
	_, err := s.Auth.Authenticate(r.Context(), token)
	switch {
	case errors.Is(err, errUnauthenticated):
		s.render(w, http.StatusUnauthorized, "login", page{Title: "Sign in", Error: "The API server did not accept this token. Make a new one with kubectl create token."})
		return
	case err != nil:
		s.Log.Error(err, "authenticating a dashboard sign-in")
		s.render(w, http.StatusServiceUnavailable, "login", page{Title: "Sign in", Error: "The API server could not be asked who you are; try again shortly."})
		return
	}
	http.SetCookie(w, s.cookie(r, token, int(cookieLife.Seconds())))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) cookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: CookieName, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode}
}

// fail renders err: errNotFound as 404, anything else as 500 (logged; the page says only that
// reading failed, not why, which may name objects the user may not see).
func (s *Server) fail(w http.ResponseWriter, p page, err error) {
	if errors.Is(err, errNotFound) {
		p.Title, p.Error = "Not found", err.Error()
		s.render(w, http.StatusNotFound, "error", p)
		return
	}
	s.Log.Error(err, "building a dashboard page")
	p.Title, p.Error = "Error", "Reading Stork's objects failed; the controller's log says why."
	s.render(w, http.StatusInternalServerError, "error", p)
}

func (s *Server) parse() error {
	base, err := template.ParseFS(files, "templates/layout.html")
	if err != nil {
		return fmt.Errorf("dashboard: parsing templates/layout.html: %w", err)
	}
	s.pages = map[string]*template.Template{}
	for _, name := range []string{"overview", "app", "login", "error"} {
		t, err := template.Must(base.Clone()).ParseFS(files, "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("dashboard: parsing templates/%s.html: %w", name, err)
		}
		s.pages[name] = t
	}
	return nil
}

// render executes a page into a buffer first, so that a template error becomes a 500 rather
// than half a page.
func (s *Server) render(w http.ResponseWriter, status int, name string, p page) {
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		s.Log.Error(err, "rendering a dashboard page", "page", name)
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// bearer returns the Authorization header's bearer token, and whether there was such a header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, token, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	return strings.TrimSpace(token), true
}

// secureHeaders forbids scripts, frames and caching: pages carry what a user may read and
// nothing on them needs a script.
func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store") // the stylesheet's handler overrides it
		h.ServeHTTP(w, r)
	})
}
