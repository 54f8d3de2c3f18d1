package objstore

import (
	"context"
	"errors"
	"testing"
)

func TestProblem(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errors.New("operation error S3: PutObject, api error InvalidAccessKeyId: The Access Key Id you provided does not exist"), ProblemInvalidCredentials},
		{errors.New("api error SignatureDoesNotMatch: The request signature we calculated does not match"), ProblemInvalidCredentials},
		{errors.New("api error NoSuchBucket: The specified bucket does not exist"), ProblemBucketNotFound},
		{errors.New("RESPONSE 404: ContainerNotFound"), ProblemBucketNotFound},
		{errors.New("api error AccessDenied: Access Denied."), ProblemAccessDenied},
		{errors.New("dial tcp 127.0.0.1:9: connect: connection refused"), ProblemUnreachable},
	} {
		if got := Problem(tc.err); got != tc.want {
			t.Errorf("Problem(%q) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func TestProbe(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, readOnly := range []bool{false, true} {
		if err := s.Probe(ctx, readOnly); err != nil {
			t.Fatalf("probe (readOnly %v): %v", readOnly, err)
		}
	}
	left := 0
	if err := s.List(ctx, probePrefix, func(Object) error { left++; return nil }); err != nil || left != 0 {
		t.Errorf("probe objects left behind: %d (%v)", left, err)
	}
}
