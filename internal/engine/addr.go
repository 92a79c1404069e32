package engine

// The readers share equal short strings among the spans they decode
// (trace.Strings), so a name seen before is found by its address, without
// hashing or comparing its bytes.

import "unsafe"

// addr is a string's address and length. Strings with equal addrs are
// equal (a string's bytes never change, and a held address keeps them
// alive); equal strings may have different addrs (copies).
type addr struct {
	P *byte
	N int
}

// addrOf returns the addr of s.
func addrOf(s string) addr { return addr{unsafe.StringData(s), len(s)} }

// word returns the address as a number, for hashing.
func (a addr) word() uint64 { return uint64(uintptr(unsafe.Pointer(a.P))) }

// string returns the string at a.
func (a addr) string() string { return unsafe.String(a.P, a.N) }
