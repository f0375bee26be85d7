package monitoring

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	// Packages main.go imports whose init registers metrics on controller-runtime's
	// registry: the reconcile, workqueue, REST client, leader election and process/Go
	// collectors, the certificate watcher's, and the API writes by lane.
	_ "sigs.k8s.io/controller-runtime"
	_ "sigs.k8s.io/controller-runtime/pkg/certwatcher"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/liveroom-io/liveroom-operator/controllers"
	"github.com/liveroom-io/liveroom-operator/internal/audience"
	"github.com/liveroom-io/liveroom-operator/internal/forward"
	_ "github.com/liveroom-io/liveroom-operator/internal/lanes"
	"github.com/liveroom-io/liveroom-operator/internal/resync"
	"github.com/liveroom-io/liveroom-operator/webhookserver"
)

// repoRoot is the operator's checkout, two levels above this module.
var repoRoot = filepath.Join("..", "..")

// builders build, on reg, the collectors that main.go registers on controller-runtime's
// registry, keyed by the function main.go calls for them (TestMainRegistersWhatTheTestBuilds
// keeps the two lists equal). Collectors registered at init come with the imports above.
var builders = map[string]func(reg prometheus.Registerer) error{
	// The callback server registers each served app's fan-out metrics on the same
	// registry, labelled with the app.
	"webhookserver.NewMetrics": func(reg prometheus.Registerer) error {
		webhookserver.NewMetrics(reg)
		_, err := forward.New(forward.Config{URL: "http://127.0.0.1:1/callback", Log: logr.Discard(),
			Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"app": "live/example"}, reg)})
		return err
	},
	"resync.NewMetrics": func(reg prometheus.Registerer) error {
		resync.NewMetrics(reg)
		return nil
	},
	// The count lane's backlog gauges are registered once a lane uses the metrics.
	"audience.NewMetrics": func(reg prometheus.Registerer) error {
		audience.New(audience.Config{Metrics: audience.NewMetrics(reg)}, nil)
		return nil
	},
	"controllers.NewCacheMetrics": func(reg prometheus.Registerer) error {
		return reg.Register(controllers.NewCacheMetrics(nil, nil, logr.Discard()))
	},
}

var (
	registeredOnce sync.Once
	registered     map[string]bool
	// registeredLabels are each registered metric's label names, sorted.
	registeredLabels map[string][]string
	registerErr      error
)

// fqNamePattern reads a metric's name from prometheus.Desc.String(), the only place a
// Desc shows it; labelsPattern its constant labels (name="value",...) and variable labels.
var (
	fqNamePattern = regexp.MustCompile(`^Desc\{fqName: "([^"]+)"`)
	labelsPattern = regexp.MustCompile(`constLabels: \{(.*)\}, variableLabels: \{(.*)\}\}$`)
)

// descLabels are the label names of a Desc: constant and variable, sorted.
func descLabels(desc string) []string {
	m := labelsPattern.FindStringSubmatch(desc)
	if m == nil {
		return nil
	}
	var names []string
	for pair := range strings.SplitSeq(m[1], ",") {
		if name, _, ok := strings.Cut(pair, "="); ok {
			names = append(names, name)
		}
	}
	for name := range strings.SplitSeq(m[2], ",") {
		if name != "" {
			names = append(names, strings.TrimSuffix(strings.TrimPrefix(name, "c("), ")"))
		}
	}
	slices.Sort(names)
	return names
}

// registeredMetrics is the name of every metric the manager registers, from the Describe
// output of controller-runtime's registry once everything main.go registers is on it.
// Describe is exact: unlike a scrape, it lists the vectors nothing has observed yet.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	registeredOnce.Do(func() {
		for _, build := range builders {
			if err := build(crmetrics.Registry); err != nil {
				registerErr = err
				return
			}
		}
		ch := make(chan *prometheus.Desc)
		go func() {
			crmetrics.Registry.(prometheus.Collector).Describe(ch)
			close(ch)
		}()
		registered, registeredLabels = map[string]bool{}, map[string][]string{}
		for d := range ch {
			m := fqNamePattern.FindStringSubmatch(d.String())
			if m == nil {
				registerErr = &unreadableDesc{d.String()}
				continue
			}
			registered[m[1]] = true
			registeredLabels[m[1]] = descLabels(d.String())
		}
	})
	if registerErr != nil {
		t.Fatal(registerErr)
	}
	return registered
}

type unreadableDesc struct{ desc string }

func (e *unreadableDesc) Error() string { return "cannot read the metric name of " + e.desc }

// isRegistered reports whether a query may use name: a registered metric, or one of the
// series of a registered histogram or summary. Describe does not say a metric's type, so
// the _bucket, _sum and _count series are accepted for any registered name but a counter's.
func isRegistered(registered map[string]bool, name string) bool {
	if registered[name] {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && registered[base] && !strings.HasSuffix(base, "_total") {
			return true
		}
	}
	return false
}

// TestRegisteredMetricsKnown: the registry holds the operator's metrics, those registered
// at init included, and the ones controller-runtime's imports bring.
func TestRegisteredMetricsKnown(t *testing.T) {
	names := registeredMetrics(t)
	for _, want := range []string{
		"liveroom_callback_requests_total", "liveroom_callback_last_received_timestamp_seconds",
		"liveroom_api_writes_total", "liveroom_count_lane_oldest_unwritten_seconds", "liveroom_forward_queue_depth",
		"liveroom_resync_last_success_timestamp_seconds", "liveroom_rooms", "liveroom_recordings",
		"controller_runtime_reconcile_total", "workqueue_depth", "leader_election_master_status",
		"rest_client_requests_total", "process_start_time_seconds", "go_goroutines",
	} {
		if !names[want] {
			t.Errorf("%s is not registered", want)
		}
	}
}

// TestEveryDefinedMetricIsBuilt: every metric the operator's code defines (a
// prometheus.*Opts literal or prometheus.NewDesc) is among the registered ones, so a
// metric added in a constructor this test does not call fails here, not in production.
func TestEveryDefinedMetricIsBuilt(t *testing.T) {
	names := registeredMetrics(t)
	defined := definedMetrics(t)
	if len(defined) == 0 {
		t.Fatal("found no metric definition in the operator's code")
	}
	for name, where := range defined {
		if !names[name] {
			t.Errorf("%s (%s) is defined but not registered by this test: add its constructor to builders, as main.go calls it", name, where)
		}
	}
}

// TestMainRegistersWhatTheTestBuilds: the functions main.go passes controller-runtime's
// registry to are exactly those of builders. A new registration in main.go fails here until
// the test builds it too, and a builder main.go does not call means that the rules and
// the dashboard query metrics the manager never exports.
func TestMainRegistersWhatTheTestBuilds(t *testing.T) {
	calls := mainRegistrations(t)
	for name := range builders {
		if !slices.Contains(calls, name) {
			t.Errorf("main.go does not register the metrics of %s on controller-runtime's registry", name)
		}
	}
	for _, name := range calls {
		if _, ok := builders[name]; !ok {
			t.Errorf("main.go registers metrics through %s, which builders lacks", name)
		}
	}
}

// mainRegistrations are the functions that the manager's package main calls with
// controller-runtime's registry as an argument or a field of one, and the constructors of
// what it registers there directly.
func mainRegistrations(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(repoRoot, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var calls []string
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		metricsPkg := importName(f, "sigs.k8s.io/controller-runtime/pkg/metrics")
		if metricsPkg == "" {
			continue
		}
		isRegistry := func(e ast.Expr) bool { return exprString(e) == metricsPkg+".Registry" }
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			callee := exprString(call.Fun)
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok && isRegistry(sel.X) {
				// metrics.Registry.MustRegister(pkg.NewX(...), ...)
				for _, arg := range call.Args {
					if inner, ok := arg.(*ast.CallExpr); ok {
						calls = append(calls, exprString(inner.Fun))
					}
				}
				return true
			}
			for _, arg := range call.Args {
				if isRegistry(arg) || literalHolds(arg, isRegistry) {
					calls = append(calls, callee)
				}
			}
			return true
		})
	}
	return calls
}

// literalHolds reports whether e is a composite literal (or its address) one of whose
// fields is an expression for which match holds.
func literalHolds(e ast.Expr, match func(ast.Expr) bool) bool {
	if u, ok := e.(*ast.UnaryExpr); ok {
		e = u.X
	}
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return false
	}
	for _, elt := range lit.Elts {
		if kv, ok := elt.(*ast.KeyValueExpr); ok && match(kv.Value) {
			return true
		}
	}
	return false
}

// definedMetrics finds the metric names the operator's non-test code defines, with the
// position of each definition.
func definedMetrics(t *testing.T) map[string]string {
	t.Helper()
	skip := map[string]bool{"hack": true, "test": true, "bin": true, "config": true, "docs": true}
	defined := map[string]string{}
	fset := token.NewFileSet()
	byDir := map[string][]*ast.File{}
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			topLevel := filepath.Dir(path) == repoRoot
			if path != repoRoot && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || topLevel && skip[d.Name()]) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		byDir[filepath.Dir(path)] = append(byDir[filepath.Dir(path)], f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, files := range byDir {
		consts := stringConsts(files)
		for _, f := range files {
			prom := importName(f, "github.com/prometheus/client_golang/prometheus")
			if prom == "" {
				continue
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CompositeLit:
					typ := exprString(n.Type)
					if !strings.HasPrefix(typ, prom+".") || !strings.HasSuffix(typ, "Opts") {
						return true
					}
					parts := map[string]string{}
					for _, elt := range n.Elts {
						kv, ok := elt.(*ast.KeyValueExpr)
						if !ok {
							continue
						}
						key := exprString(kv.Key)
						if key != "Name" && key != "Namespace" && key != "Subsystem" {
							continue
						}
						v, ok := stringValue(kv.Value, consts)
						if !ok {
							t.Errorf("%s: cannot read the metric's %s: use a string literal or constant", fset.Position(kv.Pos()), key)
						}
						parts[key] = v
					}
					if name := prometheus.BuildFQName(parts["Namespace"], parts["Subsystem"], parts["Name"]); name != "" {
						defined[name] = fset.Position(n.Pos()).String()
					}
				case *ast.CallExpr:
					if exprString(n.Fun) != prom+".NewDesc" || len(n.Args) == 0 {
						return true
					}
					v, ok := stringValue(n.Args[0], consts)
					if !ok {
						t.Errorf("%s: cannot read the metric name: use a string literal or constant", fset.Position(n.Pos()))
					}
					defined[v] = fset.Position(n.Pos()).String()
				}
				return true
			})
		}
	}
	return defined
}

// stringConsts are the package-level string constants of a package's files.
func stringConsts(files []*ast.File) map[string]string {
	consts := map[string]string{}
	for _, f := range files {
		for _, decl := range f.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.CONST {
				continue
			}
			for _, spec := range gen.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						if v, ok := stringValue(vs.Values[i], nil); ok {
							consts[name.Name] = v
						}
					}
				}
			}
		}
	}
	return consts
}

func stringValue(e ast.Expr, consts map[string]string) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind == token.STRING {
			v, err := strconv.Unquote(e.Value)
			return v, err == nil
		}
	case *ast.Ident:
		v, ok := consts[e.Name]
		return v, ok
	}
	return "", false
}

// importName is the name under which f imports path, or "" when it does not.
func importName(f *ast.File, path string) string {
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == path {
			if imp.Name != nil {
				return imp.Name.Name
			}
			return path[strings.LastIndex(path, "/")+1:]
		}
	}
	return ""
}

// exprString renders identifiers and selectors ("a.b.c"); anything else is "".
func exprString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		if x := exprString(e.X); x != "" {
			return x + "." + e.Sel.Name
		}
	case *ast.StarExpr:
		return exprString(e.X)
	}
	return ""
}

// readFile is os.ReadFile relative to the operator's checkout.
func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
