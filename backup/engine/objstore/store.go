package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	azblobsdk "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"gocloud.dev/blob"
	"gocloud.dev/blob/azureblob"
	"gocloud.dev/blob/gcsblob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcerrors"
	"gocloud.dev/gcp"
	"golang.org/x/oauth2/google"
)

// S3Options are the settings of an s3:// store beyond its bucket.
type S3Options struct {
	// Endpoint is the base URL of an S3-compatible store (MinIO); empty means AWS.
	Endpoint string
	// Region of the bucket; us-east-1 when empty.
	Region string
	// ForcePathStyle addresses the bucket as ENDPOINT/BUCKET.
	ForcePathStyle bool
	// ObjectLockRetention, on a bucket with Object Lock, is how long every object written is
	// retained (retain-until = write time + this, or the bucket's default period when that is
	// longer), in the bucket's default mode (GOVERNANCE when it has none). Zero leaves new
	// objects to the bucket's default retention. Ignored on buckets without Object Lock.
	ObjectLockRetention time.Duration
	// ResponseTimeout is how long a request waits for the store to start answering once the
	// request is sent, body and all; 0 means DefaultS3ResponseTimeout. A request that runs
	// out of it fails and is retried like any other transient error.
	ResponseTimeout time.Duration
}

// DefaultS3ResponseTimeout bounds the wait for an S3 answer. The SDK's own client has no such
// bound: a store that accepts connections and never answers (hung, or paused) held a backup or
// a restore for good. Stores answer in well under a second, so this only has to outlast a
// large write being made durable.
const DefaultS3ResponseTimeout = 2 * time.Minute

// Credentials are passed in explicitly, from a Secret or the command line: the store never
// falls back to ambient credentials (environment, instance metadata), so a backup always goes
// where its BackupLocation says, with the identity it names.
type Credentials struct {
	// AccessKeyID, SecretAccessKey and SessionToken are for s3://.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// GCSServiceAccountJSON is a service account key file, for gs://.
	GCSServiceAccountJSON []byte
	// AzureAccountName and AzureAccountKey are a shared key, for azblob://.
	AzureAccountName string
	AzureAccountKey  string
}

// Config says which store to open.
type Config struct {
	// URL is s3://BUCKET[/PREFIX], gs://BUCKET[/PREFIX], azblob://CONTAINER[/PREFIX],
	// file:///DIR or mem://.
	URL         string
	S3          S3Options
	Credentials Credentials
}

// CacheName names the store in a local cache directory: a hash of its URL and S3 endpoint (the
// same bucket name on two endpoints is two stores), never its credentials.
func (c Config) CacheName() string {
	sum := sha256.Sum256([]byte(c.URL + "\n" + c.S3.Endpoint))
	return hex.EncodeToString(sum[:12])
}

// Store is an object store with the few operations a backup repository needs, each retried
// with backoff on transient errors.
type Store struct {
	b    backend
	desc string
	// lock is set for an S3 bucket with Object Lock enabled: its objects may carry a
	// retention that no delete can shorten.
	lock *objectLock
	// attempts and baseDelay bound the retries of one operation.
	attempts  int
	baseDelay time.Duration
}

// bucketNames are the names each store accepts for a bucket (an Azure container): S3's rule
// for buckets made since 2018, GCS's, which allows underscores and longer dotted names, and
// Azure's, which allows no dots. The BackupLocation CRD's URL rule is the same, store by store.
var bucketNames = map[string]struct {
	re   *regexp.Regexp
	rule string
}{
	"s3":     {regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`), "3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit"},
	"gs":     {regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$`), "3 to 222 lowercase letters, digits, dots, hyphens and underscores, starting and ending with a letter or digit"},
	"azblob": {regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`), "3 to 63 lowercase letters, digits and hyphens, starting and ending with a letter or digit"},
}

// Open opens the store named by cfg.URL.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parsing store URL %q: %w", cfg.URL, err)
	}
	prefix := strings.Trim(u.Path, "/")
	var b *blob.Bucket
	var direct *s3Bucket
	// 8 attempts from 100ms: about 13-19s of backoff, which outlasts a store's restart (the
	// fault campaign kills MinIO mid-upload and starts it 3s later; with 5 attempts, about 2s,
	// uploads failed), while a store that stays down fails a task within half a minute.
	store := &Store{desc: redact(cfg.URL), attempts: 8, baseDelay: 100 * time.Millisecond}
	// Checked here because the stores' own answer can be a bare "400 Bad Request" (a HEAD has
	// no body to say more), which names neither the bucket nor the rule.
	if n, ok := bucketNames[u.Scheme]; ok && !n.re.MatchString(u.Host) {
		return nil, fmt.Errorf("store URL %q: bucket %q is not a valid name: use %s", redact(cfg.URL), u.Host, n.rule)
	}
	switch u.Scheme {
	case "s3":
		b, store.lock, direct, err = openS3(ctx, u.Host, prefix, cfg)
	case "gs":
		b, err = openGCS(ctx, u.Host, cfg.Credentials)
	case "azblob":
		b, err = openAzure(ctx, u.Host, cfg.Credentials)
	case "file":
		if u.Host != "" || !filepath.IsAbs(u.Path) {
			return nil, fmt.Errorf("store URL %q: a file URL needs an absolute path, as file:///DIR", cfg.URL)
		}
		if store.b, err = openDir(u.Path); err != nil {
			return nil, fmt.Errorf("opening %s: %w", store.desc, err)
		}
		return store, nil
	case "mem":
		prefix = ""
		b = memblob.OpenBucket(nil)
	default:
		return nil, fmt.Errorf("store URL %q: unsupported scheme %q (use s3, gs, azblob, file or mem)", cfg.URL, u.Scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", redact(cfg.URL), err)
	}
	if prefix != "" {
		b = blob.PrefixedBucket(b, prefix+"/")
	}
	store.b = &bucketBackend{bucket: b, lock: store.lock, s3: direct}
	removeStale(os.TempDir(), bucketTempPrefix)
	return store, nil
}

// openS3 opens an S3 bucket and says whether it has Object Lock enabled (asked once: a bucket
// cannot turn it off; a store that does not implement the call has none).
func openS3(ctx context.Context, bucket, prefix string, cfg Config) (*blob.Bucket, *objectLock, *s3Bucket, error) {
	c := cfg.Credentials
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return nil, nil, nil, errors.New("s3 credentials are incomplete: need accessKeyID and secretAccessKey")
	}
	region := cfg.S3.Region
	if region == "" {
		region = "us-east-1"
	}
	awsCfg := aws.Config{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken),
	}
	responseTimeout := cfg.S3.ResponseTimeout
	if responseTimeout <= 0 {
		responseTimeout = DefaultS3ResponseTimeout
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		o.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.ResponseHeaderTimeout = responseTimeout
		})
		if cfg.S3.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.S3.Endpoint)
		}
		o.UsePathStyle = cfg.S3.ForcePathStyle
		// One layer of retries, Store.retry's: with the SDK's standard retryer (3 attempts)
		// inside it, every failed call was sent up to 3 × 8 times, and a store that accepted
		// requests and never answered held a call for 3 × 8 response timeouts (48 minutes)
		// before it failed. Store.retry covers what the SDK's retryer did for us (5xx,
		// throttling, no response) with its own backoff.
		o.Retryer = aws.NopRetryer{}
		// Checksums only when the operation requires them: S3-compatible stores differ in
		// which of the newer default checksum headers they accept.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		// Signed as UNSIGNED-PAYLOAD over plain HTTP too (the SDK does so only over HTTPS):
		// what we write is sealed with AES-GCM and named by its BLAKE3, both checked when read,
		// so a SHA-256 of every body added only CPU, ours and the store's, which hashes the body
		// again to verify it (an in-cluster MinIO without TLS; docs/performance.md).
		o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
	})
	direct := &s3Bucket{client: client, bucket: bucket, prefix: prefix}
	var lock *objectLock
	if out, err := client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(bucket)}); err == nil &&
		out.ObjectLockConfiguration != nil && out.ObjectLockConfiguration.ObjectLockEnabled == s3types.ObjectLockEnabledEnabled {
		lock = &objectLock{s3Bucket: direct}
		if rule := out.ObjectLockConfiguration.Rule; rule != nil && rule.DefaultRetention != nil {
			d := rule.DefaultRetention
			lock.mode = s3types.ObjectLockRetentionMode(d.Mode)
			lock.period = time.Duration(aws.ToInt32(d.Days))*24*time.Hour + time.Duration(aws.ToInt32(d.Years))*365*24*time.Hour
		}
		if cfg.S3.ObjectLockRetention > lock.period {
			lock.period, lock.explicit = cfg.S3.ObjectLockRetention, true
			if lock.mode == "" {
				lock.mode = s3types.ObjectLockRetentionModeGovernance
			}
		}
	}
	// gocloud's bucket reads, lists and deletes; every write goes through direct.put.
	b, err := s3blob.OpenBucket(ctx, client, bucket, nil)
	return b, lock, direct, err
}

// s3Bucket is the S3 client and bucket behind a gocloud bucket, for what gocloud does not offer
// or does at a cost: Object Lock retentions, and writes (put).
type s3Bucket struct {
	client         *s3.Client
	bucket, prefix string
}

// key is the object key of a store key.
func (p *s3Bucket) key(key string) string {
	if p.prefix != "" {
		return p.prefix + "/" + key
	}
	return key
}

// put writes an object with one PutObject that streams body: S3 takes up to 5 GiB in one PUT,
// and what is sent needs no buffer. gocloud's writer goes through the SDK's transfer manager,
// which reads every upload into memory first (its first 16 MiB with io.ReadAll, then 5 MiB part
// buffers): with packs sent that way, a backup to MinIO peaked 116 MiB above the same backup to
// a directory (docs/performance.md). body is seekable so that the SDK can send it again on a
// retry.
func (p *s3Bucket) put(ctx context.Context, key string, body io.ReadSeeker, size int64, lock *objectLock) (bool, error) {
	in := &s3.PutObjectInput{Bucket: aws.String(p.bucket), Key: aws.String(p.key(key)), Body: body,
		ContentLength: aws.Int64(size), ContentType: aws.String("application/octet-stream"), IfNoneMatch: aws.String("*")}
	if lock != nil && lock.explicit {
		in.ObjectLockMode, in.ObjectLockRetainUntilDate = s3types.ObjectLockMode(lock.mode), aws.Time(time.Now().Add(lock.period))
		in.ChecksumAlgorithm = s3types.ChecksumAlgorithmCrc32 // S3 refuses a retention without one
	}
	_, err := p.client.PutObject(ctx, in)
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed {
		return false, nil // the key exists
	}
	if err != nil {
		return false, s3Error{err}
	}
	return true, nil
}

// s3Error marks an error of a direct S3 call (put) for transient.
type s3Error struct{ err error }

func (e s3Error) Error() string { return e.err.Error() }
func (e s3Error) Unwrap() error { return e.err }

// objectLock is what a store knows of its bucket's Object Lock: the client to read and extend
// retentions with, and the retention objects get: the bucket's default (mode and period; zero
// when it has none), or S3Options.ObjectLockRetention when that is longer (explicit: then every
// write sets it).
type objectLock struct {
	*s3Bucket
	mode     s3types.ObjectLockRetentionMode
	period   time.Duration
	explicit bool
}

// ObjectLock reports whether the store is a bucket with Object Lock, whose objects' retention
// RetainedUntil reads.
func (s *Store) ObjectLock() bool { return s.lock != nil }

// RetentionPeriod is how long new objects are retained under Object Lock: the bucket's default
// period or S3Options.ObjectLockRetention, whichever is longer (0: neither).
func (s *Store) RetentionPeriod() time.Duration {
	if s.lock == nil {
		return 0
	}
	return s.lock.period
}

// ExtendRetention sets an object's retention, in the bucket's default mode, to end at until:
// data a repository still uses stays locked as long as the bucket's policy wants, however old it
// is. S3 only ever lets a retention grow (in compliance mode) or grow without bypass rights.
func (s *Store) ExtendRetention(ctx context.Context, key string, until time.Time) error {
	if s.lock == nil || s.lock.mode == "" {
		return nil
	}
	return s.retry(ctx, "extending the retention of "+key, func() error {
		_, err := s.lock.client.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: aws.String(s.lock.bucket), Key: aws.String(s.lock.key(key)),
			Retention: &s3types.ObjectLockRetention{Mode: s.lock.mode, RetainUntilDate: aws.Time(until)}})
		return wrapBucket(err)
	})
}

// RetainedUntil is the end of an object's Object Lock retention (zero when it has none, or the
// store has no Object Lock): deleting the object before then cannot remove its data, only hide
// it behind a delete marker.
func (s *Store) RetainedUntil(ctx context.Context, key string) (time.Time, error) {
	bb, ok := s.b.(*bucketBackend)
	if s.lock == nil || !ok {
		return time.Time{}, nil
	}
	var until time.Time
	err := s.retry(ctx, "reading the retention of "+key, func() error {
		attrs, err := bb.bucket.Attributes(ctx, key)
		if err != nil {
			return wrapBucket(err)
		}
		var head s3.HeadObjectOutput
		if attrs.As(&head) && head.ObjectLockRetainUntilDate != nil && head.ObjectLockMode != "" {
			until = *head.ObjectLockRetainUntilDate
		}
		return nil
	})
	return until, err
}

func openGCS(ctx context.Context, bucket string, c Credentials) (*blob.Bucket, error) {
	if len(c.GCSServiceAccountJSON) == 0 {
		return nil, errors.New("gs credentials are missing: need a service account JSON key")
	}
	creds, err := google.CredentialsFromJSON(ctx, c.GCSServiceAccountJSON, "https://www.googleapis.com/auth/devstorage.read_write")
	if err != nil {
		return nil, fmt.Errorf("reading the GCS service account key: %w", err)
	}
	client, err := gcp.NewHTTPClient(gcp.DefaultTransport(), gcp.CredentialsTokenSource(creds))
	if err != nil {
		return nil, err
	}
	return gcsblob.OpenBucket(ctx, client, bucket, nil)
}

func openAzure(ctx context.Context, containerName string, c Credentials) (*blob.Bucket, error) {
	if c.AzureAccountName == "" || c.AzureAccountKey == "" {
		return nil, errors.New("azblob credentials are incomplete: need accountName and accountKey")
	}
	cred, err := azblobsdk.NewSharedKeyCredential(c.AzureAccountName, c.AzureAccountKey)
	if err != nil {
		return nil, fmt.Errorf("reading the Azure shared key: %w", err)
	}
	u := fmt.Sprintf("https://%s.blob.core.windows.net/%s", c.AzureAccountName, containerName)
	client, err := container.NewClientWithSharedKeyCredential(u, cred, nil)
	if err != nil {
		return nil, err
	}
	return azureblob.OpenBucket(ctx, client, nil)
}

// redact drops user information from a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}

// String names the store for messages.
func (s *Store) String() string { return s.desc }

// Local says whether the store is a local directory, where a staged object is linked into
// place: writing one costs an fsync, no memory.
func (s *Store) Local() bool {
	_, ok := s.b.(*dirBackend)
	return ok
}

// Close releases the store's resources.
func (s *Store) Close() error { return s.b.close() }

// ErrNotFound is returned (wrapped) when an object does not exist.
var ErrNotFound = errors.New("object not found")

// backend is where objects live: a gocloud.dev/blob bucket, or a local directory (dir.go).
// Errors for missing objects wrap ErrNotFound.
type backend interface {
	putNew(ctx context.Context, key string, data []byte) (created bool, err error)
	// tempFile and putNewFile stage an object in a local file and then store it.
	tempFile() (*os.File, error)
	putNewFile(ctx context.Context, key string, f *os.File) (created bool, err error)
	get(ctx context.Context, key string) ([]byte, error)
	// getRange fills dst from offset.
	getRange(ctx context.Context, key string, offset int64, dst []byte) error
	// list calls fn in key order; an object deleted while listed may be left out.
	list(ctx context.Context, prefix string, fn func(Object) error) error
	delete(ctx context.Context, key string) error
	exists(ctx context.Context, key string) (bool, error)
	close() error
}

// retry runs op until it succeeds, fails permanently, or runs out of attempts, with exponential
// backoff and jitter. For S3 it is the only retry layer (openS3); the GCS and Azure SDKs
// retry single requests too, and this covers what they give up on, such as a connection reset
// in the middle of a body.
func (s *Store) retry(ctx context.Context, what string, op func() error) error {
	var err error
	for attempt := 0; attempt < s.attempts; attempt++ {
		if attempt > 0 {
			delay := s.baseDelay << (attempt - 1)
			delay += time.Duration(rand.Int64N(int64(delay)/2 + 1))
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s in %s: %w (last error: %v)", what, s.desc, ctx.Err(), err)
			case <-time.After(delay):
			}
		}
		if err = op(); err == nil || !transient(err) || ctx.Err() != nil {
			break
		}
	}
	if err == nil {
		return nil
	}
	var fe callbackError
	if errors.As(err, &fe) {
		return fe.err
	}
	return fmt.Errorf("%s in %s: %w", what, s.desc, err)
}

// cleanupTimeout bounds CleanupContext.
const cleanupTimeout = 5 * time.Second

// CleanupContext is for best-effort cleanup after the work it follows (deleting a probe
// object, releasing a lock), which may run after ctx has been cancelled: it outlives ctx's
// cancellation by at most cleanupTimeout, so that a store that does not answer (paused,
// unreachable) cannot hold the caller up for good. The e2e test of a cancelled upload with
// MinIO stopped waited for such a delete until MinIO ran again.
func CleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

// transient says whether an error of a cloud store may go away when the operation is tried
// again; errors of a local directory do not.
func transient(err error) bool {
	var se s3Error
	if errors.As(err, &se) {
		return s3Transient(se.err)
	}
	var be bucketError
	if !errors.As(err, &be) {
		return false
	}
	var re *smithyhttp.ResponseError
	if errors.As(be.err, &re) { // an S3 answer read through gocloud: the rules of our own S3 calls
		return s3Transient(be.err)
	}
	switch gcerrors.Code(be.err) {
	case gcerrors.Unknown, gcerrors.Internal, gcerrors.ResourceExhausted, gcerrors.DeadlineExceeded:
		return true
	}
	return false
}

// s3Transient says whether an error of the S3 SDK is worth another attempt.
func s3Transient(err error) bool {
	// What the SDK's standard retryer would retry (openS3 turned it off): 5xx, throttling and
	// timeout codes (SlowDown, a 400 RequestTimeout), connection errors, a signature refused
	// while the answer's Date shows the node's clock off (the SDK has learnt the offset: the
	// next attempt is signed with it).
	if retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary {
		return true
	}
	// And a response that says try again (429, 408, a conflicting conditional write), or none
	// at all (the store restarting).
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		s := re.HTTPStatusCode()
		return s >= 500 || s == http.StatusTooManyRequests || s == http.StatusRequestTimeout || s == http.StatusConflict
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// callbackError carries an error of a List callback through retry, untouched and not retried.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// PutNew writes an object that must not exist yet. Objects of a repository are written once:
// when the key exists already, PutNew reports ok=false and leaves it alone. Keys named by the
// hash of their content make that harmless; for other keys the caller decides.
func (s *Store) PutNew(ctx context.Context, key string, data []byte) (ok bool, err error) {
	err = s.retry(ctx, "writing "+key, func() (err error) {
		ok, err = s.b.putNew(ctx, key, data)
		return err
	})
	return ok && err == nil, err
}

// TempFile returns a file to stage a large object in, for PutNewFile: in the store's own
// directory for file:// (PutNewFile then only links it), in the system's temporary directory
// otherwise. Staging keeps memory small whatever the object's size. The caller removes it with
// Discard when done.
func (s *Store) TempFile() (*os.File, error) {
	f, err := s.b.tempFile()
	if err != nil {
		return nil, fmt.Errorf("staging an object for %s: %w", s.desc, err)
	}
	return f, nil
}

// Discard closes and removes a staging file.
func Discard(f *os.File) { discard(f) }

// PutNewFile is PutNew with the content of a staging file.
func (s *Store) PutNewFile(ctx context.Context, key string, f *os.File) (ok bool, err error) {
	err = s.retry(ctx, "writing "+key, func() (err error) {
		ok, err = s.b.putNewFile(ctx, key, f)
		return err
	})
	return ok && err == nil, err
}

// Get reads a whole object.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	var data []byte
	err := s.retry(ctx, "reading "+key, func() (err error) {
		data, err = s.b.get(ctx, key)
		return err
	})
	return data, err
}

// GetRange reads length bytes of an object from offset.
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	data := make([]byte, length)
	return data, s.GetRangeInto(ctx, key, offset, data)
}

// GetRangeInto fills dst with the bytes of an object from offset, to reuse buffers.
func (s *Store) GetRangeInto(ctx context.Context, key string, offset int64, dst []byte) error {
	return s.retry(ctx, fmt.Sprintf("reading %s [%d,+%d)", key, offset, len(dst)), func() error {
		return s.b.getRange(ctx, key, offset, dst)
	})
}

// Object is one listed object.
type Object struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// List calls fn for every object under prefix, in key order. A listing that fails half-way is
// resumed after the last object delivered, so fn sees each object once.
func (s *Store) List(ctx context.Context, prefix string, fn func(Object) error) error {
	var last string
	return s.retry(ctx, "listing "+prefix, func() error {
		return s.b.list(ctx, prefix, func(o Object) error {
			if last != "" && o.Key <= last {
				return nil
			}
			last = o.Key
			if err := fn(o); err != nil {
				return callbackError{err}
			}
			return nil
		})
	})
}

// Delete removes an object; deleting one that does not exist is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	err := s.retry(ctx, "deleting "+key, func() error { return s.b.delete(ctx, key) })
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// Exists reports whether an object exists.
func (s *Store) Exists(ctx context.Context, key string) (bool, error) {
	var ok bool
	err := s.retry(ctx, "looking up "+key, func() (err error) {
		ok, err = s.b.exists(ctx, key)
		return err
	})
	return ok, err
}

// bucketBackend is a gocloud.dev/blob bucket.
type bucketBackend struct {
	bucket *blob.Bucket
	// lock, when its retention is explicit, is set on every object written.
	lock *objectLock
	// s3 writes every object when the bucket is S3's.
	s3 *s3Bucket
}

// bucketError marks errors of gocloud buckets, which transient classifies.
type bucketError struct{ err error }

func (e bucketError) Error() string { return e.err.Error() }
func (e bucketError) Unwrap() error { return e.err }

func wrapBucket(err error) error {
	switch {
	case err == nil:
		return nil
	case gcerrors.Code(err) == gcerrors.NotFound:
		return fmt.Errorf("%w (%v)", ErrNotFound, err)
	}
	return bucketError{err}
}

func (b *bucketBackend) putNew(ctx context.Context, key string, data []byte) (bool, error) {
	if b.s3 != nil {
		return b.s3.put(ctx, key, bytes.NewReader(data), int64(len(data)), b.lock)
	}
	return b.write(ctx, key, bytes.NewReader(data))
}

// bucketTempPrefix names staging files in the system's temporary directory.
const bucketTempPrefix = "stork-object-"

func (b *bucketBackend) tempFile() (*os.File, error) {
	return os.CreateTemp("", bucketTempPrefix+"*")
}

func (b *bucketBackend) putNewFile(ctx context.Context, key string, f *os.File) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	body := io.NewSectionReader(f, 0, fi.Size())
	if b.s3 != nil {
		return b.s3.put(ctx, key, body, fi.Size(), b.lock)
	}
	return b.write(ctx, key, body)
}

// write stores what r holds under key unless the key exists (GCS and Azure; S3 writes go
// through s3Bucket.put). NewWriter rather than WriteAll, which hashes the data with MD5 once
// more; one 5 MiB part in flight bounds the memory of an upload, parallelism comes from several
// objects uploading at once.
func (b *bucketBackend) write(ctx context.Context, key string, r io.Reader) (bool, error) {
	w, err := b.bucket.NewWriter(ctx, key, &blob.WriterOptions{IfNotExist: true, ContentType: "application/octet-stream", BufferSize: 5 << 20, MaxConcurrency: 1})
	if err != nil {
		return false, wrapBucket(err)
	}
	if _, err := io.Copy(w, r); err != nil {
		_ = w.Close()
		return false, wrapBucket(err)
	}
	err = w.Close()
	if gcerrors.Code(err) == gcerrors.FailedPrecondition {
		return false, nil
	}
	return err == nil, wrapBucket(err)
}

func (b *bucketBackend) get(ctx context.Context, key string) ([]byte, error) {
	data, err := b.bucket.ReadAll(ctx, key)
	return data, wrapBucket(err)
}

func (b *bucketBackend) getRange(ctx context.Context, key string, offset int64, dst []byte) error {
	r, err := b.bucket.NewRangeReader(ctx, key, offset, int64(len(dst)), nil)
	if err != nil {
		return wrapBucket(err)
	}
	defer r.Close()
	if n, err := io.ReadFull(r, dst); err != nil {
		return wrapBucket(fmt.Errorf("short read: %d of %d bytes: %w", n, len(dst), err))
	}
	return nil
}

func (b *bucketBackend) list(ctx context.Context, prefix string, fn func(Object) error) error {
	it := b.bucket.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return wrapBucket(err)
		}
		if err := fn(Object{Key: obj.Key, Size: obj.Size, ModTime: obj.ModTime}); err != nil {
			return err
		}
	}
}

func (b *bucketBackend) delete(ctx context.Context, key string) error {
	return wrapBucket(b.bucket.Delete(ctx, key))
}

func (b *bucketBackend) exists(ctx context.Context, key string) (bool, error) {
	ok, err := b.bucket.Exists(ctx, key)
	return ok, wrapBucket(err)
}

func (b *bucketBackend) close() error { return b.bucket.Close() }
