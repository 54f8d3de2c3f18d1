// Package agent is the node side of the local driver, run by stork-agent on every node: it keeps
// the node's StorageNode (topology, capacity, health conditions) and a Lease up to date, and does
// the VolumeTasks addressed to its node — snapshots, snapshot deletions, restores, uploads of
// snapshots to a BackupLocation and downloads of backups into new volumes — on the node's
// storage root, reporting progress and results in the tasks' status.
//
// Layout of a storage root:
//
//	<root>/volumes/<pv>              volumes made by restores and downloads
//	<root>/.stork/snapshots/<id>     complete snapshots
//	<root>/.stork/work/<task uid>    copies in progress, renamed into place when complete
//	<root>/.stork/restored/<uid>     marks a restore's or download's volume directory as that task's own
//	<root>/.stork/probe-<node>       the health probe's scratch file (one per node: a root
//	                                 may be seen by several nodes' agents)
//	<root>/.stork/cache/repos/<hash>  sealed snapshot manifests of each store the uploads and
//	                                 downloads use, kept between tasks (repo.OpenOptions.CacheDir)
//
// Every result becomes visible by a rename after its data was synced, so an agent killed at any
// moment leaves either nothing or a complete snapshot or volume; a task it was running is
// started again by the next agent process (up to a bounded number of attempts).
//
// Layer: drivers. May import: lib, api, engine, drivers.
package agent
