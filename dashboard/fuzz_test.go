package dashboard

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzBearer: any Authorization header yields a token without surrounding space, and a header
// that is not a bearer one yields none.
func FuzzBearer(f *testing.F) {
	f.Add("Bearer abc.def")
	f.Add("bearer   x  ")
	f.Add("Basic dXNlcjpwYXNz")
	f.Add("")
	f.Fuzz(func(t *testing.T, h string) {
		r := &http.Request{Header: http.Header{"Authorization": {h}}}
		token, present := bearer(r)
		if present != (h != "") {
			t.Fatalf("header %q: present %v", h, present)
		}
		if token != strings.TrimSpace(token) {
			t.Fatalf("token %q keeps surrounding space", token)
		}
		if scheme, _, _ := strings.Cut(h, " "); token != "" && !strings.EqualFold(scheme, "Bearer") {
			t.Fatalf("header %q (not a bearer one) gave token %q", h, token)
		}
	})
}
