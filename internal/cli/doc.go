// Package cli holds ktrace's commands. Each command has an Options struct
// (IO streams, flag values), a NewCmdX constructor and an xRun function that
// does the work; tests call xRun directly with in-memory streams.
//
// Exit codes (documented in the README) live here and only here:
//
//	0 ok
//	1 findings or violations (report --fail, check)
//	2 usage error, bad input, or a local failure
//	3 inconclusive (check)
//	4 backend unreachable, timed out or unauthorised
package cli
