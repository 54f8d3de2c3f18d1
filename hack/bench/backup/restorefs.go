package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Where restores write. A restore measured in the work directory measures that file system's
// state as much as the tool: on this project's machine (ext4 without a journal) the steps before
// a restore delete tens of thousands of files (the previous restored tree, the dataset replaced
// by its cp -a copy), and ext4 then skips every inode freed in the last five minutes whose
// inode-table block is still dirty, scanning bitmaps block by block: 64% of a restore's CPU
// (perf, 2026-12-07), and the copy floor moving from 3.9 to 7.5 s between repetitions. A
// disaster-recovery restore writes into a new, empty volume, so by default (as root) each
// restore gets a freshly made ext4 on a loop device (direct I/O), as a new PVC would be.
const (
	restoreFresh = "fresh-ext4"
	restoreWork  = "work-dir"
)

// restoreTarget prepares where the next restore writes (a directory that does not exist yet)
// and returns how to release it (unmount and delete the image; idempotent).
func (b *bench) restoreTarget(ctx context.Context) (string, func() error, error) {
	dir := filepath.Join(b.opt.work, "restore")
	if b.opt.restoreFS == restoreWork {
		if err := os.RemoveAll(dir); err != nil {
			return "", nil, err
		}
		return dir, func() error { return os.RemoveAll(dir) }, nil
	}
	img, mnt := dir+".img", dir+".mnt"
	if err := b.releaseRestoreFS(ctx, img, mnt); err != nil { // a previous run's, if it was killed
		return "", nil, err
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		return "", nil, err
	}
	// The dataset fills -restore-fs-fill percent of the data blocks, plus 1 GiB for the file
	// system's own (inode tables, journal). Why it matters: ext4 makes a writer flush every
	// delayed-allocation page and wait for the disk once dirty data exceeds half the free
	// space (ext4_nonda_switch). At 80% full that hit every tool that writes the dataset faster
	// than background writeback drains it (ours, the copy) after about 1.3 GiB: 0.5–0.9 s idle
	// on this machine's disk, a measure of the disk and the fill, not of the tool. The default
	// 25% leaves it out; -restore-fs-fill 80 puts it back. The image is sparse.
	if err := os.Truncate(img, b.ds.bytes*100/int64(b.opt.restoreFill)+1<<30); err != nil {
		return "", nil, err
	}
	inodes := fmt.Sprint(len(b.ds.files)*5/4 + 100_000)
	// Inode tables and journal are written now, not by a kernel thread during the restore.
	if _, err := output(ctx, "", "mkfs.ext4", "-q", "-F", "-N", inodes, "-E", "lazy_itable_init=0,lazy_journal_init=0", img); err != nil {
		return "", nil, fmt.Errorf("making the restore's file system: %w", err)
	}
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return "", nil, err
	}
	// The loop device reads and writes its image with O_DIRECT, as a volume's block device
	// would be written: through one page cache, not the restored file system's and then the
	// image's again (which doubled the dirty pages and made restores wait on this disk).
	dev, err := output(ctx, "", "losetup", "--direct-io=on", "--find", "--show", img)
	if err != nil {
		return "", nil, fmt.Errorf("attaching %s to a loop device: %w", img, err)
	}
	if _, err := output(ctx, "", "mount", dev, mnt); err != nil {
		_, _ = output(ctx, "", "losetup", "--detach", dev)
		return "", nil, fmt.Errorf("mounting %s: %w", img, err)
	}
	return filepath.Join(mnt, "restore"), func() error { return b.releaseRestoreFS(context.WithoutCancel(ctx), img, mnt) }, nil
}

// releaseRestoreFS unmounts, detaches and deletes a restore's file system, skipping what is
// not there.
func (b *bench) releaseRestoreFS(ctx context.Context, img, mnt string) error {
	if err := exec.CommandContext(ctx, "mountpoint", "-q", mnt).Run(); err == nil {
		if _, err := output(ctx, "", "umount", mnt); err != nil {
			return fmt.Errorf("unmounting %s: %w", mnt, err)
		}
	}
	// Then the loop device (umount leaves a device that losetup attached).
	if devs, err := output(ctx, "", "losetup", "--associated", img, "--output", "NAME", "--noheadings"); err == nil {
		for _, dev := range strings.Fields(devs) {
			_, _ = output(ctx, "", "losetup", "--detach", dev)
		}
	}
	for _, p := range []string{img, mnt} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// defaultRestoreFS is fresh-ext4 where it can be made (root, mkfs.ext4), else the work directory.
func defaultRestoreFS() string {
	if _, err := exec.LookPath("mkfs.ext4"); err == nil && os.Getuid() == 0 {
		return restoreFresh
	}
	return restoreWork
}
