package certs

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// The keys of the Secret's data. KeyCACert holds the CA bundle: the current CA first, then the
// older CAs that have not expired.
const (
	KeyCACert  = "ca.crt"
	KeyCAKey   = "ca.key"
	KeyTLSCert = corev1.TLSCertKey
	KeyTLSKey  = corev1.TLSPrivateKeyKey
	// KeyClientCert and KeyClientKey hold a client certificate of the same CA, when the
	// Rotator has a ClientCommonName: what the serving side's peer (kube-scheduler, for the
	// extender) presents, and the serving side verifies against the CA bundle.
	KeyClientCert = "client.crt"
	KeyClientKey  = "client.key"
)

// Defaults of a Rotator's zero fields.
const (
	DefaultCAValidity      = 365 * 24 * time.Hour
	DefaultCertValidity    = 90 * 24 * time.Hour
	DefaultRefreshFraction = 1.0 / 3
	DefaultInterval        = time.Hour
)

const (
	// attempts bounds the retries of one round when other replicas write at the same time.
	attempts = 5
	// retryMin is the first wait after a failed round or one that found a webhook
	// configuration missing; it doubles up to the Interval.
	retryMin = 10 * time.Second
)

// errRetry means another writer got there first: read again and start over.
var errRetry = errors.New("conflict, read again")

// Rotator keeps a private CA and a webhook serving certificate in a Secret, the serving
// certificate in CertDir, and the CA bundle in the named MutatingWebhookConfigurations. See the
// package documentation.
type Rotator struct {
	// Client writes the Secret and the webhook configurations.
	Client client.Client
	// Reader reads them, uncached (the manager's API reader): Secrets are not kept in the
	// cache, webhook configurations are read a few times an hour, and it works before the
	// manager starts. Client when nil.
	Reader client.Reader
	// SecretNamespace and SecretName name the Secret that holds the CA and the serving
	// certificate (type kubernetes.io/tls when the Rotator creates it; Opaque works too).
	SecretNamespace, SecretName string
	// DNSNames and IPs are the serving certificate's subject alternative names, e.g.
	// stork-webhook.stork-system.svc.
	DNSNames []string
	IPs      []net.IP
	// CertDir is where tls.crt and tls.key are written for controller-runtime's webhook
	// server, which watches them and reloads.
	CertDir string
	// WebhookConfigs are the MutatingWebhookConfigurations whose webhooks' clientConfig.caBundle
	// is kept current.
	WebhookConfigs []string
	// ClientCommonName, when set, also keeps a client certificate of that name (KeyClientCert,
	// KeyClientKey) in the Secret, renewed as the serving one is; the CA bundle is then written
	// to CertDir too (ca.crt), for the server to verify clients against.
	ClientCommonName string
	// CAValidity and CertValidity are how long a new CA and a new serving certificate are
	// valid: DefaultCAValidity and DefaultCertValidity when zero.
	CAValidity, CertValidity time.Duration
	// RefreshFraction is the part of a certificate's validity left when it is renewed:
	// DefaultRefreshFraction when zero.
	RefreshFraction float64
	// Interval is the time between rounds of Start: DefaultInterval when zero.
	Interval time.Duration
	// Now is the clock: time.Now when nil.
	Now func() time.Time
	// Log is where the Rotator says what it changed. It never logs key material.
	Log logr.Logger
}

var (
	_ manager.Runnable               = (*Rotator)(nil)
	_ manager.LeaderElectionRunnable = (*Rotator)(nil)
)

// NeedLeaderElection is false: every replica serves the webhook, so every replica needs the
// files.
func (r *Rotator) NeedLeaderElection() bool { return false }

// Start runs Ensure now and then every Interval until ctx ends. A round that fails, or finds a
// webhook configuration missing, is retried sooner (from 10 seconds, doubling). It never stops
// the manager: errors are logged.
func (r *Rotator) Start(ctx context.Context) error {
	interval := r.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	delay, retry := time.Duration(0), min(retryMin, interval)
	for {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		pending, err := r.ensure(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			r.Log.Error(err, "keeping the certificates current; trying again", "secret", r.SecretName, "in", retry)
		}
		if err != nil || pending {
			delay, retry = retry, min(2*retry, interval)
		} else {
			delay, retry = interval, min(retryMin, interval)
		}
	}
}

// Ensure brings the Secret, the webhook configurations' caBundles and the files in CertDir to
// what they should be at Now, writing only what differs. A webhook configuration that does not
// exist is logged, not an error: Start tries again soon.
func (r *Rotator) Ensure(ctx context.Context) error {
	_, err := r.ensure(ctx)
	return err
}

// Ready is a readyz check: nil once the serving certificate and key are in CertDir.
func (r *Rotator) Ready(_ *http.Request) error {
	for _, name := range []string{KeyTLSCert, KeyTLSKey} {
		p := filepath.Join(r.CertDir, name)
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("serving certificate of Secret %s not written yet: %w", r.SecretName, err)
		}
		if fi.Size() == 0 {
			return fmt.Errorf("serving certificate of Secret %s not written yet: %s is empty", r.SecretName, p)
		}
	}
	return nil
}

// ensure is one round; pending is true when a webhook configuration was missing.
func (r *Rotator) ensure(ctx context.Context) (pending bool, err error) {
	if err := r.validate(); err != nil {
		return false, err
	}
	key := client.ObjectKey{Namespace: r.SecretNamespace, Name: r.SecretName}
	for range attempts {
		sec, err := r.syncSecret(ctx)
		if errors.Is(err, errRetry) {
			continue
		}
		if err != nil {
			return false, err
		}
		// The caBundles before the files, so that the API server trusts a serving
		// certificate before it is served. Files are written even when a configuration
		// could not be: the Secret already holds them, other replicas serve them, and a
		// replica without files cannot serve at all.
		var cfgErr error
		pending, cfgErr = r.syncConfigs(ctx, sec.Data[KeyCACert])
		if err := r.writeFiles(sec.Data); err != nil {
			return pending, errors.Join(cfgErr, err)
		}
		if cfgErr != nil {
			return pending, cfgErr
		}
		// Another replica may have rotated the Secret after it was read here, and this
		// round then set the older bundle over its newer one. Secret before bundle on every
		// replica means reading the Secret again now catches that.
		now := &corev1.Secret{}
		if err := r.reader().Get(ctx, key, now); err != nil {
			return pending, fmt.Errorf("reading Secret %s: %w", key, err)
		}
		if now.ResourceVersion == sec.ResourceVersion {
			return pending, nil
		}
		r.Log.V(1).Info("the webhook certificate Secret changed during the round; again", "secret", key)
	}
	return pending, fmt.Errorf("webhook certificate Secret %s changed %d times during one round; trying again later", key, attempts)
}

func (r *Rotator) validate() error {
	switch {
	case r.Client == nil:
		return errors.New("certs.Rotator needs a Client")
	case r.SecretNamespace == "" || r.SecretName == "":
		return errors.New("certs.Rotator needs SecretNamespace and SecretName")
	case r.CertDir == "":
		return errors.New("certs.Rotator needs a CertDir")
	case len(r.DNSNames) == 0 && len(r.IPs) == 0:
		return errors.New("certs.Rotator needs DNSNames or IPs for the serving certificate")
	}
	return nil
}

func (r *Rotator) reader() client.Reader {
	if r.Reader != nil {
		return r.Reader
	}
	return r.Client
}

func (r *Rotator) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Rotator) fraction() float64 {
	if r.RefreshFraction > 0 && r.RefreshFraction < 1 {
		return r.RefreshFraction
	}
	return DefaultRefreshFraction
}

// syncSecret creates or updates the Secret and returns it as stored. errRetry means another
// replica wrote it first.
func (r *Rotator) syncSecret(ctx context.Context) (*corev1.Secret, error) {
	key := client.ObjectKey{Namespace: r.SecretNamespace, Name: r.SecretName}
	sec := &corev1.Secret{}
	err := r.reader().Get(ctx, key, sec)
	if apierrors.IsNotFound(err) {
		st, err := r.desired(nil, r.now())
		if err != nil {
			return nil, fmt.Errorf("making the webhook certificates for Secret %s: %w", key, err)
		}
		sec = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: map[string]string{
				"app.kubernetes.io/name": "stork", "app.kubernetes.io/component": "webhook",
			}},
			Type: corev1.SecretTypeTLS,
			Data: st.data,
		}
		if err := r.Client.Create(ctx, sec); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return nil, errRetry
			}
			return nil, fmt.Errorf("creating Secret %s: %w", key, err)
		}
		r.Log.Info("created the webhook certificate Secret", "secret", key, "caNotAfter", st.ca.NotAfter, "servingNotAfter", st.serving.NotAfter)
		return sec, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s: %w", key, err)
	}
	st, err := r.desired(sec.Data, r.now())
	if err != nil {
		return nil, fmt.Errorf("renewing the webhook certificates of Secret %s: %w", key, err)
	}
	if len(st.changes) == 0 {
		return sec, nil
	}
	orig := sec.DeepCopy()
	sec.Data = st.data
	if err := r.Client.Patch(ctx, sec, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil, errRetry
		}
		return nil, fmt.Errorf("updating Secret %s: %w", key, err)
	}
	r.Log.Info("updated the webhook certificate Secret", "secret", key, "changes", st.changes,
		"caNotAfter", st.ca.NotAfter, "servingNotAfter", st.serving.NotAfter)
	return sec, nil
}

// state is what the Secret should hold.
type state struct {
	data        map[string][]byte
	ca, serving *x509.Certificate
	// changes say what differs from the data it was made from, for the log; empty when
	// nothing does.
	changes []string
}

// desired works out the Secret's data from its current data (nil when there is no Secret):
// a new CA when there is none or it is due, the bundle without expired CAs, a new serving
// certificate when there is none, it is due, its names differ or it does not verify. What needs
// no change keeps its bytes.
func (r *Rotator) desired(data map[string][]byte, now time.Time) (*state, error) {
	fraction := r.fraction()
	caValidity, certValidity := r.CAValidity, r.CertValidity
	if caValidity <= 0 {
		caValidity = DefaultCAValidity
	}
	if certValidity <= 0 {
		certValidity = DefaultCertValidity
	}

	var ca *keyPair
	var older []*x509.Certificate
	caKey, _ := parseKey(data[KeyCAKey])
	for _, c := range parseCerts(data[KeyCACert]) {
		if ca == nil && caKey != nil && c.IsCA && publicKeysEqual(c.PublicKey, caKey.Public()) {
			ca = &keyPair{cert: c, key: caKey, keyPEM: data[KeyCAKey]}
			continue
		}
		older = append(older, c)
	}
	var changes []string
	switch {
	case ca == nil:
		changes = append(changes, "new CA: none valid")
	case due(ca.cert, now, fraction):
		changes = append(changes, "new CA: due for renewal")
		older = append([]*x509.Certificate{ca.cert}, older...)
		ca = nil
	}
	if ca == nil {
		var err error
		// Named after the Secret (stork-webhook-certs: stork-webhook-ca), so that the webhook's,
		// the dashboard's and the extender's CAs are told apart.
		if ca, err = newCA(strings.TrimSuffix(r.SecretName, "-certs")+"-ca", now, caValidity); err != nil {
			return nil, err
		}
	}
	bundle := []*x509.Certificate{ca.cert}
	for _, c := range older {
		if c.IsCA && now.Before(c.NotAfter) && !containsCert(bundle, c) {
			bundle = append(bundle, c)
		}
	}

	serving := parsePair(data[KeyTLSCert], data[KeyTLSKey])
	if why := r.renewLeaf(serving, bundle, now, fraction, x509.ExtKeyUsageServerAuth); why != "" {
		changes = append(changes, "new serving certificate: "+why)
		var err error
		if serving, err = newServing(ca, now, certValidity, r.DNSNames, r.IPs); err != nil {
			return nil, err
		}
	}
	var clientPair *keyPair
	if r.ClientCommonName != "" {
		clientPair = parsePair(data[KeyClientCert], data[KeyClientKey])
		why := r.renewLeaf(clientPair, bundle, now, fraction, x509.ExtKeyUsageClientAuth)
		if why == "" && clientPair.cert.Subject.CommonName != r.ClientCommonName {
			why = "name changed"
		}
		if why != "" {
			changes = append(changes, "new client certificate: "+why)
			var err error
			if clientPair, err = newClient(ca, now, certValidity, r.ClientCommonName); err != nil {
				return nil, err
			}
		}
	}

	out := maps.Clone(data)
	if out == nil {
		out = map[string][]byte{}
	}
	want := map[string][]byte{
		KeyCACert:  encodeCerts(bundle),
		KeyCAKey:   ca.keyPEM,
		KeyTLSCert: serving.certPEM,
		KeyTLSKey:  serving.keyPEM,
	}
	if clientPair != nil {
		want[KeyClientCert], want[KeyClientKey] = clientPair.certPEM, clientPair.keyPEM
	}
	for k, v := range want {
		if !bytes.Equal(out[k], v) {
			out[k] = v
			if len(changes) == 0 {
				// Same certificates, other bytes: an expired CA dropped from the
				// bundle, or a hand-edited Secret.
				changes = append(changes, "rewrote "+k)
			}
		}
	}
	return &state{data: out, ca: ca.cert, serving: serving.cert, changes: changes}, nil
}

// renewLeaf says why a serving (or client) certificate must be renewed, or "" when it need not
// be.
func (r *Rotator) renewLeaf(kp *keyPair, bundle []*x509.Certificate, now time.Time, fraction float64, usage x509.ExtKeyUsage) string {
	if kp == nil {
		return "none valid"
	}
	if usage == x509.ExtKeyUsageServerAuth && !sameNames(kp.cert, r.DNSNames, r.IPs) {
		return "names changed"
	}
	pool := x509.NewCertPool()
	for _, c := range bundle {
		pool.AddCert(c)
	}
	chains, err := kp.cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		return "does not verify against the CA bundle"
	}
	if due(kp.cert, now, fraction) {
		return "due for renewal"
	}
	// Renew before the CA that signed it expires, as early as before its own expiry.
	margin := time.Duration(float64(kp.cert.NotAfter.Sub(kp.cert.NotBefore)) * fraction)
	for _, chain := range chains {
		if issuer := chain[len(chain)-1]; !now.Before(issuer.NotAfter.Add(-margin)) {
			return "its CA expires soon"
		}
	}
	return ""
}

func containsCert(certs []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range certs {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

// syncConfigs sets every webhook's caBundle in the named configurations. pending is true when
// one does not exist yet.
func (r *Rotator) syncConfigs(ctx context.Context, bundle []byte) (pending bool, err error) {
	var errs []error
	for _, name := range r.WebhookConfigs {
		missing, err := r.syncConfig(ctx, name, bundle)
		pending = pending || missing
		if err != nil {
			errs = append(errs, err)
		}
	}
	return pending, errors.Join(errs...)
}

func (r *Rotator) syncConfig(ctx context.Context, name string, bundle []byte) (missing bool, err error) {
	for attempt := 1; ; attempt++ {
		cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := r.reader().Get(ctx, client.ObjectKey{Name: name}, cfg); err != nil {
			if apierrors.IsNotFound(err) {
				r.Log.Info("MutatingWebhookConfiguration not found; its caBundle is set when it exists", "configuration", name)
				return true, nil
			}
			return false, fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", name, err)
		}
		orig := cfg.DeepCopy()
		changed := 0
		for i := range cfg.Webhooks {
			if !bytes.Equal(cfg.Webhooks[i].ClientConfig.CABundle, bundle) {
				cfg.Webhooks[i].ClientConfig.CABundle = bytes.Clone(bundle)
				changed++
			}
		}
		if changed == 0 {
			return false, nil
		}
		err := r.Client.Patch(ctx, cfg, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
		if err == nil {
			r.Log.Info("updated the caBundle of MutatingWebhookConfiguration", "configuration", name, "webhooks", changed)
			return false, nil
		}
		if (apierrors.IsConflict(err) || apierrors.IsNotFound(err)) && attempt < attempts {
			continue
		}
		return false, fmt.Errorf("updating the caBundle of MutatingWebhookConfiguration %s: %w", name, err)
	}
}

// writeFiles writes the serving certificate and key into CertDir where they differ, each
// atomically (temporary file, then rename), the key first.
func (r *Rotator) writeFiles(data map[string][]byte) error {
	if err := os.MkdirAll(r.CertDir, 0o700); err != nil {
		return fmt.Errorf("creating the webhook certificate directory %s: %w", r.CertDir, err)
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{KeyTLSKey, data[KeyTLSKey], 0o600},
		{KeyTLSCert, data[KeyTLSCert], 0o644},
		{KeyCACert, data[KeyCACert], 0o644},
	} {
		if f.name == KeyCACert && r.ClientCommonName == "" {
			continue // only a server that verifies clients needs the bundle
		}
		p := filepath.Join(r.CertDir, f.name)
		if cur, err := os.ReadFile(p); err == nil && bytes.Equal(cur, f.data) {
			continue
		}
		if err := writeAtomic(p, f.data, f.mode); err != nil {
			return fmt.Errorf("writing the webhook serving certificate file %s: %w", p, err)
		}
		r.Log.Info("wrote the webhook serving certificate file", "path", p)
	}
	return nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		_ = tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
