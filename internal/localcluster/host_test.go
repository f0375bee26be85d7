package localcluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func quiet(string, ...any) {}

// A run killed before it could undo its changes leaves the journal; the next run undoes
// them before it starts and removes the journal.
func TestJournalIsUndoneByTheNextRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "journal")
	leftover := filepath.Join(t.TempDir(), "created-by-the-killed-run")

	killed, err := openHostChanges(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := killed.record(change{Kind: "path", Name: leftover}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(leftover, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	killed.lock.Close() // the kernel drops the lock of a killed process

	next, err := openHostChanges(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("the killed run's change was not undone: %v", err)
	}
	if _, err := os.Stat(next.journal()); !os.IsNotExist(err) {
		t.Errorf("the journal was kept after its changes were undone: %v", err)
	}
	if err := next.release(quiet); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the journal directory is left: %v", err)
	}
}

func TestOneRealNodeAtATime(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "journal")
	first, err := openHostChanges(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = first.release(quiet) }()
	if _, err := openHostChanges(dir, quiet); err == nil || !strings.Contains(err.Error(), "another real-node cluster") {
		t.Errorf("a second cluster started beside the first: %v", err)
	}
}

// A change that cannot be undone does not stop the others, and keeps the journal for the
// next run.
func TestUndoGoesOnAfterAFailure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "journal")
	outer := filepath.Join(t.TempDir(), "outer")
	h, err := openHostChanges(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.record(change{Kind: "path", Name: outer}); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(outer, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := h.record(change{Kind: "unknown-kind", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := h.undo(quiet); err == nil {
		t.Fatal("an unknown change was undone without error")
	}
	if _, err := os.Stat(outer); !os.IsNotExist(err) {
		t.Errorf("a failed step stopped the undo of the others: %v", err)
	}
	if _, err := os.Stat(h.journal()); err != nil {
		t.Errorf("the journal must stay while a change could not be undone: %v", err)
	}
	h.changes = nil
	if err := h.release(quiet); err != nil {
		t.Fatal(err)
	}
}

func TestUnescapeMountPath(t *testing.T) {
	if got := unescapeMountPath(`/tmp/a\040b\011c`); got != "/tmp/a b\tc" {
		t.Errorf("got %q", got)
	}
}
