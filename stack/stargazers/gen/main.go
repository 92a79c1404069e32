// Command gen writes fixture.json: a deterministic stand-in for a recorded
// GitHub stargazers timeline of apache/kafka and FundingCircle/jackdaw,
// used offline by github-source. It has the shape of the GitHub API's
// answers (application/vnd.github.star+json) and a realistic overlap: some
// logins starred both repositories within 10 days, some weeks apart.
//
//	go run ./stack/stargazers/gen > stack/stargazers/fixture.json
//
// `ktrace stack` with --live pages the real API instead.
package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"time"

	"github.com/ktrace-dev/ktrace/stack/stargazers"
)

var syllables = []string{"ka", "ro", "mi", "ten", "jo", "vel", "dar", "qu", "sen", "ix", "lo", "bra", "zed", "an", "per", "tu", "fi", "gor", "ne", "sal"}

func login(r *rand.Rand, used map[string]bool) string {
	for {
		n := 2 + r.IntN(2)
		s := ""
		for i := 0; i < n; i++ {
			s += syllables[r.IntN(len(syllables))]
		}
		if r.IntN(3) == 0 {
			s += fmt.Sprint(r.IntN(99))
		}
		if !used[s] {
			used[s] = true
			return s
		}
	}
}

func user(login string, id int64, r *rand.Rand) stargazers.User {
	typ := "User"
	if r.IntN(25) == 0 {
		typ = "Organization"
	}
	return stargazers.User{
		Login: login, ID: id, NodeID: fmt.Sprintf("MDQ6VXNlcj%07d", id),
		AvatarURL:  fmt.Sprintf("https://avatars.githubusercontent.com/u/%d?v=4", id),
		URL:        "https://api.github.com/users/" + login,
		HTMLURL:    "https://github.com/" + login,
		Type:       typ,
		SiteAdmin:  false,
		GravatarID: "",
	}
}

func main() {
	r := rand.New(rand.NewPCG(2019, 9))
	start := time.Date(2019, 3, 1, 0, 0, 0, 0, time.UTC)
	span := 90 * 24 * time.Hour
	used := map[string]bool{}
	var events []stargazers.Starred
	id := int64(1000)
	at := func() time.Time { return start.Add(time.Duration(r.Int64N(int64(span)))).Truncate(time.Second) }
	add := func(repo string, u stargazers.User, t time.Time) {
		events = append(events, stargazers.Starred{Repo: repo, StarredAt: t, User: u})
	}
	// Only apache/kafka, only jackdaw, and both.
	for i := 0; i < 180; i++ {
		id += 1 + r.Int64N(5000)
		add("kafka", user(login(r, used), id, r), at())
	}
	for i := 0; i < 30; i++ {
		id += 1 + r.Int64N(5000)
		add("jackdaw", user(login(r, used), id, r), at())
	}
	for i := 0; i < 36; i++ {
		id += 1 + r.Int64N(5000)
		u := user(login(r, used), id, r)
		t := at()
		var gap time.Duration
		if i%3 == 2 { // a third star the other repository weeks apart
			gap = time.Duration(11+r.IntN(40)) * 24 * time.Hour
		} else { // the rest within the window, some at its very edge
			gap = time.Duration(r.Int64N(int64(10 * 24 * time.Hour)))
			if i%6 == 0 {
				gap = 10*24*time.Hour - time.Minute
			}
		}
		if r.IntN(2) == 0 {
			gap = -gap
		}
		first, second := "kafka", "jackdaw"
		if r.IntN(2) == 0 {
			first, second = second, first
		}
		add(first, u, t)
		add(second, u, t.Add(gap).Truncate(time.Second))
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].StarredAt.Before(events[j].StarredAt) })
	f := stargazers.Fixture{Repos: map[string]string{"kafka": "apache/kafka", "jackdaw": "FundingCircle/jackdaw"}, Events: events}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(f); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
