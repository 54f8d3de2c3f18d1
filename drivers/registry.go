package drivers

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Options is what a driver is made with.
type Options struct {
	// Client reads and writes Kubernetes objects (from caches where the process has them).
	Client client.Client
	// APIReader reads straight from the API server, for reads that must see the driver's own
	// recent writes (a cache may lag). Defaults to Client.
	APIReader client.Reader
	// Namespace is Stork's namespace, where drivers run their work pods.
	Namespace string
	// Log is the driver's logger.
	Log logr.Logger
	// Config holds driver-specific settings, from the stork command line or its config file.
	Config map[string]string
	// RESTConfig reaches the API server, for drivers that read objects Stork has no types
	// for (through a dynamic client). Nil in unit tests.
	RESTConfig *rest.Config
}

// Factory makes a driver.
type Factory func(Options) (Driver, error)

// registration is a factory and where its driver stands when several could own a volume.
type registration struct {
	factory Factory
	// priority orders drivers in a Set: lower asks first, so specific drivers (local,
	// longhorn) come before catch-alls (csi).
	priority int
}

// The registry is the one piece of package-level state: drivers add themselves from init.
var (
	registryMu sync.RWMutex
	registry   = map[string]registration{}
)

// Register makes a driver available under name. Drivers call it from init; it panics on a
// duplicate name, which is a programming error. Lower priorities are asked first about
// ownership.
func Register(name string, priority int, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("drivers: driver %q registered twice", name))
	}
	registry[name] = registration{factory: f, priority: priority}
}

// Registered lists the names of the registered drivers, sorted.
func Registered() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	return registeredLocked()
}

// Set is the drivers one process runs, in the order they are asked about ownership.
type Set struct {
	drivers []Driver
}

// New makes the named drivers, ordered by priority (then name).
func New(names []string, opts Options) (*Set, error) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	type made struct {
		d        Driver
		priority int
	}
	var all []made
	for _, name := range names {
		reg, ok := registry[name]
		if !ok {
			return nil, fmt.Errorf("unknown driver %q: registered drivers are %s", name, strings.Join(registeredLocked(), ", "))
		}
		d, err := reg.factory(opts)
		if err != nil {
			return nil, fmt.Errorf("making driver %q: %w", name, err)
		}
		if d.Name() != name {
			return nil, fmt.Errorf("driver registered as %q calls itself %q", name, d.Name())
		}
		all = append(all, made{d, reg.priority})
	}
	slices.SortStableFunc(all, func(a, b made) int {
		if a.priority != b.priority {
			return a.priority - b.priority
		}
		return strings.Compare(a.d.Name(), b.d.Name())
	})
	s := &Set{}
	for _, m := range all {
		s.drivers = append(s.drivers, m.d)
	}
	return s, nil
}

func registeredLocked() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// NewSet makes a Set of drivers already made, asked in the given order. Tests use it.
func NewSet(ds ...Driver) *Set { return &Set{drivers: ds} }

// All returns the drivers in the order they are asked.
func (s *Set) All() []Driver { return slices.Clone(s.drivers) }

// Get returns the driver with the given name.
func (s *Set) Get(name string) (Driver, bool) {
	for _, d := range s.drivers {
		if d.Name() == name {
			return d, true
		}
	}
	return nil, false
}

// For returns the first driver that owns the volume, or an error that names the claim
// (or volume) and the drivers asked.
func (s *Set) For(v Volume) (Driver, error) {
	for _, d := range s.drivers {
		if d.Owns(v) {
			return d, nil
		}
	}
	names := make([]string, len(s.drivers))
	for i, d := range s.drivers {
		names[i] = d.Name()
	}
	return nil, fmt.Errorf("%s is not owned by any enabled driver (asked: %s): enable its driver or pick a claim of a supported storage class", Describe(v), strings.Join(names, ", "))
}

// Describe names a volume for error messages: its claim, else its PersistentVolume.
func Describe(v Volume) string {
	switch {
	case v.Claim != nil:
		return fmt.Sprintf("PersistentVolumeClaim %s/%s", v.Claim.Namespace, v.Claim.Name)
	case v.PV != nil:
		return fmt.Sprintf("PersistentVolume %s", v.PV.Name)
	default:
		return "an empty volume reference"
	}
}

// As returns the driver as capability C, and whether it has it.
//
//	if s, ok := drivers.As[drivers.Snapshotter](d); ok { … }
func As[C any](d Driver) (C, bool) {
	c, ok := d.(C)
	return c, ok
}
