package webhookserver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// startUnitServer runs a server on a memStore on a loopback port until the test ends.
func startUnitServer(t *testing.T, opts Options) *Server {
	t.Helper()
	opts.BindAddress = "127.0.0.1:0"
	s := newUnitServer(t, opts, newMemStore(), logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	NewWithT(t).Eventually(s.Addr).ShouldNot(BeNil())
	return s
}

// conn is one keep-alive client connection written to by hand.
type conn struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, s *Server) *conn {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &conn{Conn: c, r: bufio.NewReader(c)}
}

// send writes one signed create callback.
func (c *conn) send(t *testing.T, roomID string) {
	t.Helper()
	body := createBody(roomID, "u", time.Now().Unix())
	query := signedQuery(tencent.CommandCreateRoom, firstToken, nowRequestTime()).Encode()
	req := fmt.Sprintf("POST /callback?%s HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", query, len(body), body)
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
}

// answer reads one answer, waiting at most wait.
func (c *conn) answer(wait time.Duration) (int, error) {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, err
	}
	drain(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestConnectionLimit: with a limit of 2, a third connection waits until one of the
// others closes, and the two stay served meanwhile.
func TestConnectionLimit(t *testing.T) {
	g := NewWithT(t)
	s := startUnitServer(t, Options{MaxConnections: 2})
	first, second := dial(t, s), dial(t, s)
	for i, c := range []*conn{first, second} {
		c.send(t, fmt.Sprintf("limit-%d", i))
		g.Expect(c.answer(5 * time.Second)).To(Equal(http.StatusOK))
	}

	third := dial(t, s) // the kernel completes the handshake; the server does not accept it
	third.send(t, "limit-third")
	_, err := third.answer(500 * time.Millisecond)
	g.Expect(errors.Is(err, os.ErrDeadlineExceeded)).To(BeTrue(), "the third connection is not served: %v", err)

	second.send(t, "limit-second-again")
	g.Expect(second.answer(5*time.Second)).To(Equal(http.StatusOK), "open connections stay served")

	first.Close()
	g.Expect(third.answer(5*time.Second)).To(Equal(http.StatusOK), "served once a connection closed")
}

// TestIdleConnectionsClosed: a keep-alive connection without a next request is closed
// after the idle timeout.
func TestIdleConnectionsClosed(t *testing.T) {
	g := NewWithT(t)
	s := startUnitServer(t, Options{IdleTimeout: 200 * time.Millisecond})
	c := dial(t, s)
	c.send(t, "idle")
	g.Expect(c.answer(5 * time.Second)).To(Equal(http.StatusOK))
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.r.ReadByte() // returns once the server closes the connection
	g.Expect(err).To(MatchError(io.EOF))
	g.Expect(time.Since(start)).To(BeNumerically("<", 3*time.Second))
}

// TestBodyCapsByCommand: commands the operator does not act on get a 16 KiB cap, room
// commands keep 64 KiB, whether the length is announced or streamed.
func TestBodyCapsByCommand(t *testing.T) {
	g := NewWithT(t)
	store, fwd := newMemStore(), &fakeForwarder{}
	s := newUnitServerFor(t, Options{}, unitApp{tokens: []string{firstToken}, forwarder: fwd}, store, logr.Discard())
	padded := func(command, fields string, size int) []byte {
		head := fmt.Sprintf(`{"CallbackCommand":%q,%s,"Pad":"`, command, fields)
		return []byte(head + strings.Repeat("x", size-len(head)-2) + `"}`)
	}
	battle := "Live.CallbackAfterCreateBattle"
	cases := []struct {
		name    string
		command string
		body    []byte
		status  int
	}{
		{"other command at the cap", battle, padded(battle, `"BattleId":"b"`, MaxOtherBodyBytes), http.StatusOK},
		{"other command over the cap", battle, padded(battle, `"BattleId":"b"`, MaxOtherBodyBytes+1), http.StatusRequestEntityTooLarge},
		{"room command over the other cap", tencent.CommandDestroyRoom, padded(tencent.CommandDestroyRoom, `"RoomId":"big-body"`, 40<<10), http.StatusOK},
		{"room command over its cap", tencent.CommandDestroyRoom, padded(tencent.CommandDestroyRoom, `"RoomId":"big-body"`, MaxBodyBytes+1), http.StatusRequestEntityTooLarge},
	}
	for _, c := range cases {
		for _, streamed := range []bool{false, true} {
			query := signedQuery(c.command, firstToken, nowRequestTime()).Encode()
			req, err := http.NewRequest(http.MethodPost, "/callback?"+query, bytes.NewReader(c.body))
			g.Expect(err).NotTo(HaveOccurred())
			if streamed {
				req.ContentLength = -1
				req.Body = io.NopCloser(bytes.NewReader(c.body))
			}
			rec := newRecorder()
			s.Handler().ServeHTTP(rec, req)
			g.Expect(rec.Code).To(Equal(c.status), "%s (streamed %v)", c.name, streamed)
		}
	}
	var others int
	for _, b := range fwd.bodies() {
		if bytes.Contains(b, []byte(battle)) {
			others++
			g.Expect(len(b)).To(BeNumerically("<=", MaxOtherBodyBytes), "no larger body of another command is queued")
		}
	}
	g.Expect(others).To(BeNumerically(">", 0))
}
