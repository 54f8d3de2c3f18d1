package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// MinIO is a real MinIO server on a loopback port, with one bucket.
type MinIO struct {
	// Endpoint is the server's base URL, http://HOST.
	Endpoint string
	// Host is IP:PORT (127.0.0.1 unless started with StartMinIOAt).
	Host      string
	AccessKey string
	SecretKey string
	Bucket    string
	// Client is a minio-go client with the root credentials.
	Client  *minio.Client
	Process *Process
	// restart runs the server again on the same address, data and credentials.
	restart func() (*Process, error)
}

// Restart kills the server (SIGKILL, as a crash would), waits down, and starts it again on the
// same address with the same data; it returns once the server answers.
func (m *MinIO) Restart(ctx context.Context, down time.Duration) error {
	if err := m.Process.Kill(); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(down):
	}
	p, err := m.restart()
	if err != nil {
		return err
	}
	m.Process = p
	return waitHTTP(ctx, p, m.Endpoint+"/minio/health/live", time.Minute)
}

// StartMinIO starts a MinIO server with its data under the root, random root credentials, and
// an empty bucket, and returns once the bucket exists.
func (e *Env) StartMinIO(ctx context.Context, name string) (*MinIO, error) {
	return e.StartMinIOAt(ctx, name, "127.0.0.1")
}

// StartMinIOAt is StartMinIO listening on address ip: a cluster's HostIP for pods on real
// nodes, which cannot reach this machine's loopback.
func (e *Env) StartMinIOAt(ctx context.Context, name, ip string) (*MinIO, error) {
	dir, err := e.dir(name)
	if err != nil {
		return nil, err
	}
	port, err := e.FreePort()
	if err != nil {
		return nil, err
	}
	consolePort, err := e.FreePort()
	if err != nil {
		return nil, err
	}
	m := &MinIO{
		Host:      net.JoinHostPort(ip, fmt.Sprint(port)),
		AccessKey: "stork-" + randomHex(6),
		SecretKey: randomHex(20),
		Bucket:    "stork-backups",
	}
	m.Endpoint = "http://" + m.Host
	args := []string{
		"server", filepath.Join(dir, "data"),
		"--address", m.Host,
		"--console-address", fmt.Sprintf("127.0.0.1:%d", consolePort),
		"--quiet",
	}
	env := []string{
		"MINIO_ROOT_USER=" + m.AccessKey,
		"MINIO_ROOT_PASSWORD=" + m.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		// Keep MinIO's own config and certs under the root, not in $HOME.
		"HOME=" + dir,
	}
	m.restart = func() (*Process, error) { return e.StartProcess(name, e.Bins.Path("minio"), args, env) }
	if m.Process, err = m.restart(); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, m.Process, m.Endpoint+"/minio/health/live", time.Minute); err != nil {
		return nil, err
	}
	m.Client, err = minio.New(m.Host, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, ""), Secure: false})
	if err != nil {
		return nil, fmt.Errorf("making a MinIO client: %w", err)
	}
	if err := m.Client.MakeBucket(ctx, m.Bucket, minio.MakeBucketOptions{}); err != nil {
		return nil, fmt.Errorf("making bucket %s in MinIO: %w", m.Bucket, err)
	}
	return m, nil
}

// waitHTTP polls url until it answers 200, failing early if the process exits.
func waitHTTP(ctx context.Context, p *Process, url string, timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited while starting: %v\n%s", p.Name, p.ExitError(), p.LogTail(30))
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy at %s: %w\n%s", p.Name, url, ctx.Err(), p.LogTail(30))
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}
