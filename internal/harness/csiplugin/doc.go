// Package csiplugin is a CSI plugin for tests with a real data path: a volume is a directory, a
// snapshot a full copy of one, and creating a volume from a snapshot or another volume copies
// the data. The real CSI sidecars (csi-provisioner, csi-snapshotter) drive it over a unix socket,
// so that tests see what Kubernetes and the sidecars really do, and can look at and change the
// data of a volume through VolumeDir.
//
// All state lives under one root directory (see store.go), so a plugin started again on the
// same root carries on where the last one stopped. It serves the Identity and Controller
// services, and a Node service that publishes a volume as a symbolic link to its directory.
//
// Tests inject failures through the real sidecars with the parameter ParamFail in a
// StorageClass or VolumeSnapshotClass.
//
// Layer: testkit. May import: lib, api, engine, drivers, kit, controllers, testkit.
package csiplugin
