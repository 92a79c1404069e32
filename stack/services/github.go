package services

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ktrace-dev/ktrace/stack/stargazers"
)

// LiveRepos are the repositories --live pages, by fixture name.
var LiveRepos = map[string]string{"kafka": "apache/kafka", "jackdaw": "FundingCircle/jackdaw"}

// ErrNoToken is returned when --live is asked for without a token.
var ErrNoToken = errors.New("--live needs a GitHub token in GITHUB_TOKEN")

// fetchLive pages GET /repos/{repo}/stargazers with the star media type
// (which adds starred_at) for both repositories. The token is sent only in
// the Authorization header and never logged.
func fetchLive(ctx context.Context, opts SourceOptions, logf func(string, ...any)) ([]stargazers.Starred, error) {
	if opts.Token == "" {
		return nil, ErrNoToken
	}
	base := strings.TrimRight(opts.APIBase, "/")
	if base == "" {
		base = "https://api.github.com"
	}
	client := &http.Client{Timeout: 30 * time.Second}
	var out []stargazers.Starred
	for name, repo := range LiveRepos {
		for page := 1; ; page++ {
			url := fmt.Sprintf("%s/repos/%s/stargazers?per_page=100&page=%d", base, repo, page)
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Accept", "application/vnd.github.star+json")
			req.Header.Set("Authorization", "Bearer "+opts.Token)
			req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
			resp, err := client.Do(req)
			if err != nil {
				return nil, fmt.Errorf("github %s page %d: %w", repo, page, err)
			}
			body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
			resp.Body.Close()
			if err != nil {
				return nil, fmt.Errorf("github %s page %d: %w", repo, page, err)
			}
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("github %s page %d: %s", repo, page, resp.Status)
			}
			var items []struct {
				StarredAt time.Time       `json:"starred_at"`
				User      stargazers.User `json:"user"`
			}
			if err := json.Unmarshal(body, &items); err != nil {
				return nil, fmt.Errorf("github %s page %d: %w", repo, page, err)
			}
			for _, it := range items {
				out = append(out, stargazers.Starred{Repo: name, StarredAt: it.StarredAt, User: it.User})
			}
			logf("github %s: page %d, %d stargazers so far", repo, page, len(out))
			if len(items) < 100 {
				break
			}
		}
	}
	return out, nil
}
