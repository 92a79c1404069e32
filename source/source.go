// Package source names what every trace source gives ktrace: its traces,
// one at a time, as it reads them.
//
// The file readers (file.Traces, file.FileTraces) and the Jaeger client
// (jaeger.Client.Traces) all return a Traces, and internal/engine takes
// one, so a command reads any source the same way: range over it, stop
// at the first error (which ends the sequence as its last value).
package source

import (
	"iter"

	"github.com/ktrace-dev/ktrace/trace"
)

// Traces yields traces as a source reads them, each once; an error ends
// the sequence as its last value, with a nil trace. A trace yielded is the
// consumer's: the source does not change it afterwards.
type Traces = iter.Seq2[*trace.Trace, error]
