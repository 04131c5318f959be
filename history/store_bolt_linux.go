package history

import (
	"errors"
	"os"
	"syscall"
)

// preallocate allocates the first size bytes of f on the disk, so that
// writing them later changes no file system metadata that an fsync would
// have to commit. A file system that cannot is left as it is.
func preallocate(f *os.File, size int64) error {
	err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) {
		return nil
	}
	return err
}

// datasync flushes f's data, and the metadata needed to read it back, to
// stable storage.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
