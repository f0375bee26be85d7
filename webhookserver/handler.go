package webhookserver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/liveroom-io/liveroom-operator/internal/forward"
	"github.com/liveroom-io/liveroom-operator/internal/roomstate"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
)

// Rejection reasons, the values of liveroom_callback_rejections_total{reason}.
const (
	reasonMethod     = "method"
	reasonTooLarge   = "too_large"
	reasonReadError  = "read_error"
	reasonWrongApp   = "wrong_app"
	reasonMissing    = "missing_sign"
	reasonStale      = "stale_time"
	reasonBadSign    = "bad_sign"
	reasonNotStored  = "not_stored"
	reasonUnstorable = "unstorable"
	reasonBadPayload = "bad_payload"
)

// queryValue reads a query parameter whatever its case: Tencent's pages spell the app
// parameter both SdkAppid and SdkAppId.
func queryValue(q url.Values, name string) string {
	if v, ok := q[name]; ok && len(v) > 0 {
		return v[0]
	}
	for k, v := range q {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func (s *Server) serveCallback(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	s.metrics.Inflight.Inc()
	defer s.metrics.Inflight.Dec()

	q := r.URL.Query()
	command := commandLabel(queryValue(q, "CallbackCommand"))
	rw := &statusRecorder{ResponseWriter: w}
	defer func() {
		s.metrics.Requests.WithLabelValues(command, strconv.Itoa(rw.status)).Inc()
		s.metrics.Duration.WithLabelValues(command).Observe(time.Since(start).Seconds())
	}()

	reject := func(status int, reason string, err error) {
		s.metrics.Rejections.WithLabelValues(reason).Inc()
		s.log.Info("Rejected callback", "reason", reason, "status", status, "error", err.Error(),
			"command", queryValue(q, "CallbackCommand"), "remote", r.RemoteAddr)
		writeFail(rw, status, err.Error())
	}

	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		reject(http.StatusMethodNotAllowed, reasonMethod, errors.New("only POST is accepted"))
		return
	}
	if r.ContentLength > MaxBodyBytes {
		reject(http.StatusRequestEntityTooLarge, reasonTooLarge, errors.New("body exceeds 64 KiB"))
		return
	}
	if app := queryValue(q, "SdkAppid"); app != strconv.FormatInt(s.opts.SDKAppID, 10) {
		reject(http.StatusForbidden, reasonWrongApp, errors.New("SdkAppid does not match this operator's app"))
		return
	}
	sign, requestTime := queryValue(q, "Sign"), queryValue(q, "RequestTime")
	if s.opts.Tokens != nil && s.opts.Tokens.Enabled() {
		if err := s.opts.Tokens.Verify(sign, requestTime, start, s.opts.MaxSkew); err != nil {
			reason := reasonBadSign
			switch err {
			case errMissingSign:
				reason = reasonMissing
			case errStale, errBadTime:
				reason = reasonStale
			}
			reject(http.StatusUnauthorized, reason, err)
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			reject(http.StatusRequestEntityTooLarge, reasonTooLarge, errors.New("body exceeds 64 KiB"))
		} else {
			reject(http.StatusBadRequest, reasonReadError, err)
		}
		return
	}
	cb, err := tencent.Decode(body, queryValue(q, "CallbackCommand"))
	if err != nil {
		reason := reasonBadPayload
		var de *tencent.DecodeError
		if errors.As(err, &de) {
			reason = de.Reason
		}
		reject(http.StatusBadRequest, reason, err)
		return
	}

	if s.opts.Forwarder != nil && forward.IsBlocking(cb.Command) {
		// The app decides blocking callbacks (gifts, messages); its answer goes back as is.
		answer := s.opts.Forwarder.Forward(r.Context(), r.URL.RawQuery, body)
		s.metrics.Events.WithLabelValues(command, outcomeForwarded).Inc()
		_ = answer.Reply(rw)
		return
	}

	duplicate, finish := s.replay.begin(newReplayKey(sign, requestTime, body), start)
	if duplicate {
		s.metrics.Duplicates.Inc()
		writeOK(rw)
		return
	}
	if s.opts.Forwarder != nil {
		// Queued before the operator stores anything, so the app gets its callbacks even
		// while the API server is unavailable.
		s.opts.Forwarder.Enqueue(r.URL.RawQuery, body)
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.Timeout)
	defer cancel()
	outcome, err := s.apply(ctx, cb, start)
	finish(err == nil)
	if errors.Is(err, roomstore.ErrUnstorable) {
		// No retry can store it: a 4xx, so that nobody retries for ever.
		reject(http.StatusUnprocessableEntity, reasonUnstorable, err)
		return
	}
	if err != nil {
		s.metrics.Rejections.WithLabelValues(reasonNotStored).Inc()
		s.log.Error(err, "Callback not stored", "command", cb.Command, "roomId", cb.Room())
		writeFail(rw, http.StatusServiceUnavailable, "not stored, retry: "+err.Error())
		return
	}
	s.metrics.Events.WithLabelValues(command, string(outcome)).Inc()
	writeOK(rw)
}

// outcomeIgnored marks a callback the operator does not act on; outcomeForwarded a
// blocking callback answered by the app's backend.
const (
	outcomeIgnored   roomstate.Outcome = "ignored"
	outcomeForwarded                   = "forwarded"
)

// apply stores the callback's effect and returns when the API server has it.
func (s *Server) apply(ctx context.Context, cb *tencent.Callback, now time.Time) (roomstate.Outcome, error) {
	if !tencent.IsRoomCommand(cb.Command) {
		return outcomeIgnored, nil
	}
	if cb.Command == tencent.CommandMemberStateChanged {
		delta := int64(len(cb.MemberList))
		switch cb.EventType {
		case "Offline":
			delta = -delta
		case "Online":
		default:
			return outcomeIgnored, nil
		}
		return s.members.submit(ctx, cb.Room(), delta, roomstate.EventMillis(cb, now))
	}
	res, err := s.store.Mutate(ctx, cb.Room(), livev1.OriginCallback, roomstate.ForCallback(cb, now))
	return res.Outcome, err
}

// statusRecorder remembers the status written, for the requests metric.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}
