//go:build !unix

package jaeger

import "os"

// processAlive: on Windows, opening a process fails once it has exited.
func processAlive(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Release()
}
