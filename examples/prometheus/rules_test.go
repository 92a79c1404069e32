// Package prometheus checks the example alerting rules with Prometheus's
// own rule-file parser, as promtool does: it is its own module, so that
// Prometheus's dependencies stay out of ktrace's. That the metrics the
// rules name are the ones a member serves is checked in stream's tests.
package prometheus

import (
	"log/slog"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

func TestRules(t *testing.T) {
	groups, errs := rulefmt.ParseFile("ktrace-stream.rules.yaml", false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Error(err)
	}
	if groups == nil || len(groups.Groups) == 0 || len(groups.Groups[0].Rules) < 5 {
		t.Fatalf("want a group of rules, got %+v", groups)
	}
}

// TestRulesRejected: the parser does reject a broken expression, so the
// test above can fail.
func TestRulesRejected(t *testing.T) {
	_, errs := rulefmt.Parse([]byte("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: increase(x[15m) > 0\n"), false, model.UTF8Validation,
		parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) == 0 {
		t.Fatal("a broken expression was accepted")
	}
}
