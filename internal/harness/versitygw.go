package harness

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// EnvS3 names the variable that points the harness at `hack/testbin.sh s3`'s directory.
const EnvS3 = "STORK_S3_TESTBIN"

// FindVersityGW returns the path of the versitygw command in $STORK_S3_TESTBIN.
func FindVersityGW() (string, error) {
	dir, err := findBuilt(EnvS3, "hack/testbin.sh s3", []string{"versitygw"})
	return filepath.Join(dir, "versitygw"), err
}

// VersityGW is a real versitygw server (Versity's S3 gateway over a POSIX directory) on a
// loopback port, with one bucket. It is stricter than MinIO in what it accepts of a request
// (AWS's rules on signatures, payload hashes and headers), so a test that passes against both
// does not lean on one server's leniency.
type VersityGW struct {
	// Endpoint is the server's base URL, http://127.0.0.1:PORT.
	Endpoint  string
	AccessKey string
	SecretKey string
	Bucket    string
	// Dir is the directory the gateway serves: a bucket is a directory in it, an object a file.
	Dir string
	// Client is a minio-go client with the root credentials.
	Client  *minio.Client
	Process *Process
}

// StartVersityGW starts versitygw with its data under the root, random root credentials and an
// empty bucket, and returns once the bucket exists. The test fails when $STORK_S3_TESTBIN is
// missing (and skips in -short mode).
func (e *Env) StartVersityGW(ctx context.Context, t testing.TB, name string) (*VersityGW, error) {
	t.Helper()
	bin := require(t, "versitygw", FindVersityGW)
	dir, err := e.dir(name)
	if err != nil {
		return nil, err
	}
	port, err := e.FreePort()
	if err != nil {
		return nil, err
	}
	host := net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
	g := &VersityGW{
		Endpoint:  "http://" + host,
		AccessKey: "stork-" + randomHex(6),
		SecretKey: randomHex(20),
		Bucket:    "stork-backups",
		Dir:       dir,
	}
	args := []string{"--port", host, "--health", "/health", "--quiet", "posix", g.Dir}
	env := []string{"ROOT_ACCESS_KEY=" + g.AccessKey, "ROOT_SECRET_KEY=" + g.SecretKey}
	if g.Process, err = e.StartProcess(name, bin, args, env); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, g.Process, g.Endpoint+"/health", time.Minute); err != nil {
		return nil, err
	}
	g.Client, err = minio.New(host, &minio.Options{Creds: credentials.NewStaticV4(g.AccessKey, g.SecretKey, ""), Secure: false})
	if err != nil {
		return nil, fmt.Errorf("making an S3 client for versitygw: %w", err)
	}
	if err := g.Client.MakeBucket(ctx, g.Bucket, minio.MakeBucketOptions{}); err != nil {
		return nil, fmt.Errorf("making bucket %s in versitygw: %w", g.Bucket, err)
	}
	return g, nil
}
