// Command etcd is the etcd server at the version pinned in go.mod, built for the
// test control plane (see hack/testbin.sh).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
