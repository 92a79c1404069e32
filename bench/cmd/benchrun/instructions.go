package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ktrace-dev/ktrace/trace"
)

// instructionRuns counts the instructions members execute per span, with
// 1, 2 and 4 members under callgrind on the same records: the scale-out
// cost in a measure that, unlike CPU time, does not move with what the
// VM charges for a page fault or with what else the machine runs.
// Callgrind runs a member about fifty times slower: a run of the
// default 500,000 spans takes about 13 minutes.
func instructionRuns(ctx context.Context, work, bin string, ts []trace.Trace, perRecord int) {
	if _, err := exec.LookPath("callgrind_control"); err != nil {
		check(fmt.Errorf("-instructions needs valgrind (Debian's package valgrind): %w", err))
	}
	cluster, brokers := newBroker()
	defer cluster.Close()
	recs, n := exporterRecords(ts, perRecord)
	fmt.Fprintf(os.Stderr, "instructions: %d spans in %d records of about %d spans, members under callgrind\n", n, len(recs), perRecord)
	var one, oneWork float64
	for _, members := range []int{1, 2, 4} {
		r := ktraceStream(ctx, work, bin, cluster, brokers, recs, n, len(ts), members, how{callgrind: true})
		perSpan, work := float64(r.instructions)/float64(n), float64(r.instructions-r.idle)/float64(n)
		if members == 1 {
			one, oneWork = perSpan, work
		}
		record(fmt.Sprintf("ktrace stream, %d member(s), under callgrind", members), fmt.Sprintf("%.0f instructions/span", perSpan),
			fmt.Sprintf("%.2f× one member's (goal ≤ 1.2); less what the members execute idle as long (%.0f a span): %.0f, %.2f× one member's; %d instructions in all, %s wall; %d late spans",
				perSpan/one, float64(r.idle)/float64(n), work, work/oneWork, r.instructions, r.wall.Round(time.Second), r.late)+r.caveat())
	}
}

// callgrindKeep is where -instructions keeps the members' counts, if
// anywhere.
var callgrindKeep string

// zeroInstructions sets a member's count of instructions to zero, when it
// runs under callgrind.
func (m *member) zeroInstructions() {
	if m.callgrind != "" {
		check(exec.Command("callgrind_control", "-z", strconv.Itoa(m.cmd.Process.Pid)).Run())
	}
}

// instructions is how many instructions a member under callgrind has
// executed since its count was set to zero: callgrind writes them to a
// file of their own (the dumps are numbered from 1); 0 for a bare
// member.
func (m *member) instructions() int64 {
	if m.callgrind == "" {
		return 0
	}
	check(exec.Command("callgrind_control", "-d", strconv.Itoa(m.cmd.Process.Pid)).Run())
	m.dumps++
	name := fmt.Sprintf("%s.%d", m.callgrind, m.dumps)
	b, err := os.ReadFile(name)
	check(err)
	if callgrindKeep != "" { // for callgrind_annotate: exact counts per line
		check(os.WriteFile(filepath.Join(callgrindKeep, filepath.Base(name)), b, 0o644))
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "totals: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			check(err)
			return n
		}
	}
	check(fmt.Errorf("%s: no totals line", name))
	return 0
}
