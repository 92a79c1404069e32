package straddr

import (
	"strings"
	"testing"
)

// TestAddr: a string's Addr is its own, a copy's differs, a shorter
// string at the same address differs, and String gives the string back.
func TestAddr(t *testing.T) {
	s := "messaging.destination.name"
	c := strings.Clone(s)
	switch {
	case Of(s) != Of(s[:]) || Of(s).String() != s:
		t.Fatal("a string's Addr is not its own")
	case Of(s) == Of(c):
		t.Fatal("a copy has the same Addr")
	case Of(s) == Of(s[:9]) || Of(s).Word() != Of(s[:9]).Word():
		t.Fatal("a prefix at the same address: the Addrs must differ, the words not")
	}
}
