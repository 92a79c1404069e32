package engine

import (
	"strings"
	"testing"
)

// TestAddr: a string's addr is its own, a copy's differs, a shorter
// string at the same address differs, and String gives the string back.
func TestAddr(t *testing.T) {
	s := "messaging.destination.name"
	c := strings.Clone(s)
	switch {
	case addrOf(s) != addrOf(s[:]) || addrOf(s).string() != s:
		t.Fatal("a string's addr is not its own")
	case addrOf(s) == addrOf(c):
		t.Fatal("a copy has the same addr")
	case addrOf(s) == addrOf(s[:9]) || addrOf(s).word() != addrOf(s[:9]).word():
		t.Fatal("a prefix at the same address: the addrs must differ, the words not")
	}
}
