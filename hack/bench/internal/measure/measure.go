// Package measure holds what the benchmark drivers measure with: CPU time from /proc and
// kube-apiserver's request counters.
package measure

import (
	"context"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// CPUMillis is the CPU time in milliseconds of this process ("self") and of its children
// kube-apiserver and etcd (envtest starts them), and the busy time of the whole machine
// ("machine"), from /proc.
func CPUMillis() map[string]float64 {
	out := map[string]float64{}
	self := os.Getpid()
	read := func(pid string) (comm string, ppid int, ms float64, ok bool) {
		b, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return "", 0, 0, false
		}
		s := string(b)
		lp, rp := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if lp < 0 || rp < 0 {
			return "", 0, 0, false
		}
		fields := strings.Fields(s[rp+1:])
		if len(fields) < 13 {
			return "", 0, 0, false
		}
		ppid, _ = strconv.Atoi(fields[1])
		utime, _ := strconv.ParseFloat(fields[11], 64)
		stime, _ := strconv.ParseFloat(fields[12], 64)
		return s[lp+1 : rp], ppid, (utime + stime) * 10, true // USER_HZ is 100 on Linux
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		// The first line sums all CPUs: user nice system idle iowait irq softirq steal ...
		if line, _, _ := strings.Cut(string(b), "\n"); strings.HasPrefix(line, "cpu ") {
			for i, v := range strings.Fields(line)[1:] {
				n, _ := strconv.ParseFloat(v, 64)
				if i < 8 && i != 3 && i != 4 {
					out["machine"] += n * 10
				}
			}
		}
	}
	if _, _, v, ok := read(strconv.Itoa(self)); ok {
		out["self"] = v
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		if comm, ppid, v, ok := read(e.Name()); ok && ppid == self {
			out[comm] += v
		}
	}
	return out
}

// MetricsClient reads the API server's /metrics, without client-side rate limiting.
func MetricsClient(cfg *rest.Config) (rest.Interface, error) {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = -1, 0
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
	return rest.UnversionedRESTClientFor(c)
}

// APIRequests reads kube-apiserver's apiserver_request_total for the given resources,
// keyed "VERB resource[/subresource] code".
func APIRequests(ctx context.Context, c rest.Interface, resources ...string) map[string]float64 {
	out := map[string]float64{}
	body, err := c.Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 {
			continue
		}
		lbl := parseLabels(line[len("apiserver_request_total{"):end])
		if !slices.Contains(resources, lbl["resource"]) {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
		if err != nil {
			continue
		}
		res := lbl["resource"]
		if lbl["subresource"] != "" {
			res += "/" + lbl["subresource"]
		}
		out[lbl["verb"]+" "+res+" "+lbl["code"]] += v
	}
	return out
}

func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || len(s) < eq+2 || s[eq+1] != '"' {
			break
		}
		key, value := s[:eq], s[eq+2:]
		end := strings.IndexByte(value, '"')
		if end < 0 {
			break
		}
		out[key] = value[:end]
		s = strings.TrimPrefix(value[end+1:], ",")
	}
	return out
}

// CPUProfile profiles this process into path until the returned stop is called; with an
// empty path it does nothing.
func CPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
