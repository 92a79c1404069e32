package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	sj "github.com/ktrace-dev/ktrace/stack/jaeger"
)

// procStat is what /proc/PID/stat says of a process's CPU time (user and
// kernel) and its minor page faults.
type procStat struct {
	user, system time.Duration
	faults       int64
}

func (a procStat) cpu() time.Duration { return a.user + a.system }

func (a procStat) String() string {
	return fmt.Sprintf("%s user, %s kernel; %d page faults", a.user, a.system, a.faults)
}

func (a procStat) add(b procStat) procStat {
	return procStat{a.user + b.user, a.system + b.system, a.faults + b.faults}
}

func (a procStat) sub(b procStat) procStat {
	return procStat{a.user - b.user, a.system - b.system, a.faults - b.faults}
}

func statOf(pid int) procStat {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	check(err)
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	minflt, _ := strconv.ParseInt(f[7], 10, 64)
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return procStat{time.Duration(utime) * time.Second / 100, time.Duration(stime) * time.Second / 100, minflt} // USER_HZ
}

// residentPeak is a process's peak resident memory so far.
func residentPeak(pid int) int64 { return statusBytes(pid, "VmHWM") }

// resident is a process's resident memory now.
func resident(pid int) int64 { return statusBytes(pid, "VmRSS") }

// statusBytes reads a field of /proc/PID/status given in kB.
func statusBytes(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	check(err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func waitHTTP(ctx context.Context, url string) {
	deadline := time.Now().Add(3 * time.Minute) // under callgrind, a member starts in about 20 s
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			check(fmt.Errorf("%s did not answer within 3 minutes", url))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeAddr() string {
	p, err := sj.FreePort()
	check(err)
	return "127.0.0.1:" + strconv.Itoa(p)
}
