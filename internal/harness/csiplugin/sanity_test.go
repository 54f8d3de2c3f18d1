package csiplugin

import (
	"path/filepath"
	"testing"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
)

// TestSanity runs csi-test's conformance suite against the plugin, as upstream drivers do.
func TestSanity(t *testing.T) {
	c := start(t, "")
	cfg := sanity.NewTestConfig()
	cfg.Address = c.plugin.Endpoint()
	cfg.TargetPath = filepath.Join(t.TempDir(), "target")
	cfg.StagingPath = filepath.Join(t.TempDir(), "staging")
	cfg.TestVolumeSize = 16 << 20
	cfg.IdempotentCount = 3
	ctx := sanity.GinkgoTest(&cfg)
	defer ctx.Finalize()

	gomega.RegisterFailHandler(ginkgo.Fail)
	_, reporter := ginkgo.GinkgoConfiguration()
	reporter.Succinct = !testing.Verbose()
	reporter.NoColor = true // go test output is a log, not a terminal
	ginkgo.RunSpecs(t, "CSI sanity of the test plugin", reporter)
}
