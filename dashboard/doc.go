// Package dashboard is Stork's read-only web dashboard, served by the controller behind its own
// Service (stork-dashboard): per application (SnapshotSchedule) the RPO and RTO against their
// objectives, the backup history with sizes and durations (tables and plots), restore drills,
// work in progress with its progress, and the backup locations' health.
//
// Users sign in with their own Kubernetes bearer token. The dashboard asks the API server who
// the token belongs to (TokenReview) and, for every namespace and kind it would show, whether
// that user may list it (SubjectAccessReview): a user sees exactly what `kubectl get` would
// show them, and nothing at all without a valid token. It reads the objects from the
// controller's cache, so page loads cost the API server only the (cached) reviews.
//
// Pages are rendered on the server with html/template; plots are inline SVG made here, so the
// browser runs no script at all.
//
// Layer: controllers. May import: lib, api, engine, drivers, kit, controllers (same top-level directory).
package dashboard
