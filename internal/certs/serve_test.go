package certs

import (
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
)

// TestServerErrorLog: net/http's messages reach the structured log, TLS handshake errors only at
// V(1) (routine: scanners, clients that hang up), anything else at the default level.
func TestServerErrorLog(t *testing.T) {
	for _, tc := range []struct {
		line      string
		verbosity int
		wantShown bool
	}{
		{"http: TLS handshake error from 10.0.0.7:51234: EOF", 0, false},
		{"http: TLS handshake error from 10.0.0.7:51234: EOF", 1, true},
		{"http: panic serving 10.0.0.7:51234: boom", 0, true},
	} {
		var got []string
		log := funcr.New(func(prefix, args string) { got = append(got, prefix+" "+args) }, funcr.Options{Verbosity: tc.verbosity})
		ServerErrorLog(log).Print(tc.line)
		shown := len(got) == 1 && strings.Contains(got[0], strings.SplitN(tc.line, ":", 2)[0]) && strings.Contains(got[0], "http")
		if shown != tc.wantShown {
			t.Errorf("%q at verbosity %d: logged %q, want shown %v", tc.line, tc.verbosity, got, tc.wantShown)
		}
	}
}
