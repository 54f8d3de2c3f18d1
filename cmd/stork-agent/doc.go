// Command stork-agent is Stork's node agent. It runs on every node (a DaemonSet with the node's
// storage root mounted), reports the node's storage as a StorageNode object and does the
// VolumeTasks addressed to its node. The agent's work arrives with the local volumes driver;
// this version only identifies itself.
//
// Layer: cmd. May import: lib, api, engine, drivers, kit, controllers.
package main
