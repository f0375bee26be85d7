package monitoring

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

const (
	rulesPath     = "config/prometheus/rules.yaml"
	runbooksPath  = "docs/runbooks.md"
	runbookPrefix = "https://github.com/liveroom-io/liveroom-operator/blob/main/" + runbooksPath + "#"
)

type ruleGroup struct {
	Name  string `json:"name"`
	Rules []rule `json:"rules"`
}

type rule struct {
	Record        string            `json:"record,omitempty"`
	Alert         string            `json:"alert,omitempty"`
	Expr          string            `json:"expr"`
	For           string            `json:"for,omitempty"`
	KeepFiringFor string            `json:"keep_firing_for,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// promRule is the PrometheusRule of config/prometheus: its spec is a rule file as
// Prometheus reads it.
type promRule struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata"`
	Spec       struct {
		Groups []ruleGroup `json:"groups"`
	} `json:"spec"`
}

// loadRules reads the PrometheusRule, and its spec as a rule file for promtool. Fields
// unknown here are refused, so the rule file holds all the spec does.
func loadRules(t *testing.T) (promRule, []byte) {
	t.Helper()
	var pr promRule
	if err := yaml.UnmarshalStrict(readFile(t, rulesPath), &pr); err != nil {
		t.Fatalf("%s: %v", rulesPath, err)
	}
	if pr.Kind != "PrometheusRule" || len(pr.Spec.Groups) == 0 {
		t.Fatalf("%s is not a PrometheusRule with groups", rulesPath)
	}
	file, err := yaml.Marshal(pr.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return pr, file
}

func alerts(pr promRule) []rule {
	var out []rule
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	return out
}

// promtool is the promtool binary `make promtool` builds (or $PROMTOOL).
func promtool(t *testing.T) string {
	t.Helper()
	path := os.Getenv("PROMTOOL")
	if path == "" {
		path = filepath.Join(repoRoot, "bin", "promtool")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Fatalf("promtool not found (%v): run `make promtool` or set PROMTOOL", err)
	}
	return abs
}

// rulesDir writes the rule file and the unit tests of testdata into a directory for
// promtool.
func rulesDir(t *testing.T) string {
	t.Helper()
	_, file := loadRules(t)
	dir := t.TempDir()
	tests, err := os.ReadFile(filepath.Join("testdata", "rules_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"rules.yaml": file, "rules_test.yaml": tests} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runPromtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
}

// TestPromtoolCheckRules: the rules are valid, lint included.
func TestPromtoolCheckRules(t *testing.T) {
	runPromtool(t, rulesDir(t), "check", "rules", "--lint=all", "--lint-fatal", "rules.yaml")
}

// TestPromtoolTestRules: the unit tests of testdata/rules_test.yaml pass.
func TestPromtoolTestRules(t *testing.T) {
	runPromtool(t, rulesDir(t), "test", "rules", "rules_test.yaml")
}

// promtoolTests is what TestEveryAlertTested reads of the unit tests.
type promtoolTests struct {
	Tests []struct {
		Name          string `json:"name"`
		AlertRuleTest []struct {
			Alertname string `json:"alertname"`
			ExpAlerts []struct {
				ExpLabels map[string]string `json:"exp_labels"`
			} `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// TestEveryAlertTested: each alert rule (each alert name and severity) has a unit test in
// which it fires, and each alert name one in which it stays silent.
func TestEveryAlertTested(t *testing.T) {
	pr, _ := loadRules(t)
	var tests promtoolTests
	if err := yaml.Unmarshal(readTestdata(t, "rules_test.yaml"), &tests); err != nil {
		t.Fatal(err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, at := range tc.AlertRuleTest {
			if len(at.ExpAlerts) == 0 {
				silent[at.Alertname] = true
			}
			for _, a := range at.ExpAlerts {
				fires[at.Alertname+"/"+a.ExpLabels["severity"]] = true
			}
		}
	}
	for _, a := range alerts(pr) {
		if !fires[a.Alert+"/"+a.Labels["severity"]] {
			t.Errorf("no unit test in which %s fires with severity %s", a.Alert, a.Labels["severity"])
		}
		if !silent[a.Alert] {
			t.Errorf("no unit test in which %s stays silent", a.Alert)
		}
	}
}

// headingAnchor is GitHub's anchor of a Markdown heading.
func headingAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestAlertsDocumented: every alert has a known severity, a summary and a description,
// and a runbook_url to a section of docs/runbooks.md, whose sections are all alerts'.
func TestAlertsDocumented(t *testing.T) {
	pr, _ := loadRules(t)
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(readFile(t, runbooksPath)), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			anchors[headingAnchor(h)] = true
		}
	}
	linked := map[string]bool{}
	for _, a := range alerts(pr) {
		if s := a.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", a.Alert, s)
		}
		for _, key := range []string{"summary", "description"} {
			if strings.TrimSpace(a.Annotations[key]) == "" {
				t.Errorf("%s has no %s", a.Alert, key)
			}
		}
		anchor, ok := strings.CutPrefix(a.Annotations["runbook_url"], runbookPrefix)
		switch {
		case !ok:
			t.Errorf("%s: runbook_url %q does not start with %s", a.Alert, a.Annotations["runbook_url"], runbookPrefix)
		case !anchors[anchor]:
			t.Errorf("%s: %s has no section #%s", a.Alert, runbooksPath, anchor)
		case anchor != strings.ToLower(a.Alert):
			t.Errorf("%s: runbook section #%s, want the alert's own, #%s", a.Alert, anchor, strings.ToLower(a.Alert))
		}
		linked[anchor] = true
	}
	for anchor := range anchors {
		if strings.HasPrefix(anchor, "liveroom") && !linked[anchor] {
			t.Errorf("%s: section #%s belongs to no alert", runbooksPath, anchor)
		}
	}
}

// selectors parses expr and returns its vector selectors.
func selectors(expr string) ([]*parser.VectorSelector, error) {
	node, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var out []*parser.VectorSelector
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs)
		}
		return nil
	})
	return out, nil
}

// metricName is the metric a selector selects, "" when it selects by labels alone.
func metricName(vs *parser.VectorSelector) string {
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return vs.Name
}

// leaderElectionID is the Lease name main.go elects the controller's leader with.
func leaderElectionID(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`LeaderElectionID:\s*"([^"]+)"`).FindSubmatch(readFile(t, "main.go"))
	if m == nil {
		t.Fatal("main.go names no LeaderElectionID")
	}
	return string(m[1])
}

// queryChecker checks the queries of rules and dashboards: they parse, select metrics by
// name, and only metrics the manager registers or a recording rule makes; the leader
// election gauge is selected by the operator's Lease.
type queryChecker struct {
	registered, recorded map[string]bool
	leaseName            string
}

func newQueryChecker(t *testing.T) queryChecker {
	pr, _ := loadRules(t)
	return queryChecker{registered: registeredMetrics(t), recorded: recordedMetrics(pr), leaseName: leaderElectionID(t)}
}

func (c queryChecker) check(expr string) []error {
	sels, err := selectors(expr)
	if err != nil {
		return []error{err}
	}
	var errs []error
	for _, vs := range sels {
		name := metricName(vs)
		switch {
		case name == "":
			errs = append(errs, fmt.Errorf("%s selects no metric by name", vs))
		case !c.recorded[name] && !isRegistered(c.registered, name):
			errs = append(errs, fmt.Errorf("queries %s, which the manager does not register", name))
		case name == "leader_election_master_status" && !slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool {
			return m.Name == "name" && m.Type == labels.MatchEqual && m.Value == c.leaseName
		}):
			errs = append(errs, fmt.Errorf("%s: select the operator's Lease, name=%q", vs, c.leaseName))
		}
	}
	return errs
}

// recordedMetrics are the series the recording rules make.
func recordedMetrics(pr promRule) map[string]bool {
	out := map[string]bool{}
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				out[r.Record] = true
			}
		}
	}
	return out
}

// TestRulesQueryRegisteredMetrics: every metric a rule selects is one the manager
// registers, or a recording rule's, so renaming a metric fails this test instead of
// silencing an alert.
func TestRulesQueryRegisteredMetrics(t *testing.T) {
	c := newQueryChecker(t)
	pr, _ := loadRules(t)
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			for _, err := range c.check(r.Expr) {
				t.Errorf("%s: %v", ruleName(r), err)
			}
		}
	}
}

func ruleName(r rule) string {
	if r.Alert != "" {
		return fmt.Sprintf("alert %s (%s)", r.Alert, r.Labels["severity"])
	}
	return "record " + r.Record
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
