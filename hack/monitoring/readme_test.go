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
	var firsts []string
	for _, row := range readmeRows(t, heading) {
		firsts = append(firsts, row[0])
	}
	return firsts
}

// readmeRows returns the cells of the rows of the table in the README section headed
// heading, the header row left out.
func readmeRows(t *testing.T, heading string) [][]string {
	t.Helper()
	readme := string(readFile(t, readmePath))
	_, section, found := strings.Cut(readme, "\n## "+heading+"\n")
	if !found {
		t.Fatalf("%s has no section %q", readmePath, heading)
	}
	if next := strings.Index(section, "\n## "); next >= 0 {
		section = section[:next]
	}
	var rows [][]string
	for line := range strings.SplitSeq(section, "\n") {
		if strings.HasPrefix(line, "| ") { // not the |---| separator
			rows = append(rows, strings.Split(strings.Trim(line, "|"), "|"))
		}
	}
	if len(rows) < 2 {
		t.Fatalf("%s: section %q has no table", readmePath, heading)
	}
	return rows[1:] // the header row
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

// TestREADMESaysEachMetricsLabels: the labels column of the README's metrics table names
// exactly the labels each liveroom_ metric of the row carries.
func TestREADMESaysEachMetricsLabels(t *testing.T) {
	registeredMetrics(t)
	for _, row := range readmeRows(t, "Metrics") {
		if len(row) < 2 {
			t.Fatalf("%s: metrics row %q has no labels column", readmePath, row)
		}
		var listed []string
		for _, m := range codeSpan.FindAllStringSubmatch(row[1], -1) {
			listed = append(listed, m[1])
		}
		slices.Sort(listed)
		for _, m := range codeSpan.FindAllStringSubmatch(row[0], -1) {
			name := m[1]
			if !strings.HasPrefix(name, "liveroom_") {
				continue
			}
			if got := registeredLabels[name]; !slices.Equal(got, listed) {
				t.Errorf("%s says %s has labels %v; it has %v", readmePath, name, listed, got)
			}
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
