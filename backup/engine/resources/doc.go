// Package resources handles the Kubernetes objects of a backup: the namespace-scoped objects of
// the captured application, stored next to its volume data so that another cluster can rebuild it.
//
// The life of an object:
//
//   - Collect reads the objects of one namespace from the source cluster, leaves out what the
//     target cluster makes by itself (objects owned by a controller, service-account tokens,
//     the "default" ServiceAccount, the kube-root-ca.crt ConfigMap), and Strips them of the
//     fields that belong to the source cluster (uids, resource versions, status, cluster IPs,
//     node ports, bound volume names, ...).
//   - WriteDir stores them in a backup tree, one indented JSON file per object at
//     "<Kind>/<name>.json"; Parse reads such a file back and checks it is what its path says.
//   - Prepare maps the objects for the target cluster (namespaces, claim names, storage classes,
//     included and excluded kinds) and sorts them in restore order.
//   - Apply makes one prepared object exist in the target cluster according to the Restore's
//     existing-object policy, and is idempotent for one Restore: a controller restarted midway
//     calls it again for every object and gets the same results.
//
// # A fixed list of kinds
//
// Stork backs up and restores exactly the kinds listed in Kinds, in that order, and nothing
// else: not "every namespaced resource discovery returns". The reason is least privilege. Stork's
// controller is granted read and write rights on exactly these kinds rather than on "*", so a
// compromised or misused controller can do less, and an operator can read from its ClusterRole
// what a restore may touch. The order is the dependency order of a restore: the Namespace first,
// then what pods refer to (ServiceAccounts, ConfigMaps, Secrets, PersistentVolumeClaims), then
// Services and policies, then the workloads, then what refers to workloads (autoscalers,
// Ingresses).
//
// RBAC kinds (Role, RoleBinding) are deliberately left out. Creating a RoleBinding requires the
// "bind" or "escalate" right on the permissions it grants; a controller holding those rights
// would let anyone allowed to create a Restore grant themselves any permission by restoring a
// crafted backup. Custom resources are left out for the same reason as "*": their set is open,
// and restoring them would require rights on every group in the cluster. Both can be recreated
// by the application's own deployment tooling.
//
// The controller therefore needs, on each namespaced kind of Kinds, get and list (Collect) and
// get, create and patch (Apply; patch is server-side apply, used only with existingObjectPolicy
// Update); on namespaces, get (Collect and Apply) and create (Apply): an existing namespace is
// never modified. It needs no update, delete or watch on any of them.
//
// # What is not rewritten
//
// Prepare maps namespaces in metadata and claim and storage-class names where the listed kinds
// refer to them. References inside specs to other namespaces (a NetworkPolicy's
// namespaceSelector, an Ingress's annotations) are kept as they are: they name things outside
// the backup.
//
// Layer: engine. May import: lib, api, engine. No controller-runtime or client-go.
package resources
