package webhookserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/liveroom-io/liveroom-operator/internal/audience"
	"github.com/liveroom-io/liveroom-operator/internal/forward"
	"github.com/liveroom-io/liveroom-operator/internal/lanes"
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
	reasonNoToken    = "no_token"
	reasonMissing    = "missing_sign"
	reasonStale      = "stale_time"
	reasonBadSign    = "bad_sign"
	reasonNotStored  = "not_stored"
	reasonUnstorable = "unstorable"
	reasonBadPayload = "bad_payload"
	reasonInternal   = "internal_error"
	reasonOverloaded = "overloaded"
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

// delivery is one callback request being answered.
type delivery struct {
	rw           *statusRecorder
	r            *http.Request
	start        time.Time
	app          *servedApp // nil: not an app this operator serves
	appLabel     string
	queryCommand string // as the query spells it
	command      string // its metric label
	sign         string
	requestTime  string
}

func (s *Server) serveCallback(w http.ResponseWriter, r *http.Request) {
	s.metrics.Inflight.Inc()
	defer s.metrics.Inflight.Dec()
	inflight := s.inflight.Add(1)
	defer s.inflight.Add(-1)

	q := r.URL.Query()
	d := &delivery{
		rw: &statusRecorder{ResponseWriter: w}, r: r, start: s.now(),
		app: s.apps.lookup(queryValue(q, "SdkAppid")), appLabel: unknownApp,
		queryCommand: queryValue(q, "CallbackCommand"),
		sign:         queryValue(q, "Sign"), requestTime: queryValue(q, "RequestTime"),
	}
	d.command = commandLabel(d.queryCommand)
	if d.app != nil {
		d.appLabel = d.app.label
	}
	defer func() {
		s.metrics.Requests.WithLabelValues(d.appLabel, d.command, strconv.Itoa(d.rw.status)).Inc()
		s.metrics.Duration.WithLabelValues(d.command).Observe(time.Since(d.start).Seconds())
	}()

	cb, body, ok := s.admit(d)
	if !ok {
		return
	}
	if cb.Command == tencent.CommandMemberStateChanged && inflight > int64(s.opts.MemberAdmission) {
		// Overloaded: room lifecycle callbacks go first. Nothing of this one was kept.
		s.metrics.Rejections.WithLabelValues(d.appLabel, reasonOverloaded).Inc()
		writeFail(d.rw, http.StatusServiceUnavailable, "overloaded, retry")
		return
	}
	if d.app.forwarder != nil && forward.IsBlocking(cb.Command) {
		// The app decides blocking callbacks (gifts, messages); its answer goes back as is.
		answer := d.app.forwarder.Forward(r.Context(), r.URL.RawQuery, body)
		s.metrics.Events.WithLabelValues(d.appLabel, d.command, string(outcomeForwarded)).Inc()
		_ = answer.Reply(d.rw)
		return
	}
	s.store(d, cb, body)
}

// reject answers a callback refused before anything of it was kept.
func (s *Server) reject(d *delivery, status int, reason string, err error) {
	s.metrics.Rejections.WithLabelValues(d.appLabel, reason).Inc()
	if _, ok := s.rejectLog.Allow(); ok {
		s.log.Info("Rejected callback", "reason", reason, "status", status, "error", logValue(err.Error()),
			"app", d.appLabel, "command", logValue(d.queryCommand), "remote", logValue(d.r.RemoteAddr))
	}
	writeFail(d.rw, status, err.Error())
}

// admit checks the request (method, size, app, signature) and decodes its body; when it
// returns false the callback has been answered.
func (s *Server) admit(d *delivery) (*tencent.Callback, []byte, bool) {
	if d.r.Method != http.MethodPost {
		d.rw.Header().Set("Allow", http.MethodPost)
		s.reject(d, http.StatusMethodNotAllowed, reasonMethod, errors.New("only POST is accepted"))
		return nil, nil, false
	}
	maxBody := bodyLimit(d.queryCommand)
	tooLarge := func() error { return fmt.Errorf("body exceeds %d KiB", maxBody>>10) }
	if d.r.ContentLength > maxBody {
		s.reject(d, http.StatusRequestEntityTooLarge, reasonTooLarge, tooLarge())
		return nil, nil, false
	}
	if d.app == nil {
		s.reject(d, http.StatusForbidden, reasonWrongApp, errors.New("SdkAppid is not an app this operator serves"))
		return nil, nil, false
	}
	if !s.authenticate(d) {
		return nil, nil, false
	}
	s.metrics.LastReceived.WithLabelValues(d.app.label).Set(float64(d.start.UnixNano()) / 1e9)
	body, err := io.ReadAll(http.MaxBytesReader(d.rw, d.r.Body, maxBody))
	if err != nil {
		var maxBytes *http.MaxBytesError
		if errors.As(err, &maxBytes) {
			s.reject(d, http.StatusRequestEntityTooLarge, reasonTooLarge, tooLarge())
		} else {
			s.reject(d, http.StatusBadRequest, reasonReadError, err)
		}
		return nil, nil, false
	}
	cb, err := tencent.Decode(body, d.queryCommand)
	if err != nil {
		reason := reasonBadPayload
		var de *tencent.DecodeError
		if errors.As(err, &de) {
			reason = de.Reason
		}
		s.reject(d, http.StatusBadRequest, reason, err)
		return nil, nil, false
	}
	return cb, body, true
}

// authenticate checks the Sign against the app's callback tokens.
func (s *Server) authenticate(d *delivery) bool {
	app := d.app
	if !app.tokens.Enabled() {
		if app.allowUnsigned {
			return true
		}
		// The controller has not handed this replica the app's tokens yet.
		s.reject(d, http.StatusUnauthorized, reasonNoToken, errors.New("the app has no callback token yet"))
		return false
	}
	err := app.tokens.Verify(d.sign, d.requestTime, d.start, app.maxSkew)
	if err == nil {
		return true
	}
	reason := reasonBadSign
	switch err {
	case errMissingSign:
		reason = reasonMissing
	case errStale, errBadTime:
		reason = reasonStale
	}
	s.reject(d, http.StatusUnauthorized, reason, err)
	return false
}

// store applies an authenticated room callback and answers 200 once its effect is
// stored; a replay of one is acknowledged without applying it again.
func (s *Server) store(d *delivery, cb *tencent.Callback, body []byte) {
	app := d.app
	duplicate, finish := s.replay.begin(newReplayKey(app.sdkAppID, d.sign, d.requestTime, body), d.start, 2*app.maxSkew)
	if duplicate {
		s.metrics.Duplicates.WithLabelValues(d.appLabel).Inc()
		writeOK(d.rw)
		return
	}
	// Identical deliveries wait for this one: release them whatever happens below.
	defer finish(false)
	if app.forwarder != nil {
		// Queued before the operator stores anything, so the app gets its callbacks even
		// while the API server is unavailable.
		app.forwarder.Enqueue(d.r.URL.RawQuery, body)
	}
	ctx, cancel := context.WithTimeout(d.r.Context(), s.opts.Timeout)
	defer cancel()
	outcome, err := s.applyRecovering(ctx, app, cb, d.start)
	finish(err == nil)
	if err != nil {
		s.answerNotStored(d, cb, err)
		return
	}
	s.metrics.Events.WithLabelValues(d.appLabel, d.command, string(outcome)).Inc()
	writeOK(d.rw)
}

// answerNotStored answers a callback whose effect could not be stored: 4xx when no retry
// can store it, 5xx (retry) otherwise.
func (s *Server) answerNotStored(d *delivery, cb *tencent.Callback, err error) {
	var panicked *panicError
	switch {
	case errors.As(err, &panicked):
		s.metrics.Rejections.WithLabelValues(d.appLabel, reasonInternal).Inc()
		s.log.Error(err, "Callback not stored: internal error", "app", d.appLabel, "command", cb.Command, "roomId", logValue(cb.Room()),
			"stack", string(panicked.stack))
		writeFail(d.rw, http.StatusInternalServerError, "internal error")
	case errors.Is(err, lanes.ErrOverloaded):
		// Answered before the deadline: nothing of it was kept.
		s.metrics.Rejections.WithLabelValues(d.appLabel, reasonOverloaded).Inc()
		writeFail(d.rw, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, roomstore.ErrUnstorable):
		// No retry can store it: a 4xx, so that nobody retries for ever.
		s.reject(d, http.StatusUnprocessableEntity, reasonUnstorable, err)
	default:
		s.metrics.Rejections.WithLabelValues(d.appLabel, reasonNotStored).Inc()
		// Expected while the API server is unavailable: no stack trace, and bounded.
		if _, ok := s.notStoredLog.Allow(); ok {
			s.log.Info("Callback not stored", "error", logValue(err.Error()), "app", d.appLabel, "command", cb.Command, "roomId", logValue(cb.Room()))
		}
		writeFail(d.rw, http.StatusServiceUnavailable, "not stored, retry: "+err.Error())
	}
}

// bodyLimit is the largest body accepted for a command: room commands are stored, the
// others only counted and forwarded (a room quota warning is a few numbers).
func bodyLimit(command string) int64 {
	if tencent.IsRoomCommand(command) {
		return MaxBodyBytes
	}
	return MaxOtherBodyBytes
}

// panicError is a panic recovered while applying a callback.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

// applyRecovering is apply, with a panic turned into an error so that the delivery is
// answered and released like any failed one.
func (s *Server) applyRecovering(ctx context.Context, app *servedApp, cb *tencent.Callback, now time.Time) (outcome roomstate.Outcome, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{value: p, stack: debug.Stack()}
		}
	}()
	return s.apply(ctx, app, cb, now)
}

// outcomeIgnored marks a callback the operator does not act on; outcomeForwarded a
// blocking callback answered by the app's backend;
// outcomeCounted a member-count change taken by the count lane.
const (
	outcomeIgnored   roomstate.Outcome = "ignored"
	outcomeForwarded roomstate.Outcome = "forwarded"
	outcomeCounted   roomstate.Outcome = "counted"
)

// apply stores the callback's effect in the app's rooms (or, for a room quota warning,
// in the app). A room lifecycle change returns once the API server has it; a
// member-count change once the count lane has it.
func (s *Server) apply(ctx context.Context, app *servedApp, cb *tencent.Callback, now time.Time) (roomstate.Outcome, error) {
	if cb.Command == tencent.CommandCreateRoomReachingThreshold {
		return s.recordQuota(ctx, app, cb, now)
	}
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
		room := audience.Room{Namespace: app.key.Namespace, SDKAppID: app.sdkAppID, ID: cb.Room()}
		if err := s.counts.Add(room, delta, roomstate.EventMillis(cb, now)); err != nil {
			return "", err
		}
		return outcomeCounted, nil
	}
	res, err := app.store.Mutate(ctx, cb.Room(), livev1.OriginCallback, roomstate.ForCallback(cb, now))
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
