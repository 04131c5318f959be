//go:build !linux

package history

import "os"

// preallocate does nothing where there is no portable way to allocate a
// file's blocks ahead of writing them.
func preallocate(*os.File, int64) error { return nil }

// datasync flushes f to stable storage.
func datasync(f *os.File) error { return f.Sync() }
