// Package straddr knows a string by where its bytes are. The readers
// share equal short strings among the spans they decode (trace.Strings),
// so a name seen before is found by its address, without hashing or
// comparing its bytes.
package straddr

import "unsafe"

// Addr is a string's address and length. Strings with equal Addrs are
// equal (a string's bytes never change, and a held address keeps them
// alive); equal strings may have different Addrs (copies).
type Addr struct {
	P *byte
	N int
}

// Of returns the Addr of s.
func Of(s string) Addr { return Addr{unsafe.StringData(s), len(s)} }

// Word returns the address as a number, for hashing.
func (a Addr) Word() uint64 { return uint64(uintptr(unsafe.Pointer(a.P))) }

// String returns the string at a.
func (a Addr) String() string { return unsafe.String(a.P, a.N) }
