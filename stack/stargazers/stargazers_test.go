package stargazers

import (
	"errors"
	"testing"
	"time"
)

func TestFixtureAndExpected(t *testing.T) {
	f, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	logins := map[string]map[string]bool{}
	for i, e := range f.Events {
		if i > 0 && e.StarredAt.Before(f.Events[i-1].StarredAt) {
			t.Fatal("fixture not in event-time order")
		}
		if logins[e.User.Login] == nil {
			logins[e.User.Login] = map[string]bool{}
		}
		logins[e.User.Login][e.Repo] = true
	}
	both := 0
	for _, repos := range logins {
		if len(repos) == 2 {
			both++
		}
	}
	exp := Expected(f.Events)
	// 36 logins starred both; a third of them weeks apart.
	if both != 36 || len(exp) != 24 {
		t.Fatalf("%d logins starred both, %d expected results", both, len(exp))
	}
	for i := 1; i < len(exp); i++ {
		if exp[i-1].Login >= exp[i].Login {
			t.Fatal("expected results not sorted by login")
		}
	}
}

func TestExpectedWindowEdges(t *testing.T) {
	t0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := func(repo, login string, at time.Time) Starred {
		return Starred{Repo: repo, StarredAt: at, User: User{Login: login, ID: int64(len(login)), Type: "User"}}
	}
	got := Expected([]Starred{
		ev("kafka", "edge", t0), ev("jackdaw", "edge", t0.Add(Window)),
		ev("kafka", "late", t0), ev("jackdaw", "late", t0.Add(Window+time.Second)),
		ev("kafka", "same", t0), ev("kafka", "same", t0.Add(time.Hour)),
	})
	if len(got) != 1 || got[0].Login != "edge" {
		t.Errorf("got %+v", got)
	}
}

func TestAvroRoundTrip(t *testing.T) {
	f, _ := Load()
	e := f.Events[0].Event()
	b, err := Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0 || b[4] != SchemaID {
		t.Errorf("wire header % x", b[:5])
	}
	back, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.Data != e.Data || !back.CreatedAt.Equal(e.CreatedAt) || back.Type != "STARGAZERS" {
		t.Errorf("round trip:\n%+v\n%+v", back, e)
	}
	for _, bad := range [][]byte{nil, []byte("{json}"), {0, 0, 0, 0, 9, 1}, append([]byte{0, 0, 0, 0, 1}, 0xff, 0xff)} {
		if _, err := Decode(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(% x) = %v", bad, err)
		}
	}
}
