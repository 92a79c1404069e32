// Package stargazers holds the data of the stargazers stack: the GitHub
// stargazer events of two repositories, their Avro encoding on the source
// topics, and the answer the join must give.
package stargazers

import (
	"bytes"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hamba/avro/v2"
)

// Topics of the stack.
const (
	TopicKafka   = "github-avro-stargazers-kafka"
	TopicJackdaw = "github-avro-stargazers-jackdaw"
	TopicFlat    = "stargazers-flat"
	TopicResults = "stargazers-results"
	// TopicJoinStore is the join's window-store changelog (internal).
	TopicJoinStore = "stargazers-join-store-changelog"
)

// Window is the join window: stars of both repositories by one login at
// most this far apart (event time) are joined.
const Window = 10 * 24 * time.Hour

// User is the GitHub API's stargazer user object.
type User struct {
	Login      string `json:"login" avro:"login"`
	ID         int64  `json:"id" avro:"id"`
	NodeID     string `json:"node_id" avro:"node_id"`
	AvatarURL  string `json:"avatar_url" avro:"avatar_url"`
	GravatarID string `json:"gravatar_id" avro:"gravatar_id"`
	URL        string `json:"url" avro:"url"`
	HTMLURL    string `json:"html_url" avro:"html_url"`
	Type       string `json:"type" avro:"type"`
	SiteAdmin  bool   `json:"site_admin" avro:"site_admin"`
}

// Event is one STARGAZERS event, as a GitHub source connector emits it.
type Event struct {
	Type      string    `json:"type" avro:"type"` // "STARGAZERS"
	CreatedAt time.Time `json:"createdAt" avro:"createdAt"`
	Data      User      `json:"data" avro:"data"`
}

// Starred is one event of the fixture timeline, with the repository it is for.
type Starred struct {
	Repo      string    `json:"repo"` // "kafka" or "jackdaw"
	StarredAt time.Time `json:"starred_at"`
	User      User      `json:"user"`
}

// Topic is the source topic of the event's repository.
func (s Starred) Topic() string {
	if s.Repo == "jackdaw" {
		return TopicJackdaw
	}
	return TopicKafka
}

// Event returns the connector event for s.
func (s Starred) Event() Event {
	return Event{Type: "STARGAZERS", CreatedAt: s.StarredAt.UTC(), Data: s.User}
}

//go:embed fixture.json
var fixtureJSON []byte

// Fixture is the recorded timeline: stargazers of apache/kafka and
// FundingCircle/jackdaw in event-time order.
type Fixture struct {
	Repos  map[string]string `json:"repos"`
	Events []Starred         `json:"events"`
}

// Load returns the bundled fixture.
func Load() (Fixture, error) {
	var f Fixture
	if err := json.Unmarshal(fixtureJSON, &f); err != nil {
		return f, fmt.Errorf("stargazers fixture: %w", err)
	}
	return f, nil
}

// Result is one record of stargazers-results.
type Result struct {
	ID    int64  `json:"id"`
	Login string `json:"login"`
	Type  string `json:"type"`
}

// Expected is the answer by definition: one result for every pair of stars
// of the two repositories by one login at most Window apart, sorted by
// login then id. It is a brute-force reference, independent of the join
// service's incremental window store.
func Expected(events []Starred) []Result {
	var out []Result
	for i, a := range events {
		for _, b := range events[i+1:] {
			if a.Repo == b.Repo || a.User.Login != b.User.Login {
				continue
			}
			d := a.StarredAt.Sub(b.StarredAt)
			if d < 0 {
				d = -d
			}
			if d <= Window {
				out = append(out, Result{ID: b.User.ID, Login: b.User.Login, Type: b.User.Type})
			}
		}
	}
	SortResults(out)
	return out
}

// SortResults orders results by login, then id.
func SortResults(rs []Result) {
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Login != rs[j].Login {
			return rs[i].Login < rs[j].Login
		}
		return rs[i].ID < rs[j].ID
	})
}

// SchemaID is the schema registry id the source writes in each record's
// Confluent wire-format header.
const SchemaID = 1

// Schema is the Avro schema of Event.
var Schema = avro.MustParse(`{"type":"record","name":"StargazerEvent","namespace":"ktrace.github","fields":[
 {"name":"type","type":"string"},
 {"name":"createdAt","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"data","type":{"type":"record","name":"User","fields":[
  {"name":"login","type":"string"},{"name":"id","type":"long"},{"name":"node_id","type":"string"},
  {"name":"avatar_url","type":"string"},{"name":"gravatar_id","type":"string"},{"name":"url","type":"string"},
  {"name":"html_url","type":"string"},{"name":"type","type":"string"},{"name":"site_admin","type":"boolean"}]}}]}`)

// Encode writes e in the Confluent wire format: magic byte 0, a 4-byte
// big-endian schema id, then the Avro binary encoding.
func Encode(e Event) ([]byte, error) {
	body, err := avro.Marshal(Schema, e)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteByte(0)
	binary.Write(&b, binary.BigEndian, uint32(SchemaID))
	b.Write(body)
	return b.Bytes(), nil
}

// ErrMalformed is wrapped by Decode errors.
var ErrMalformed = errors.New("malformed stargazer event")

// Decode reads an event written by Encode.
func Decode(b []byte) (Event, error) {
	var e Event
	if len(b) < 5 || b[0] != 0 {
		return e, fmt.Errorf("%w: no Confluent wire-format header", ErrMalformed)
	}
	if id := binary.BigEndian.Uint32(b[1:5]); id != SchemaID {
		return e, fmt.Errorf("%w: unknown schema id %d", ErrMalformed, id)
	}
	if err := avro.Unmarshal(Schema, b[5:], &e); err != nil {
		return e, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if e.Data.Login == "" {
		return e, fmt.Errorf("%w: empty login", ErrMalformed)
	}
	return e, nil
}
