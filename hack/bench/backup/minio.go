package main

// The local MinIO the minio target writes to.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

type minioServer struct {
	endpoint string // http://127.0.0.1:PORT
	// toolEndpoint is where the tools send their requests: endpoint, or a delayProxy's.
	toolEndpoint string
	dir          string
	cmd          *exec.Cmd
	client       *minio.Client
	proxy        *http.Server
}

// startMinIO starts the test MinIO (hack/testbin.sh) on a loopback port, with an empty bucket;
// with latency, the tools reach it through a delayProxy.
func startMinIO(ctx context.Context, root, work string, latency time.Duration) (*minioServer, error) {
	bins, err := output(ctx, root, filepath.Join(root, "hack", "testbin.sh"))
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(work, "minio")
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	console, err := freePort()
	if err != nil {
		return nil, err
	}
	host := fmt.Sprintf("127.0.0.1:%d", port)
	logf, err := os.Create(filepath.Join(work, "logs", "minio.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bins, "minio"), "server", filepath.Join(dir, "data"), "--address", host,
		"--console-address", fmt.Sprintf("127.0.0.1:%d", console), "--quiet")
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+minioUser, "MINIO_ROOT_PASSWORD="+minioSecret,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "HOME="+dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The server dies with the benchmark, however the benchmark ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	m := &minioServer{endpoint: "http://" + host, toolEndpoint: "http://" + host, dir: dir, cmd: cmd}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(time.Minute)
	for {
		if resp, err := hc.Get(m.endpoint + "/minio/health/live"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("minio exited while starting: %v (see %s)", err, logf.Name())
		case <-ctx.Done():
			m.stop()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.stop()
			return nil, fmt.Errorf("minio not healthy at %s after a minute (see %s)", m.endpoint, logf.Name())
		}
	}
	if m.client, err = minio.New(host, &minio.Options{Creds: credentials.NewStaticV4(minioUser, minioSecret, "")}); err != nil {
		m.stop()
		return nil, err
	}
	if err := m.client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		m.stop()
		return nil, fmt.Errorf("making bucket %s: %w", bucket, err)
	}
	if latency > 0 {
		if err := m.startDelayProxy(latency); err != nil {
			m.stop()
			return nil, err
		}
		fmt.Printf("tools reach MinIO through %s, %v added to every request\n", m.toolEndpoint, latency)
	}
	fmt.Printf("MinIO at %s, data in %s\n", m.endpoint, dir)
	return m, nil
}

// startDelayProxy puts a reverse proxy in front of MinIO that holds every request for latency
// before passing it on: a cloud store's round trip, which a MinIO on the same machine lacks.
// Bodies stream through unchanged, and so does the Host header the tools signed.
func (m *minioServer) startDelayProxy(latency time.Duration) error {
	target, err := url.Parse(m.endpoint)
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	m.proxy = &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(latency)
		rp.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("tcp", m.proxy.Addr)
	if err != nil {
		return err
	}
	go func() { _ = m.proxy.Serve(ln) }()
	m.toolEndpoint = "http://" + m.proxy.Addr
	return nil
}

func (m *minioServer) stop() {
	if m.proxy != nil {
		_ = m.proxy.Close()
	}
	_ = m.cmd.Process.Kill()
	time.Sleep(100 * time.Millisecond)
	_ = os.RemoveAll(m.dir)
}

func (m *minioServer) prefixBytes(ctx context.Context, prefix string) (int64, error) {
	var n int64
	for o := range m.client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return 0, o.Err
		}
		n += o.Size
	}
	return n, nil
}

func (m *minioServer) removePrefix(ctx context.Context, prefix string) error {
	objs := m.client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true})
	for e := range m.client.RemoveObjects(ctx, bucket, objs, minio.RemoveObjectsOptions{}) {
		if e.Err != nil {
			return fmt.Errorf("removing %s: %w", e.ObjectName, e.Err)
		}
	}
	return nil
}
