package services

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A loopback stand-in for the GitHub API's stargazers endpoint: 250
// stargazers per repository, 100 per page, starred_at only with the star
// media type and only for the right token.
func TestFetchLivePages(t *testing.T) {
	var pages int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer gh-secret" {
			http.Error(w, "bad credentials", http.StatusUnauthorized)
			return
		}
		if r.Header.Get("Accept") != "application/vnd.github.star+json" || !strings.HasSuffix(r.URL.Path, "/stargazers") {
			http.Error(w, "want the star media type", http.StatusBadRequest)
			return
		}
		pages++
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		var items []map[string]any
		for i := (page - 1) * 100; i < page*100 && i < 250; i++ {
			items = append(items, map[string]any{
				"starred_at": time.Date(2020, 1, 1, 0, 0, i, 0, time.UTC).Format(time.RFC3339),
				"user":       map[string]any{"login": fmt.Sprintf("u%d", i), "id": i + 1, "type": "User"},
			})
		}
		json.NewEncoder(w).Encode(items)
	}))
	defer srv.Close()
	var logged []string
	logf := func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
	got, err := fetchLive(context.Background(), SourceOptions{Live: true, Token: "gh-secret", APIBase: srv.URL}, logf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 500 || pages != 6 {
		t.Fatalf("%d stargazers in %d pages, want 500 in 6", len(got), pages)
	}
	if got[0].User.Login != "u0" || got[0].StarredAt.IsZero() {
		t.Errorf("first stargazer %+v", got[0])
	}
	for _, l := range logged {
		if strings.Contains(l, "gh-secret") {
			t.Errorf("token logged: %q", l)
		}
	}
	if _, err := fetchLive(context.Background(), SourceOptions{Live: true, Token: "wrong", APIBase: srv.URL}, logf); err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("bad token: %v", err)
	}
	if _, err := fetchLive(context.Background(), SourceOptions{Live: true}, logf); err != ErrNoToken {
		t.Errorf("no token: %v", err)
	}
}

func TestWindowStore(t *testing.T) {
	s := newWindowStore()
	day := int64(24 * time.Hour / time.Millisecond)
	a := entry{Side: "k", Login: "x", EventMs: 0}
	s.add(a)
	if m := s.matches(entry{Side: "j", Login: "x", EventMs: 10 * day}); len(m) != 1 {
		t.Errorf("edge of the window: %v", m)
	}
	if m := s.matches(entry{Side: "j", Login: "x", EventMs: 10*day + 1}); len(m) != 0 {
		t.Errorf("outside the window: %v", m)
	}
	if m := s.matches(entry{Side: "k", Login: "x", EventMs: 1}); len(m) != 0 {
		t.Errorf("same side matched: %v", m)
	}
	b := entry{Side: "j", Login: "x", EventMs: day}
	s.add(b)
	s.undo(b)
	if len(s.byLogin["x"]) != 1 {
		t.Errorf("undo left %v", s.byLogin["x"])
	}
	// Time is kept per partition: another partition's later events evict
	// nothing of this one's.
	s.evict(map[int32]int64{3: 400 * day})
	if len(s.byLogin["x"]) != 1 {
		t.Errorf("another partition's time evicted %v", a)
	}
	s.evict(map[int32]int64{0: 11 * day})
	if len(s.byLogin["x"]) != 1 {
		t.Errorf("evicted within the window and its day of grace: %v", s.byLogin)
	}
	s.evict(map[int32]int64{0: 5 * day}) // time does not go back
	s.add(entry{Side: "j", Login: "y", Partition: 3, EventMs: 399 * day})
	s.evict(map[int32]int64{0: 20 * day})
	if len(s.byLogin["x"]) != 0 || len(s.byLogin["y"]) != 1 {
		t.Errorf("after partition 0 reached day 20: %v", s.byLogin)
	}
}
