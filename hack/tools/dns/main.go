// Command coredns is CoreDNS with only the plugins the real-node test tier's cluster DNS
// uses, so that it builds in a fraction of the time and dependencies of the full plugin set.
// The Corefile it serves is written by internal/harness (realnode.go).
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

// directives is the subset, in the order of CoreDNS's plugin.cfg, of the plugins imported
// above: the order of this list (not the Corefile's) is the order a query passes them.
var directives = []string{"bind", "ready", "health", "errors", "cache", "kubernetes"}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }
