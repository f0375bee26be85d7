package monitoring

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

const readmePath = "README.md"

// codeSpan is a `name` in a Markdown table cell.
var codeSpan = regexp.MustCompile("`([^`]+)`")

// readmeTable returns the first cells of the table in the README section headed heading.
func readmeTable(t *testing.T, heading string) []string {
	t.Helper()
	readme := string(readFile(t, readmePath))
	_, section, found := strings.Cut(readme, "\n## "+heading+"\n")
	if !found {
		t.Fatalf("%s has no section %q", readmePath, heading)
	}
	if next := strings.Index(section, "\n## "); next >= 0 {
		section = section[:next]
	}
	var cells []string
	for line := range strings.SplitSeq(section, "\n") {
		if !strings.HasPrefix(line, "| ") {
			continue
		}
		cells = append(cells, strings.Split(line, "|")[1])
	}
	if len(cells) < 2 {
		t.Fatalf("%s: section %q has no table", readmePath, heading)
	}
	return cells[1:] // the header row
}

// TestREADMEListsEveryMetric: the README's metrics table names exactly the liveroom_
// metrics the manager registers, so a metric added, renamed or removed fails here until
// the table says so.
func TestREADMEListsEveryMetric(t *testing.T) {
	registered := registeredMetrics(t)
	listed := map[string]bool{}
	for _, cell := range readmeTable(t, "Metrics") {
		for _, m := range codeSpan.FindAllStringSubmatch(cell, -1) {
			if strings.HasPrefix(m[1], "liveroom_") {
				listed[m[1]] = true
			}
		}
	}
	for name := range listed {
		if !registered[name] {
			t.Errorf("%s lists %s, which the manager does not register", readmePath, name)
		}
	}
	for name := range registered {
		if strings.HasPrefix(name, "liveroom_") && !listed[name] {
			t.Errorf("%s does not list %s", readmePath, name)
		}
	}
}

// TestREADMEListsEveryAlert: the README's alerts table names exactly the alerts of
// config/prometheus.
func TestREADMEListsEveryAlert(t *testing.T) {
	pr, _ := loadRules(t)
	var want, got []string
	for _, a := range alerts(pr) {
		if !slices.Contains(want, a.Alert) {
			want = append(want, a.Alert)
		}
	}
	for _, cell := range readmeTable(t, "Monitoring") {
		if m := codeSpan.FindStringSubmatch(cell); m != nil {
			got = append(got, m[1])
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s alerts table lists %v, config/prometheus defines %v", readmePath, got, want)
	}
}
