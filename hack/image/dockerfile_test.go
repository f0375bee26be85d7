package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// dockerfile is the subset of a Dockerfile that the image builder must agree with.
type dockerfile struct{ stages []*stage }

type stage struct {
	from, name      string
	workdir, user   string
	entrypoint, run []string
	copies          []copyInstr
}

type copyInstr struct {
	from    string
	sources []string
	dest    string
}

func parseDockerfile(t *testing.T) *dockerfile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := &dockerfile{}
	for _, line := range logicalLines(string(data)) {
		instr, rest, _ := strings.Cut(line, " ")
		instr, rest = strings.ToUpper(instr), strings.TrimSpace(rest)
		if instr == "FROM" {
			s := &stage{}
			fields := withoutFlags(strings.Fields(rest))
			s.from = fields[0]
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				s.name = fields[2]
			}
			df.stages = append(df.stages, s)
			continue
		}
		if len(df.stages) == 0 {
			continue
		}
		s := df.stages[len(df.stages)-1]
		switch instr {
		case "WORKDIR":
			s.workdir = rest
		case "USER":
			s.user = rest
		case "RUN":
			s.run = append(s.run, rest)
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &s.entrypoint); err != nil {
				t.Fatalf("ENTRYPOINT %s: use the exec (JSON) form: %v", rest, err)
			}
		case "COPY":
			c := copyInstr{}
			fields := strings.Fields(rest)
			for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
				if v, ok := strings.CutPrefix(fields[0], "--from="); ok {
					c.from = v
				}
				fields = fields[1:]
			}
			c.sources, c.dest = fields[:len(fields)-1], fields[len(fields)-1]
			s.copies = append(s.copies, c)
		}
	}
	if len(df.stages) < 2 {
		t.Fatalf("Dockerfile has %d stages; want a builder and a final stage", len(df.stages))
	}
	return df
}

// logicalLines joins continued lines and drops comments and parser directives.
func logicalLines(text string) []string {
	var lines []string
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(line)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	return lines
}

func withoutFlags(fields []string) []string {
	var out []string
	for _, f := range fields {
		if !strings.HasPrefix(f, "--") {
			out = append(out, f)
		}
	}
	return out
}

// coveredBy tells whether COPY source src (a file or a directory) brings file f.
func coveredBy(f, src string) bool {
	src = strings.TrimPrefix(path.Clean(src), "./")
	return src == "." || f == src || strings.HasPrefix(f, src+"/")
}

// dockerignore holds .dockerignore's rules in order; a later rule overrides an earlier one.
type dockerignore []ignoreRule

type ignoreRule struct {
	pattern *regexp.Regexp
	include bool
}

func parseDockerignore(t *testing.T) dockerignore {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var rules dockerignore
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		include := strings.HasPrefix(line, "!")
		pattern := strings.TrimPrefix(path.Clean(strings.TrimPrefix(line, "!")), "/")
		rules = append(rules, ignoreRule{pattern: globRegexp(pattern), include: include})
	}
	return rules
}

// excludes applies the rules as Docker does: a pattern matches a path or any of its
// parent directories.
func (d dockerignore) excludes(f string) bool {
	excluded := false
	for _, r := range d {
		for p := f; p != "." && p != "/"; p = path.Dir(p) {
			if r.pattern.MatchString(p) {
				excluded = !r.include
				break
			}
		}
	}
	return excluded
}

// globRegexp translates a .dockerignore pattern (with ** for any directories).
func globRegexp(pattern string) *regexp.Regexp {
	var re strings.Builder
	re.WriteString("^")
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; {
		case strings.HasPrefix(pattern[i:], "**/"):
			re.WriteString("(.*/)?")
			i += 2
		case strings.HasPrefix(pattern[i:], "**"):
			re.WriteString(".*")
			i++
		case c == '*':
			re.WriteString("[^/]*")
		case c == '?':
			re.WriteString("[^/]")
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	re.WriteString("$")
	return regexp.MustCompile(re.String())
}

func TestDockerignoreRules(t *testing.T) {
	rules := dockerignore{
		{pattern: globRegexp("*")},
		{pattern: globRegexp("api"), include: true},
		{pattern: globRegexp("**/*_test.go")},
	}
	for f, want := range map[string]bool{
		"main.go":                    true,
		"api/v1alpha1/types.go":      false,
		"api/v1alpha1/types_test.go": true,
		"internal/naming/naming.go":  true,
	} {
		if got := rules.excludes(f); got != want {
			t.Errorf("excludes(%s) = %v, want %v", f, got, want)
		}
	}
}
