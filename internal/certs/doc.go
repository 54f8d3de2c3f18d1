// Package certs keeps the serving certificates of Stork's own servers — the admission webhook,
// the dashboard and the scheduler extender, one Rotator and one Secret each: a private CA and a
// serving certificate it signs (and, for the extender, a client certificate for kube-scheduler),
// written to the directory the server reads, and for the webhook the CA published as the
// caBundle of Stork's MutatingWebhookConfigurations. Serve (with ServerTLS and ServerErrorLog)
// runs the dashboard's and the extender's HTTP servers on them.
//
// It is written by hand on the standard library (crypto/x509, crypto/ecdsa) rather than built on
// open-policy-agent/cert-controller, the usual library for this, because that pins an older
// controller-runtime than Stork's; what Stork needs takes about two hundred lines.
//
// # Rotation
//
// A Rotator is level-based: Ensure compares what is stored with what should be and writes only
// the difference, so running it again changes nothing. Every replica runs it (the webhook is
// served by all of them), once before the manager starts and then every hour; the only shared
// state is the Secret, written with create-if-absent and resourceVersion preconditions, and a
// replica that loses a race reads again.
//
// The CA is valid for a year and the serving certificate for 90 days; each is renewed when less
// than a third of its validity remains. A new CA does not replace the old one in the caBundle:
// the Secret's ca.crt holds the current CA first and every older CA that has not expired, and
// that whole bundle is what the API server trusts. The serving certificate moves to the new CA
// at its own next renewal, by which time every API server has the new bundle, so rotating the CA
// never breaks a connection. A serving certificate is also renewed at once when its names differ
// from the Rotator's, or when it no longer verifies against the bundle.
//
// Each round writes the Secret first, then the caBundles, then the files, so that the API server
// trusts a certificate before any replica serves it.
//
// # Wiring
//
// controller-runtime's webhook server loads tls.crt and tls.key from its CertDir when it starts
// and fails when they are missing, so the first Ensure runs before the manager starts (with the
// manager's uncached API reader, which works before then), and the Rotator is added to the
// manager for the hourly rounds:
//
//	rot := &certs.Rotator{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), …}
//	if err := rot.Ensure(ctx); err != nil { … }
//	mgr.Add(rot)
//	mgr.AddReadyzCheck("webhook-certs", rot.Ready)
//
// Layer: kit. May import: lib, api, engine, drivers, kit.
package certs
