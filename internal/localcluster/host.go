package localcluster

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// JournalDir holds the journal of the host changes a real-node cluster made and the lock
// that lets one such cluster run at a time on a machine.
const JournalDir = "/var/lib/liveroom-localcluster"

// A change is one modification of the host outside the cluster's directory, recorded in
// the journal before it is made, so that a later run can undo it if this one is killed.
type change struct {
	// Kind says how to undo: sysctl, address, link, nftables, path, cgroup, tree, process
	// or shims.
	Kind string `json:"kind"`
	// Name is what changed: a sysctl key, a device, a path, a cgroup, a PID.
	Name string `json:"name"`
	// Value is what to restore: a sysctl's value, an address, the nftables tables that
	// existed, a process's start time.
	Value string `json:"value,omitempty"`
}

// hostChanges is the journal of one real-node cluster.
type hostChanges struct {
	dir     string
	lock    *os.File
	changes []change
}

func (h *hostChanges) journal() string { return filepath.Join(h.dir, "journal.json") }

// openHostChanges takes the machine-wide lock and first undoes what a run that did not end
// cleanly (SIGKILL, a crash, a power cut) left behind.
func openHostChanges(dir string, logf func(string, ...any)) (*hostChanges, error) {
	h := &hostChanges{dir: dir}
	for {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		lock, err := os.Open(dir)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			lock.Close()
			return nil, fmt.Errorf("another real-node cluster runs on this machine (%s is locked): %w", dir, err)
		}
		// The previous holder may have removed the directory after we opened it.
		held, err1 := lock.Stat()
		now, err2 := os.Stat(dir)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			h.lock = lock
			break
		}
		lock.Close()
	}
	data, err := os.ReadFile(h.journal())
	if errors.Is(err, fs.ErrNotExist) {
		return h, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &h.changes); err != nil {
		return nil, fmt.Errorf("reading %s: %w", h.journal(), err)
	}
	logf("Undoing the host changes of an interrupted real-node cluster (%d recorded in %s)", len(h.changes), h.journal())
	if err := h.undo(logf); err != nil {
		return nil, fmt.Errorf("cleaning up after an interrupted real-node cluster: %w", err)
	}
	return h, nil
}

// record writes c to the journal; the change must be made only after record returns.
func (h *hostChanges) record(c change) error {
	h.changes = append(h.changes, c)
	data, err := json.MarshalIndent(h.changes, "", "  ")
	if err != nil {
		return err
	}
	tmp := h.journal() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, h.journal())
}

// undo reverts every recorded change, the last first, then removes the journal. It goes
// on after a failed step and reports them all.
func (h *hostChanges) undo(logf func(string, ...any)) error {
	var errs []error
	for i := len(h.changes) - 1; i >= 0; i-- {
		if err := undoChange(h.changes[i]); err != nil {
			errs = append(errs, fmt.Errorf("undoing %s %s: %w", h.changes[i].Kind, h.changes[i].Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		logf("Some host changes could not be undone; the journal %s is kept for the next run: %v", h.journal(), err)
		return err
	}
	h.changes = nil
	if err := os.Remove(h.journal()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// release undoes everything and gives the lock up, removing the journal directory.
func (h *hostChanges) release(logf func(string, ...any)) error {
	err := h.undo(logf)
	if err == nil {
		_ = os.Remove(h.dir)
	}
	h.lock.Close()
	return err
}

func undoChange(c change) error {
	switch c.Kind {
	case "sysctl":
		return restoreSysctl(c.Name, c.Value)
	case "address":
		if !hasAddress(c.Name, c.Value) {
			return nil
		}
		return run("ip", "addr", "del", c.Value, "dev", c.Name)
	case "link":
		if _, err := os.Stat("/sys/class/net/" + c.Name); err != nil {
			return nil
		}
		return run("ip", "link", "del", c.Name)
	case "nftables":
		return restoreNftables(c.Value)
	case "path":
		if err := unmountUnder(c.Name); err != nil {
			return err
		}
		return os.RemoveAll(c.Name)
	case "tree":
		return clearTree(c.Name)
	case "cgroup":
		return removeCgroup(c.Name)
	case "process":
		return killProcess(c.Name, c.Value)
	case "shims":
		killByExecutable(c.Name)
		return nil
	}
	return fmt.Errorf("unknown change kind %q", c.Kind)
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Sysctls.

func sysctlPath(key string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
}

func readSysctl(key string) (string, bool) {
	data, err := os.ReadFile(sysctlPath(key))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(data)), true
}

func restoreSysctl(key, value string) error {
	if now, ok := readSysctl(key); !ok || now == value {
		return nil
	}
	return os.WriteFile(sysctlPath(key), []byte(value), 0o644)
}

// Addresses and links.

func hasAddress(dev, cidr string) bool {
	out, err := exec.Command("ip", "-o", "addr", "show", "dev", dev).Output()
	return err == nil && strings.Contains(string(out), " "+cidr+" ")
}

// nftables: the tables that existed, with their rules; tables added since are deleted and
// changed ones restored.

type nftTables map[string]string // "family name" -> `nft list table` output

func listNftables() (nftTables, error) {
	out, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		return nil, fmt.Errorf("nft list tables: %w", err)
	}
	tables := nftTables{}
	for _, line := range strings.Split(string(out), "\n") {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), "table ")
		if !ok {
			continue
		}
		rules, err := exec.Command("nft", append([]string{"list", "table"}, strings.Fields(name)...)...).Output()
		if err != nil {
			return nil, fmt.Errorf("nft list table %s: %w", name, err)
		}
		tables[name] = string(rules)
	}
	return tables, nil
}

func restoreNftables(saved string) error {
	var before nftTables
	if err := json.Unmarshal([]byte(saved), &before); err != nil {
		return err
	}
	now, err := listNftables()
	if err != nil {
		return err
	}
	var errs []error
	for name, rules := range now {
		old, existed := before[name]
		if existed && old == rules {
			continue
		}
		if err := run("nft", append([]string{"delete", "table"}, strings.Fields(name)...)...); err != nil {
			errs = append(errs, err)
			continue
		}
		if existed {
			cmd := exec.Command("nft", "-f", "-")
			cmd.Stdin = strings.NewReader(old)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("restoring nftables table %s: %w: %s", name, err, out))
			}
		}
	}
	return errors.Join(errs...)
}

// Mounts.

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMountPath(fields[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	sort.SliceStable(points, func(i, j int) bool { return strings.Count(points[i], "/") > strings.Count(points[j], "/") })
	return points, sc.Err()
}

func unescapeMountPath(p string) string {
	if !strings.Contains(p, `\`) {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '\\' && i+3 < len(p) {
			if n, err := strconv.ParseUint(p[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// unmountUnder unmounts everything mounted at or below dir, deepest first (a mount may be
// stacked several times).
func unmountUnder(dir string) error {
	for range 10 {
		points, err := mountsUnder(dir)
		if err != nil || len(points) == 0 {
			return err
		}
		for _, p := range points {
			_ = syscall.Unmount(p, syscall.MNT_DETACH)
		}
	}
	points, _ := mountsUnder(dir)
	return fmt.Errorf("still mounted: %q", points)
}

// clearTree unmounts everything below the cluster's directory and removes all of it but
// its logs.
func clearTree(dir string) error {
	if err := unmountUnder(dir); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if e.Name() != "logs" {
			errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
		}
	}
	return errors.Join(errs...)
}

// Cgroups (cgroup v1 hierarchies and the unified one beside them).

// cgroupHierarchies are the mounted cgroup hierarchies.
func cgroupHierarchies() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var dirs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 0 || sep+1 >= len(fields) {
			continue
		}
		if fsType := fields[sep+1]; fsType == "cgroup" || fsType == "cgroup2" {
			dirs = append(dirs, unescapeMountPath(fields[4]))
		}
	}
	return dirs
}

// cgroupExists tells whether a cgroup of that name exists in any hierarchy.
func cgroupExists(name string) bool {
	for _, h := range cgroupHierarchies() {
		if _, err := os.Stat(filepath.Join(h, name)); err == nil {
			return true
		}
	}
	return false
}

// killCgroup kills every process in the cgroup (and below it) in every hierarchy.
func killCgroup(name string) {
	for _, h := range cgroupHierarchies() {
		_ = filepath.WalkDir(filepath.Join(h, name), func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			data, _ := os.ReadFile(filepath.Join(path, "cgroup.procs"))
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return nil
		})
	}
}

// removeCgroup kills the cgroup's processes and removes it, children first, from every
// hierarchy.
func removeCgroup(name string) error {
	var left []string
	for attempt := 0; attempt < 50; attempt++ {
		killCgroup(name)
		left = nil
		for _, h := range cgroupHierarchies() {
			var dirs []string
			_ = filepath.WalkDir(filepath.Join(h, name), func(path string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, path)
				}
				return nil
			})
			sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
			for _, d := range dirs {
				if err := syscall.Rmdir(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
					left = append(left, d)
				}
			}
		}
		if len(left) == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("cgroups still busy: %q", left)
}

// Processes.

// startTime is field 22 of /proc/PID/stat: with the PID it names one process for good.
func startTime(pid int) (string, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	// The command name (field 2) may hold spaces: count from its closing parenthesis.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		return "", false
	}
	return fields[19], true
}

func killProcess(pidText, started string) error {
	pid, err := strconv.Atoi(pidText)
	if err != nil {
		return err
	}
	if now, ok := startTime(pid); !ok || now != started {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	return nil
}

// killByExecutable kills every process running the binary at path (shims outlive
// containerd: they are daemons of their own).
func killByExecutable(path string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err == nil && strings.TrimSuffix(exe, " (deleted)") == path {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// HostState describes what a real-node cluster may change on the host (the sysctls it
// watches, its fixed paths, nftables tables, addresses, links, cgroups, mounts), so that a
// test can check that StopNode put everything back.
func HostState() []string {
	var state []string
	for _, key := range watchedSysctls {
		v, _ := readSysctl(key)
		state = append(state, "sysctl "+key+"="+v)
	}
	for _, p := range hostPaths {
		_, err := os.Lstat(p)
		state = append(state, fmt.Sprintf("path %s exists=%t", p, err == nil))
	}
	if out, err := exec.Command("nft", "list", "tables").Output(); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			state = append(state, "nftables "+line)
		}
	}
	if out, err := exec.Command("ip", "-o", "addr").Output(); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if f := strings.Fields(line); len(f) > 3 {
				state = append(state, "address "+f[1]+" "+f[3])
			}
		}
	}
	if links, err := os.ReadDir("/sys/class/net"); err == nil {
		for _, l := range links {
			state = append(state, "link "+l.Name())
		}
	}
	state = append(state, fmt.Sprintf("cgroup kubepods exists=%t", cgroupExists("kubepods")))
	if mounts, err := mountsUnder("/"); err == nil {
		for _, m := range mounts {
			state = append(state, "mount "+m)
		}
	}
	slices.Sort(state)
	return state
}
