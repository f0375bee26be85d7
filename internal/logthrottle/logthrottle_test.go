package logthrottle

import (
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestBurstThenCountWithNextLine(t *testing.T) {
	clock := time.Unix(1000, 0)
	th := New(3, 10*time.Second)
	th.now = func() time.Time { return clock }

	allowed := 0
	for range 10 {
		if n, ok := th.Allow(); ok {
			allowed++
			if n != 0 {
				t.Fatalf("first window reported %d suppressed", n)
			}
		}
	}
	if allowed != 3 {
		t.Fatalf("allowed %d of 10, want the burst of 3", allowed)
	}
	clock = clock.Add(10 * time.Second)
	n, ok := th.Allow()
	if !ok || n != 7 {
		t.Fatalf("next window: ok=%v suppressed=%d, want true 7", ok, n)
	}
	if n, _ := th.Allow(); n != 0 {
		t.Fatalf("suppressed lines reported twice: %d", n)
	}
	if th.Total() != 12 {
		t.Fatalf("total %d", th.Total())
	}
}

func TestSummaryOncePerInterval(t *testing.T) {
	g := NewWithT(t)
	var mu sync.Mutex
	var summaries []int64
	th := New(2, 50*time.Millisecond).WithSummary(func(n int64) {
		mu.Lock()
		summaries = append(summaries, n)
		mu.Unlock()
	})
	got := func() []int64 {
		mu.Lock()
		defer mu.Unlock()
		return append([]int64(nil), summaries...)
	}

	allowed := 0
	for range 1000 {
		if n, ok := th.Allow(); ok {
			allowed++
			g.Expect(n).To(BeZero(), "with a summary, counts go to the summary only")
		}
	}
	g.Expect(allowed).To(Equal(2))
	g.Eventually(got).Should(Equal([]int64{998}))
	g.Consistently(got, 150*time.Millisecond).Should(HaveLen(1), "a quiet interval writes no summary")
}
