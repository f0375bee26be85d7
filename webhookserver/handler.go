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

func (s *Server) serveCallback(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	s.metrics.Inflight.Inc()
	defer s.metrics.Inflight.Dec()
	inflight := s.inflight.Add(1)
	defer s.inflight.Add(-1)

	q := r.URL.Query()
	queryCommand := queryValue(q, "CallbackCommand")
	command := commandLabel(queryCommand)
	app := s.apps.lookup(queryValue(q, "SdkAppid"))
	appLabel := unknownApp
	if app != nil {
		appLabel = app.label
	}
	rw := &statusRecorder{ResponseWriter: w}
	defer func() {
		s.metrics.Requests.WithLabelValues(appLabel, command, strconv.Itoa(rw.status)).Inc()
		s.metrics.Duration.WithLabelValues(command).Observe(time.Since(start).Seconds())
	}()

	reject := func(status int, reason string, err error) {
		s.metrics.Rejections.WithLabelValues(appLabel, reason).Inc()
		if _, ok := s.rejectLog.Allow(); ok {
			s.log.Info("Rejected callback", "reason", reason, "status", status, "error", logValue(err.Error()),
				"app", appLabel, "command", logValue(queryCommand), "remote", logValue(r.RemoteAddr))
		}
		writeFail(rw, status, err.Error())
	}

	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		reject(http.StatusMethodNotAllowed, reasonMethod, errors.New("only POST is accepted"))
		return
	}
	maxBody := bodyLimit(queryCommand)
	tooLarge := fmt.Errorf("body exceeds %d KiB", maxBody>>10)
	if r.ContentLength > maxBody {
		reject(http.StatusRequestEntityTooLarge, reasonTooLarge, tooLarge)
		return
	}
	if app == nil {
		reject(http.StatusForbidden, reasonWrongApp, errors.New("SdkAppid is not an app this operator serves"))
		return
	}
	sign, requestTime := queryValue(q, "Sign"), queryValue(q, "RequestTime")
	switch {
	case app.tokens.Enabled():
		if err := app.tokens.Verify(sign, requestTime, start, app.maxSkew); err != nil {
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
	case !app.allowUnsigned:
		// The controller has not handed this replica the app's tokens yet.
		reject(http.StatusUnauthorized, reasonNoToken, errors.New("the app has no callback token yet"))
		return
	}
	markReceived(app.label, start)
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxBody))
	if err != nil {
		var maxBytes *http.MaxBytesError
		if errors.As(err, &maxBytes) {
			reject(http.StatusRequestEntityTooLarge, reasonTooLarge, tooLarge)
		} else {
			reject(http.StatusBadRequest, reasonReadError, err)
		}
		return
	}
	cb, err := tencent.Decode(body, queryCommand)
	if err != nil {
		reason := reasonBadPayload
		var de *tencent.DecodeError
		if errors.As(err, &de) {
			reason = de.Reason
		}
		reject(http.StatusBadRequest, reason, err)
		return
	}

	if cb.Command == tencent.CommandMemberStateChanged && inflight > int64(s.opts.MemberAdmission) {
		// Overloaded: room lifecycle callbacks go first. Nothing of this one was kept.
		s.metrics.Rejections.WithLabelValues(appLabel, reasonOverloaded).Inc()
		writeFail(rw, http.StatusServiceUnavailable, "overloaded, retry")
		return
	}
	if app.forwarder != nil && forward.IsBlocking(cb.Command) {
		// The app decides blocking callbacks (gifts, messages); its answer goes back as is.
		answer := app.forwarder.Forward(r.Context(), r.URL.RawQuery, body)
		s.metrics.Events.WithLabelValues(appLabel, command, string(outcomeForwarded)).Inc()
		_ = answer.Reply(rw)
		return
	}

	duplicate, finish := s.replay.begin(newReplayKey(app.sdkAppID, sign, requestTime, body), start, 2*app.maxSkew)
	if duplicate {
		s.metrics.Duplicates.WithLabelValues(appLabel).Inc()
		writeOK(rw)
		return
	}
	// Identical deliveries wait for this one: release them whatever happens below.
	defer finish(false)
	if app.forwarder != nil {
		// Queued before the operator stores anything, so the app gets its callbacks even
		// while the API server is unavailable.
		app.forwarder.Enqueue(r.URL.RawQuery, body)
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.Timeout)
	defer cancel()
	outcome, err := s.applyRecovering(ctx, app, cb, start)
	finish(err == nil)
	var panicked *panicError
	switch {
	case errors.As(err, &panicked):
		s.metrics.Rejections.WithLabelValues(appLabel, reasonInternal).Inc()
		s.log.Error(err, "Callback not stored: internal error", "app", appLabel, "command", cb.Command, "roomId", logValue(cb.Room()),
			"stack", string(panicked.stack))
		writeFail(rw, http.StatusInternalServerError, "internal error")
		return
	case errors.Is(err, lanes.ErrOverloaded):
		// Answered before the deadline: nothing of it was kept.
		s.metrics.Rejections.WithLabelValues(appLabel, reasonOverloaded).Inc()
		writeFail(rw, http.StatusServiceUnavailable, err.Error())
		return
	case errors.Is(err, roomstore.ErrUnstorable):
		// No retry can store it: a 4xx, so that nobody retries for ever.
		reject(http.StatusUnprocessableEntity, reasonUnstorable, err)
		return
	case err != nil:
		s.metrics.Rejections.WithLabelValues(appLabel, reasonNotStored).Inc()
		// Expected while the API server is unavailable: no stack trace, and bounded.
		if _, ok := s.notStoredLog.Allow(); ok {
			s.log.Info("Callback not stored", "error", logValue(err.Error()), "app", appLabel, "command", cb.Command, "roomId", logValue(cb.Room()))
		}
		writeFail(rw, http.StatusServiceUnavailable, "not stored, retry: "+err.Error())
		return
	}
	s.metrics.Events.WithLabelValues(appLabel, command, string(outcome)).Inc()
	writeOK(rw)
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
