package objstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"gocloud.dev/gcerrors"
)

// probePrefix holds the objects Probe writes; nothing else uses it.
const probePrefix = "stork-probe/"

// Probe checks that the store can be used: it lists, and unless readOnly writes an object,
// reads it back and deletes it. The error says which step failed; Problem classifies it.
func (s *Store) Probe(ctx context.Context, readOnly bool) error {
	if err := s.List(ctx, probePrefix, func(Object) error { return nil }); err != nil {
		return fmt.Errorf("listing: %w", err)
	}
	if readOnly {
		return nil
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	key := probePrefix + hex.EncodeToString(b)
	if _, err := s.PutNew(ctx, key, b); err != nil {
		return fmt.Errorf("writing a probe object: %w", err)
	}
	deleted := false
	defer func() {
		if !deleted {
			ctx, cancel := CleanupContext(ctx) // not left behind when a later step fails
			defer cancel()
			_ = s.Delete(ctx, key)
		}
	}()
	got, err := s.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("reading the probe object back: %w", err)
	}
	if !bytes.Equal(got, b) {
		return fmt.Errorf("the probe object %s read back differs from what was written", key)
	}
	deleted = true
	if err := s.Delete(ctx, key); err != nil {
		return fmt.Errorf("deleting the probe object: %w", err)
	}
	return nil
}

// Problems Problem reports, as CamelCase reasons for status conditions.
const (
	ProblemInvalidCredentials = "InvalidCredentials"
	ProblemAccessDenied       = "AccessDenied"
	ProblemBucketNotFound     = "BucketNotFound"
	ProblemUnreachable        = "StoreUnreachable"
)

// Problem names what an error of a store operation says about the store: credentials it does
// not accept, permissions missing, no such bucket, or (for anything else) that it could not be
// used. Stores report these in different ways; the S3 error codes are matched by name.
func Problem(err error) string {
	msg := err.Error()
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(msg, w) {
				return true
			}
		}
		return false
	}
	var be bucketError
	code := gcerrors.Unknown
	if errors.As(err, &be) {
		code = gcerrors.Code(be.err)
	}
	switch {
	case has("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId", "AuthenticationFailed", "invalid_grant"):
		return ProblemInvalidCredentials
	case has("NoSuchBucket", "ContainerNotFound", "bucket does not exist", "specified bucket does not exist") || errors.Is(err, ErrNotFound):
		return ProblemBucketNotFound
	case has("AccessDenied", "AuthorizationPermissionMismatch", "Forbidden") || code == gcerrors.PermissionDenied:
		return ProblemAccessDenied
	}
	return ProblemUnreachable
}
