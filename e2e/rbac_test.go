package e2e

import (
	"context"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"

	"stork.dev/stork/internal/harness"
)

// access is one question to the real API server's authorizer: may the service account sa of
// Stork's namespace do verb on a resource?
type access struct {
	sa, verb, group, resource, sub, ns, name string
	allowed                                  bool
}

// checkAccess asks the API server each question with a SubjectAccessReview, as the service
// account with the groups its token carries, and fails the test for every wrong answer.
func checkAccess(ctx context.Context, t *testing.T, c *harness.Cluster, cases []access) {
	t.Helper()
	for _, tc := range cases {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   "system:serviceaccount:" + harness.StorkNamespace + ":" + tc.sa,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + harness.StorkNamespace, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: tc.verb, Group: tc.group, Resource: tc.resource,
				Subresource: tc.sub, Namespace: tc.ns, Name: tc.name}}}
		if err := c.Client.Create(ctx, sar); err != nil {
			t.Fatal(err)
		}
		if sar.Status.Allowed != tc.allowed {
			t.Errorf("%s may %s %s/%s %s (group %q, namespace %q): %v, want %v", tc.sa, tc.verb, tc.resource, tc.sub, tc.name, tc.group, tc.ns, sar.Status.Allowed, tc.allowed)
		}
	}
}
