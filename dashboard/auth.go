package dashboard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/kubernetes"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// DefaultTTL is how long Auth remembers an answer of the API server.
const DefaultTTL = 30 * time.Second

// errUnauthenticated means the token is not (or no longer) valid.
var errUnauthenticated = errors.New("the token is not valid: sign in again with a current token")

// User is who a token belongs to, as the API server's TokenReview said.
type User struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string]authorizationv1.ExtraValue
}

// Auth asks the API server who a bearer token belongs to (TokenReview) and whether that user may
// list a kind in a namespace (SubjectAccessReview), and remembers each answer for TTL so that a
// page load costs a handful of reviews at most.
//
// k8s.io/apiserver's delegating authenticator and authorizer do the same with more options; they
// would bring the whole apiserver module into the controller for these two calls.
type Auth struct {
	Client kubernetes.Interface
	// TTL is how long an answer is remembered: DefaultTTL when zero. A revoked token or
	// permission stops working within it.
	TTL time.Duration

	once   sync.Once
	users  *cache.LRUExpireCache // sha256 of the token → User
	access *cache.LRUExpireCache // user, verb, resource, namespace → bool
}

func (a *Auth) init() {
	a.once.Do(func() {
		a.users = cache.NewLRUExpireCache(1024)
		a.access = cache.NewLRUExpireCache(16384)
	})
}

func (a *Auth) ttl() time.Duration {
	if a.TTL > 0 {
		return a.TTL
	}
	return DefaultTTL
}

// Authenticate returns the user the token belongs to, or errUnauthenticated. Other errors mean
// the API server could not be asked.
func (a *Auth) Authenticate(ctx context.Context, token string) (*User, error) {
	a.init()
	if token == "" {
		return nil, errUnauthenticated
	}
	sum := sha256.Sum256([]byte(token))
	key := hex.EncodeToString(sum[:])
	if u, ok := a.users.Get(key); ok {
		if u == nil {
			return nil, errUnauthenticated
		}
		return u.(*User), nil
	}
	tr, err := a.Client.AuthenticationV1().TokenReviews().Create(ctx,
		&authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("asking the API server who the token belongs to (TokenReview): %w", err)
	}
	if !tr.Status.Authenticated {
		a.users.Add(key, nil, a.ttl())
		return nil, errUnauthenticated
	}
	ui := tr.Status.User
	u := &User{Name: ui.Username, UID: ui.UID, Groups: ui.Groups, Extra: map[string]authorizationv1.ExtraValue{}}
	for k, v := range ui.Extra {
		u.Extra[k] = authorizationv1.ExtraValue(v)
	}
	a.users.Add(key, u, a.ttl())
	return u, nil
}

// MayList says whether u may list resource (of group stork.dev) in namespace ns; ns "" asks
// about every namespace at once.
func (a *Auth) MayList(ctx context.Context, u *User, resource, ns string) (bool, error) {
	a.init()
	key := strings.Join([]string{u.UID, u.Name, resource, ns}, "\x00")
	if ok, hit := a.access.Get(key); hit {
		return ok.(bool), nil
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: u.Name, UID: u.UID, Groups: u.Groups, Extra: u.Extra,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "list", Group: storkv1.GroupVersion.Group, Resource: resource, Namespace: ns},
	}}
	got, err := a.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("asking the API server whether %s may list %s (SubjectAccessReview): %w", u.Name, resource, err)
	}
	a.access.Add(key, got.Status.Allowed, a.ttl())
	return got.Status.Allowed, nil
}

// visible says, for one resource, which of the namespaces u may list it in.
type visible struct {
	all bool
	ns  map[string]bool
}

func (v visible) has(ns string) bool { return v.all || v.ns[ns] }

// Visible works out where u may list resource: everywhere when a cluster-wide list is allowed
// (one review), else namespace by namespace among candidates.
func (a *Auth) Visible(ctx context.Context, u *User, resource string, candidates []string) (visible, error) {
	all, err := a.MayList(ctx, u, resource, "")
	if err != nil || all {
		return visible{all: all}, err
	}
	v := visible{ns: map[string]bool{}}
	for _, ns := range candidates {
		ok, err := a.MayList(ctx, u, resource, ns)
		if err != nil {
			return visible{}, err
		}
		v.ns[ns] = ok
	}
	return v, nil
}
