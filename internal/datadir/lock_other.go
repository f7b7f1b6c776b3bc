//go:build !unix

package datadir

import "os"

// Without flock there is no lock that the OS releases on a crash; a lock
// file alone would stay behind after kill -9 and block every restart. The
// caller gets ErrLockUnsupported and says that one writer is not enforced.
func tryLock(*os.File) (bool, error) { return false, ErrLockUnsupported }

func unlock(*os.File) {}
