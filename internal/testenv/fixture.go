package testenv

import (
	"testing"

	"github.com/ktrace-dev/ktrace/fixtures"
	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/trace"
)

// Fixture reads the bundled trace set name.
func Fixture(t testing.TB, name string) *trace.Set {
	t.Helper()
	r, err := fixtures.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var set trace.Set
	if _, err := file.Read(r, name, &set, &trace.Resources{}); err != nil {
		t.Fatal(err)
	}
	return &set
}
