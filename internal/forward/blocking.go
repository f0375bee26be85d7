package forward

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// Answer is the reply to a blocking callback. Its fields are shared and must not be
// modified.
type Answer struct {
	Status int
	Body   []byte
	Header http.Header // Content-Type only
	// FromBackend is false when the answer comes from the fail policy.
	FromBackend bool
}

// Reply writes the answer to Tencent.
func (a Answer) Reply(w http.ResponseWriter) error {
	if ct := a.Header["Content-Type"]; len(ct) > 0 {
		w.Header()["Content-Type"] = ct
	}
	w.WriteHeader(a.Status)
	_, err := w.Write(a.Body)
	return err
}

// Fail-policy bodies in Tencent's answer format. ErrorCode 1 rejects the event.
var (
	allowBody = []byte(`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`)
	denyBody  = []byte(`{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":"backend unavailable"}`)
)

func policyAnswer(policy string) Answer {
	body := allowBody
	if policy == PolicyDeny {
		body = denyBody
	}
	return Answer{Status: http.StatusOK, Body: body, Header: http.Header{"Content-Type": jsonType}}
}

// Forward sends a blocking callback to the backend and returns the backend's answer as
// it is: status, body and Content-Type, whatever the status. When the backend fails or
// does not answer within Timeout, it returns the fail policy's answer instead, so that
// Tencent gets a reply before its own 2 s deadline.
func (f *Forwarder) Forward(ctx context.Context, rawQuery string, body []byte) Answer {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	a, err := f.ask(ctx, rawQuery, body)
	if err != nil {
		o := classify(ctx, 0, err)
		f.observe(blocking, o, start)
		if n, ok := f.blockingLog.allow(); ok {
			f.cfg.Log.Error(err, "app backend did not answer a blocking callback, answered by fail policy",
				"command", command(rawQuery), "outcome", outcomes[o], "policy", f.cfg.FailPolicy, "suppressed", n)
		}
		return f.policy
	}
	f.observe(blocking, classify(ctx, a.Status, nil), start)
	return a
}

func (f *Forwarder) ask(ctx context.Context, rawQuery string, body []byte) (Answer, error) {
	resp, err := f.client.Do(f.newRequest(ctx, rawQuery, body))
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	b, err := readAnswer(resp.Body)
	if err != nil {
		return Answer{}, err
	}
	a := Answer{Status: resp.StatusCode, Body: b, FromBackend: true}
	if ct := resp.Header["Content-Type"]; len(ct) > 0 {
		a.Header = http.Header{"Content-Type": ct}
	}
	return a, nil
}

// maxAnswerBytes bounds a backend answer; Tencent's answers are a few dozen bytes.
const maxAnswerBytes = 64 << 10

var errAnswerTooLarge = errors.New("backend answer is larger than 64 KiB")

type readBuf struct {
	buf bytes.Buffer
	lr  io.LimitedReader
}

// readBufs keeps read buffers across requests, so reading an answer allocates only
// the returned slice.
var readBufs = sync.Pool{New: func() any { return new(readBuf) }}

// readAnswer reads a whole body. Reading to the end also lets the connection be reused.
func readAnswer(r io.Reader) ([]byte, error) {
	rb := readBufs.Get().(*readBuf)
	defer readBufs.Put(rb)
	rb.buf.Reset()
	rb.lr = io.LimitedReader{R: r, N: maxAnswerBytes + 1}
	_, err := rb.buf.ReadFrom(&rb.lr)
	rb.lr.R = nil
	switch {
	case err != nil:
		return nil, err
	case rb.buf.Len() > maxAnswerBytes:
		return nil, errAnswerTooLarge
	}
	return bytes.Clone(rb.buf.Bytes()), nil
}
