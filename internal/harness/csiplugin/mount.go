package csiplugin

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// bindMount publishes a volume's directory at target as a bind mount, read-only if asked. The
// kubelet makes target's parent; target itself is the plugin's to make. Publishing again what
// is published is success, as the CSI spec asks.
func bindMount(dir, target string, readOnly bool, id string) (*csi.NodePublishVolumeResponse, error) {
	mounted, err := isMountPoint(target)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "publishing volume %s: %v", id, err)
	}
	if mounted {
		return &csi.NodePublishVolumeResponse{}, nil
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return nil, status.Errorf(codes.Internal, "publishing volume %s: making %s: %v", id, target, err)
	}
	if err := syscall.Mount(dir, target, "", syscall.MS_BIND, ""); err != nil {
		return nil, status.Errorf(codes.Internal, "publishing volume %s: bind-mounting %s at %s: %v", id, dir, target, err)
	}
	if readOnly {
		// A bind mount takes MS_RDONLY only on a remount.
		if err := syscall.Mount("", target, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			_ = syscall.Unmount(target, 0)
			return nil, status.Errorf(codes.Internal, "publishing volume %s read-only at %s: %v", id, target, err)
		}
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

// unmount undoes bindMount: target is unmounted if it is mounted, then removed. A target that
// is gone already is success.
func unmount(target string) error {
	mounted, err := isMountPoint(target)
	if err != nil {
		return status.Errorf(codes.Internal, "unpublishing %s: %v", target, err)
	}
	if mounted {
		if err := syscall.Unmount(target, 0); err != nil {
			return status.Errorf(codes.Internal, "unmounting %s: %v", target, err)
		}
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return status.Errorf(codes.Internal, "unpublishing %s: %v", target, err)
	}
	return nil
}

// isMountPoint reports whether path is a mount point in this process's mount namespace. The
// device number cannot tell: a bind mount of a directory of the same file system has the same.
func isMountPoint(path string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, fmt.Errorf("reading the mount table: %w", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		// Field 5 is the mount point, with spaces written as \040.
		if fields := strings.Fields(s.Text()); len(fields) > 4 && strings.ReplaceAll(fields[4], `\040`, " ") == path {
			return true, nil
		}
	}
	return false, s.Err()
}
