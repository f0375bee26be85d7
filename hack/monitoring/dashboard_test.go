package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const dashboardPath = "config/grafana/liveroom-operator.json"

// The parts of a dashboard the tests read.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *datasource     `json:"datasource"`
	AllValue   string          `json:"allValue"`
}

// datasourceRef is how panels name the data source: the dashboard's variable.
const datasourceRef = "${datasource}"

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	raw := readFile(t, dashboardPath)
	if !json.Valid(raw) {
		t.Fatalf("%s is not valid JSON", dashboardPath)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

// allPanels flattens rows.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// grafanaVariable matches $name, ${name} and ${name:format}.
var grafanaVariable = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[a-z]+)?\}|\$([A-Za-z0-9_]+)`)

// expandVariables replaces Grafana's variables by what Prometheus would receive: the
// interval variables by a duration, the others by the regular expression "All" selects.
// A variable used where PromQL wants no string then fails to parse, as it should.
func expandVariables(expr string) string {
	return grafanaVariable.ReplaceAllStringFunc(expr, func(v string) string {
		name := strings.Trim(v, "${}")
		name, _, _ = strings.Cut(name, ":")
		switch name {
		case "__rate_interval", "__interval", "__range":
			return "5m"
		case "__range_s", "__interval_ms":
			return "300"
		}
		return ".*"
	})
}

// TestDashboardValid: the dashboard is valid JSON with a uid and a title; its data source
// is a variable of type datasource, which every panel and query uses; panel ids are
// unique and each panel has a place.
func TestDashboardValid(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q", d.UID, d.Title)
	}
	var dsVar bool
	for _, v := range d.Templating.List {
		if v.Name == "datasource" {
			dsVar = v.Type == "datasource" && string(v.Query) == `"prometheus"`
		}
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != datasourceRef) {
			t.Errorf("variable %s does not query the ${datasource} variable", v.Name)
		}
	}
	if !dsVar {
		t.Error(`no variable "datasource" of type datasource for prometheus`)
	}
	ids := map[int]bool{}
	queries := 0
	for _, p := range allPanels(d.Panels) {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
			t.Errorf("panel %q has no gridPos", p.Title)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != datasourceRef || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: data source %+v, want the prometheus ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			queries++
			if q.Datasource != nil && q.Datasource.UID != datasourceRef {
				t.Errorf("panel %q query %s: data source %+v", p.Title, q.RefID, q.Datasource)
			}
		}
	}
	if queries == 0 {
		t.Fatal("the dashboard has no query")
	}
}

// TestDashboardQueriesParse: every panel's PromQL parses (Grafana's variables expanded)
// and selects only metrics the manager registers or the rules record; so do the
// variables' label_values queries.
func TestDashboardQueriesParse(t *testing.T) {
	c := newQueryChecker(t)
	d := loadDashboard(t)
	checked := 0
	for _, p := range allPanels(d.Panels) {
		for _, q := range p.Targets {
			checked++
			if strings.TrimSpace(q.Expr) == "" {
				t.Errorf("panel %q query %s is empty", p.Title, q.RefID)
				continue
			}
			for _, err := range c.check(expandVariables(q.Expr)) {
				t.Errorf("panel %q query %s: %v", p.Title, q.RefID, err)
			}
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*[A-Za-z_][A-Za-z0-9_]*\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Errorf("variable %s: %v", v.Name, err)
			continue
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, q.Query)
			continue
		}
		checked++
		for _, err := range c.check(m[1]) {
			t.Errorf("variable %s: %v", v.Name, err)
		}
		if v.AllValue != ".*" {
			t.Errorf("variable %s: allValue %q; want .* so that series without the label match", v.Name, v.AllValue)
		}
	}
	if checked == 0 {
		t.Fatal("no query checked")
	}
}

// kubectl is the kubectl that `make cluster-bins` builds (or $KUBECTL_BIN).
func kubectl(t *testing.T) string {
	t.Helper()
	path := os.Getenv("KUBECTL_BIN")
	if path == "" {
		matches, _ := filepath.Glob(filepath.Join(repoRoot, "bin", "k8s", "*", "kubectl"))
		if len(matches) == 0 {
			t.Fatal("kubectl not found: run `make cluster-bins` or set KUBECTL_BIN")
		}
		path = matches[len(matches)-1]
	}
	return path
}

// TestComponentsRender: an overlay of config/default with the prometheus and grafana
// components renders the ServiceMonitor, the PrometheusRule and the dashboard's ConfigMap
// into liveroom-system, the ConfigMap labelled for Grafana's sidecar and holding the
// dashboard as it is in Git.
func TestComponentsRender(t *testing.T) {
	overlay := t.TempDir()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	rel := func(dir string) string {
		r, err := filepath.Rel(overlay, filepath.Join(root, "config", dir))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// No namespace: config/default's parts and the components name their own.
	kustomization := fmt.Sprintf("resources:\n- %s\ncomponents:\n- %s\n- %s\n",
		rel("default"), rel("prometheus"), rel("grafana"))
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(kubectl(t), "kustomize", overlay).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, out)
	}
	found := map[string]bool{}
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var obj struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string            `json:"name"`
				Namespace string            `json:"namespace"`
				Labels    map[string]string `json:"labels"`
			} `json:"metadata"`
			Data map[string]string `json:"data"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatal(err)
		}
		switch obj.Kind {
		case "ServiceMonitor", "PrometheusRule":
		case "ConfigMap":
			if obj.Metadata.Labels["grafana_dashboard"] != "1" {
				continue
			}
			if obj.Data["liveroom-operator.json"] != string(readFile(t, dashboardPath)) {
				t.Errorf("ConfigMap %s does not hold %s as it is", obj.Metadata.Name, dashboardPath)
			}
		default:
			continue
		}
		found[obj.Kind] = true
		if obj.Metadata.Namespace != "liveroom-system" {
			t.Errorf("%s %s in namespace %q", obj.Kind, obj.Metadata.Name, obj.Metadata.Namespace)
		}
	}
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule", "ConfigMap"} {
		if !found[kind] {
			t.Errorf("no %s rendered", kind)
		}
	}
}
