package version

// BuildTags are the build tags Stork's commands are built with (make build, make images, the
// e2e harness and the benchmarks). disable_grpc_modules is cloud.google.com/go/storage's
// documented opt-out of gRPC DirectPath (xDS and Envoy's protobuf packages, about 19 MB of
// storkctl's 115 MB and 3.6 MiB of its resident pages at start-up): the gcs:// backend goes
// through gocloud's HTTP client, which never uses them. restic and wal-g build with it too.
const BuildTags = "disable_grpc_modules"
