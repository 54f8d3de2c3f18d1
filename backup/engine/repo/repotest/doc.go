// Package repotest makes backup repositories for tests: a fresh repository in a file:// store
// under the test's temporary directory.
//
// Layer: testkit. May import: lib, api, engine, drivers, kit, controllers, testkit.
package repotest
