package file

import (
	"fmt"
	"io"
	"os"
)

// MaxConfig is the largest configuration file (a check spec, an owners
// mapping) ReadConfig accepts: 1 MiB, far more than any real one.
const MaxConfig = 1 << 20

// ReadConfig reads a small configuration file whole. It takes regular
// files only (not a FIFO that may never end, nor a device such as
// /dev/zero) of at most MaxConfig bytes; errors name the path.
func ReadConfig(path string) ([]byte, error) {
	// Stat before opening: opening a FIFO waits for a writer.
	if fi, err := os.Stat(path); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if fi.Size() > MaxConfig {
		return nil, fmt.Errorf("%s: %d bytes; a configuration file is at most %d (1 MiB)", path, fi.Size(), MaxConfig)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxConfig+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > MaxConfig { // it grew while we read it
		return nil, fmt.Errorf("%s: more than %d bytes; a configuration file is at most 1 MiB", path, MaxConfig)
	}
	return b, nil
}
