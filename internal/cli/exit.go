package cli

import (
	"errors"
	"strings"

	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/source/jaeger"
)

// Exit codes.
const (
	ExitOK           = 0
	ExitFindings     = 1
	ExitUsage        = 2
	ExitInconclusive = 3
	ExitBackend      = 4
)

// exitError carries an explicit exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// exitCode maps an error to the documented exit code.
func exitCode(err error) int {
	var ee *exitError
	var be *jaeger.BackendError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &be):
		return ExitBackend
	case errors.Is(err, file.ErrBadInput):
		return ExitUsage
	}
	return ExitUsage
}

// oneLine flattens an error message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
