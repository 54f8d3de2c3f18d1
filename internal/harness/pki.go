package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// authority is the certificate authority of a cluster started with RealNodes: it signs
// kube-apiserver's serving certificate, the client certificate kube-apiserver presents to
// kubelets, and each kubelet's serving certificate, so that both directions of the API server ↔
// kubelet connection are authenticated, as in a kubeadm cluster.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// PEM is the CA certificate in PEM, for the files that trust it.
	PEM []byte
}

func newAuthority() (*authority, error) {
	now := time.Now()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject: pkix.Name{CommonName: "stork-harness-ca"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true,
	}
	der, cert, err := signCert(tmpl, nil, key, key)
	if err != nil {
		return nil, err
	}
	return &authority{cert: cert, key: key, PEM: certPEM(der)}, nil
}

// issue signs a certificate for cn (in the groups orgs) for usage, naming dns and ips, and
// writes it and its key as PEM files certFile and keyFile.
func (a *authority) issue(certFile, keyFile, cn string, orgs []string, usage x509.ExtKeyUsage, dns []string, ips []net.IP) error {
	now := time.Now()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		Subject: pkix.Name{CommonName: cn, Organization: orgs}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, DNSNames: dns, IPAddresses: ips,
	}
	der, _, err := signCert(tmpl, a.cert, key, a.key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certFile, certPEM(der), 0o600); err != nil {
		return err
	}
	return os.WriteFile(keyFile, keyPEM(key), 0o600)
}

// writeServingPKI writes, into certDir, kube-apiserver's serving certificate and the service
// account signing key under the names envtest looks for (it then generates neither), and the
// client certificate kube-apiserver presents to kubelets (kubelet-client.crt, in group
// system:masters). envtest's own serving certificate names only localhost and the bind
// address; pods on real nodes reach the API server through the kubernetes Service's ClusterIP
// and check its name as client-go's in-cluster configuration does, so the certificate must also
// carry that address and the Service's DNS names, as a real cluster's does.
func writeServingPKI(certDir string, ips []net.IP) (*authority, error) {
	ca, err := newAuthority()
	if err != nil {
		return nil, err
	}
	at := func(name string) string { return filepath.Join(certDir, name) }
	if err := ca.issue(at("apiserver.crt"), at("apiserver.key"), "kube-apiserver", nil, x509.ExtKeyUsageServerAuth,
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		append([]net.IP{net.IPv4(127, 0, 0, 1)}, ips...)); err != nil {
		return nil, err
	}
	if err := ca.issue(at("kubelet-client.crt"), at("kubelet-client.key"), "kube-apiserver-kubelet-client", []string{"system:masters"},
		x509.ExtKeyUsageClientAuth, nil, nil); err != nil {
		return nil, err
	}
	if err := os.WriteFile(at("harness-ca.crt"), ca.PEM, 0o644); err != nil {
		return nil, err
	}
	now := time.Now()
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	saDER, _, err := signCert(&x509.Certificate{Subject: pkix.Name{CommonName: "stork-harness-service-accounts"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}, nil, saKey, saKey)
	if err != nil {
		return nil, err
	}
	for name, data := range map[string][]byte{"sa-signer.crt": certPEM(saDER), "sa-signer.key": keyPEM(saKey)} {
		if err := os.WriteFile(at(name), data, 0o600); err != nil {
			return nil, err
		}
	}
	return ca, nil
}

// signCert signs tmpl with parentKey (self-signed when parent is nil).
func signCert(tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, parentKey *ecdsa.PrivateKey) ([]byte, *x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("signing %s: %w", tmpl.Subject.CommonName, err)
	}
	c, err := x509.ParseCertificate(der)
	return der, c, err
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func keyPEM(k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err) // an ECDSA P-256 key always marshals
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// HostAddress returns the address of the interface that holds the default route: reachable from
// pods on this machine's bridges, unlike loopback. A UDP "connection" sends no packet; it only
// makes the kernel pick the source address.
func HostAddress() (net.IP, error) {
	conn, err := net.Dial("udp4", "203.0.113.1:9")
	if err != nil {
		return nil, fmt.Errorf("finding this machine's address for real nodes (is there a default route?): %w", err)
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).IP, nil
}
